package multicall

import (
	"os"
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

// TestBinaryRun: what a user sees running a multicall binary, by link, by
// argument, and with no or an unknown applet.
func TestBinaryRun(t *testing.T) {
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })
	var ran []string
	b := Binary{
		Name: "cairn-pod",
		Applets: map[string]func() int{
			"portmap": func() int { ran = os.Args; return 0 },
			"mount":   func() int { ran = os.Args; return 32 },
		},
		SeeAlso: "The node's daemons are applets of cairn-node.",
	}
	usage := "usage: cairn-pod APPLET [ARGS...], or run it through a link named after the applet\n" +
		"applets:\n  mount\n  portmap\nThe node's daemons are applets of cairn-node.\n"
	tests := []struct {
		name   string
		argv   []string
		env    string
		status int
		ran    string // os.Args the applet saw, "-" for none
		stderr string
	}{
		{"by link", []string{"/usr/bin/portmap"}, "", 0, "/usr/bin/portmap", ""},
		{"by argument, status passed on", []string{"cairn-pod", "mount", "-t", "tmpfs", "tmpfs", "/t"}, "", 32, "mount -t tmpfs tmpfs /t", ""},
		{"re-executed with the environment", []string{"/usr/bin/cairn-pod", "-id", "x"}, "portmap", 0, "/usr/bin/cairn-pod -id x", ""},
		{"no applet", []string{"cairn-pod"}, "", 2, "-", usage},
		{"an applet of the other binary", []string{"cairn-pod", "kubelet"}, "", 2, "-", "cairn-pod: \"kubelet\" is not an applet of this binary\n" + usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran = nil
			var stderr strings.Builder
			status := b.run(tt.argv, tt.env, &stderr)
			got := strings.Join(ran, " ")
			if ran == nil {
				got = "-"
			}
			if status != tt.status || got != tt.ran || stderr.String() != tt.stderr {
				t.Errorf("run(%q, %q) = %d, ran %q, stderr:\n%s\nwant %d, ran %q, stderr:\n%s", tt.argv, tt.env, status, got, stderr.String(), tt.status, tt.ran, tt.stderr)
			}
		})
	}
}
