package config

import (
	"strings"
	"testing"
)

// TestLocalStoragePath: k3s's default-local-storage-path, as a user sees
// it from cairn validate, and the directory the add-on is given.
func TestLocalStoragePath(t *testing.T) {
	const agent = "  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n"
	tests := []struct {
		name string
		doc  string
		want string // the one diagnostic, exactly; "" for none
		path string // LocalStoragePath when the config loads
	}{
		{"absent: the default on STATE", "kubernetes:\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n", "", "/var/lib/cairn/storage"},
		{"under STATE", "kubernetes:\n  default-local-storage-path: /var/lib/cairn/volumes\n", "", "/var/lib/cairn/volumes"},
		{"relative", "kubernetes:\n  default-local-storage-path: data/volumes\n",
			`c:2:31: error: kubernetes.default-local-storage-path "data/volumes" is relative; give an absolute directory, like /var/lib/cairn/storage`, ""},
		{"not clean", "kubernetes:\n  default-local-storage-path: /var/lib/cairn//storage/\n",
			`c:2:31: error: kubernetes.default-local-storage-path "/var/lib/cairn//storage/" is not a clean path; write it as /var/lib/cairn/storage`, ""},
		{"root", "kubernetes:\n  default-local-storage-path: /\n",
			`c:2:31: error: kubernetes.default-local-storage-path is /; volumes need a directory of their own, like /var/lib/cairn/storage`, ""},
		{"empty", "kubernetes:\n  default-local-storage-path: \"\"\n",
			`c:2:31: error: kubernetes.default-local-storage-path is empty; give an absolute directory, or leave it out for /var/lib/cairn/storage`, ""},
		{"a quote would break the provisioner's JSON", "kubernetes:\n  default-local-storage-path: '/var/lib/cairn/a\"b'\n",
			`c:2:31: error: kubernetes.default-local-storage-path "/var/lib/cairn/a\"b" holds a character other than letters, digits and / . _ - + @ :; choose a plainer directory`, ""},
		{"a space", "kubernetes:\n  default-local-storage-path: /var/lib/cairn/my volumes\n",
			`c:2:31: error: kubernetes.default-local-storage-path "/var/lib/cairn/my volumes" holds a character other than letters`, ""},
		{"too long", "kubernetes:\n  default-local-storage-path: /" + strings.Repeat("a", 1100) + "\n",
			`c:2:31: error: kubernetes.default-local-storage-path is 1101 bytes long; at most 1024`, ""},
		{"in RAM", "kubernetes:\n  default-local-storage-path: /opt/local-path-provisioner\n",
			`c:2:31: warning: kubernetes.default-local-storage-path "/opt/local-path-provisioner" is not under /var/lib/cairn, the node's STATE partition: the rest of the root file system is in RAM, so the volumes would be lost at every reboot; keep it under /var/lib/cairn`,
			"/opt/local-path-provisioner"},
		{"among the node's files", "kubernetes:\n  default-local-storage-path: /var/lib/cairn\n",
			`c:2:31: warning: kubernetes.default-local-storage-path "/var/lib/cairn" puts volumes among the node's own files; give them a directory of their own, like /var/lib/cairn/storage`,
			"/var/lib/cairn"},
		{"in the manifests directory", "kubernetes:\n  default-local-storage-path: /var/lib/cairn/manifests/pv\n",
			`c:2:31: warning: kubernetes.default-local-storage-path "/var/lib/cairn/manifests/pv" puts volumes among the node's own files`,
			"/var/lib/cairn/manifests/pv"},
		{"agent", "kubernetes:\n" + agent + "  default-local-storage-path: /var/lib/cairn/volumes\n",
			`c:5:31: warning: kubernetes.default-local-storage-path is a server setting (the servers tell the provisioner where volumes go on every node); agents ignore it`,
			"/var/lib/cairn/volumes"},
		{"disabled", "kubernetes:\n  disable: local-storage\n  default-local-storage-path: /var/lib/cairn/volumes\n",
			`c:3:31: warning: kubernetes.default-local-storage-path is set, but kubernetes.disable names local-storage, so no volumes are made; it is ignored`,
			"/var/lib/cairn/volumes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := Load(src("c", tt.doc))
			got := strings.TrimSuffix(messages(diags), "\n")
			switch {
			case tt.want == "" && got != "":
				t.Errorf("diagnostics:\n%s\nwant none", got)
			case tt.want != "" && (len(diags) != 1 || !strings.HasPrefix(got, tt.want)):
				t.Errorf("diagnostics:\n%s\nwant exactly one, starting:\n%s", got, tt.want)
			}
			if tt.path == "" {
				if cfg != nil {
					t.Errorf("the config loads; want it refused")
				}
				return
			}
			if cfg == nil {
				t.Fatalf("the config is refused:\n%s", got)
			}
			if p := cfg.Kubernetes.LocalStoragePath(); p != tt.path {
				t.Errorf("LocalStoragePath() = %q, want %q", p, tt.path)
			}
		})
	}
}
