package multicall

import (
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	known := func(s string) bool { return s == "kubelet" || s == "containerd-shim-runc-v2" || s == "kubectl" }
	tests := []struct {
		name     string
		argv     []string
		env      string
		want     string
		wantArgs string // "-" for nil
	}{
		{"by link name", []string{"/usr/bin/kubelet", "--version"}, "", "kubelet", "/usr/bin/kubelet --version"},
		{"link name wins over the environment", []string{"kubectl", "get"}, "containerd-shim-runc-v2", "kubectl", "kubectl get"},
		{"re-exec through os.Executable keeps the applet", []string{"/usr/bin/cairn-node", "-namespace", "k8s.io", "start"}, "containerd-shim-runc-v2", "containerd-shim-runc-v2", "/usr/bin/cairn-node -namespace k8s.io start"},
		{"first argument", []string{"cairn-node", "kubelet", "--version"}, "", "kubelet", "kubelet --version"},
		{"unknown environment is ignored", []string{"cairn-node", "kubectl"}, "nosuch", "kubectl", "kubectl"},
		{"unknown first argument", []string{"cairn-node", "bogus"}, "", "bogus", "-"},
		{"nothing", []string{"cairn-node"}, "", "", "-"},
		{"empty argv", nil, "", "", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, args := Pick(tt.argv, tt.env, known)
			got := strings.Join(args, " ")
			if args == nil {
				got = "-"
			}
			if name != tt.want || got != tt.wantArgs {
				t.Errorf("Pick(%q, %q) = %q, %q; want %q, %q", tt.argv, tt.env, name, got, tt.want, tt.wantArgs)
			}
		})
	}
}
