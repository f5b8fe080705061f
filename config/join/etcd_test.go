package join_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
)

// TestClusterRecord: the server token reads the sealed record and the
// voting members' client URLs, from the apiserver's cache; before a
// server published them it is told to wait; the agent token and a wrong
// token are refused, each told why.
func TestClusterRecord(t *testing.T) {
	ctx := context.Background()
	srv := jointest.New(t, "s3cret", "agent-s3cret")
	tok, _ := join.ParseToken("s3cret")
	c := &join.Client{Server: srv.URL, Token: tok}
	if _, err := c.ClusterRecord(ctx); !errors.Is(err, join.ErrNotReady) || !strings.Contains(err.Error(), "has no kube-system/cairn-cluster-record") {
		t.Errorf("before the record is published: %v; want ErrNotReady saying there is none", err)
	}
	srv.SetRecord([]byte(`{"version":2}`), "https://10.0.0.1:2379", "not a URL", "https://10.0.0.2:2379")
	got, err := c.ClusterRecord(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Record) != `{"version":2}` || !slices.Equal(got.Members, []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}) || got.Cluster.Role != join.RoleServer {
		t.Errorf("read %q, members %q, role %s", got.Record, got.Members, got.Cluster.Role)
	}
	if q := srv.RecordQueries(); len(q) == 0 || q[len(q)-1] != "resourceVersion=0" {
		t.Errorf("the record was read with %q; want resourceVersion=0 (the apiserver's cache, which answers without quorum)", q)
	}
	for _, tt := range []struct{ token, want string }{
		{"agent-s3cret", "this is the cluster's agent token"},
		{"guess", "cannot prove it knows the token"},
	} {
		tok, _ := join.ParseToken(tt.token)
		if _, err := (&join.Client{Server: srv.URL, Token: tok}).ClusterRecord(ctx); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want %q", tt.token, err, tt.want)
		}
	}
}
