package main

import (
	"strings"
	"testing"
)

// TestEtcdSnapshotUsage: the command names what to do, and needs an
// admin kubeconfig.
func TestEtcdSnapshotUsage(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"etcd-snapshot"}, "name what to do: cairn etcd-snapshot save, or cairn etcd-snapshot list"},
		{[]string{"etcd-snapshot", "restore"}, `unknown command "restore"`},
		{[]string{"etcd-snapshot", "list"}, "--kubeconfig is required (or set $KUBECONFIG)"},
		{[]string{"etcd-snapshot", "save", "--timeout", "1m"}, "--kubeconfig is required (or set $KUBECONFIG)"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCairn(t, "", tt.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("cairn %s: exit status %d, stdout %q, stderr %q; want 2 and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
}
