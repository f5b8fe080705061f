package join_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/join/jointest"
	"github.com/cairn-os/cairn/config/kube"
)

// A weak or malformed new token is refused, saying how to make one, and
// never shown.
func TestCheckNew(t *testing.T) {
	good, _ := join.Generate()
	if tok, err := join.CheckNew("  " + good + "\n"); err != nil || tok.Secret != good {
		t.Errorf("CheckNew(a generated token) = %v, %v", tok, err)
	}
	for _, tt := range []struct{ raw, want string }{
		{"Winter2026!", "too weak: about 72 bits"},
		{"", "the new token: the token is empty"},
		{"two words", "white space"},
	} {
		_, err := join.CheckNew(tt.raw)
		if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.raw != "" && strings.Contains(err.Error(), tt.raw)) {
			t.Errorf("CheckNew(%q) = %v; want an error saying %q, without the token", tt.raw, err, tt.want)
		}
	}
	if _, err := join.CheckNew("Winter2026!"); err == nil || !strings.Contains(err.Error(), "cairn token generate") {
		t.Errorf("a weak token: %v; want it to say how to make one", err)
	}
}

// The rotation finds the servers by their Nodes, reaches each on its
// admin port with the admin's certificate, and reads its answer: the
// first seals, the second finds it sealed. A stranger's certificate and a
// server that does not answer are errors naming the server.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	c := jointest.NewCluster(t, "s2", "s1")
	admin, err := kube.ParseKubeconfig(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := join.Generate()
	r := &join.Rotation{Admin: admin, Role: join.RoleServer, Token: tok, Port: c.Port}
	servers, apiservers, err := r.Servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 || servers[0] != (join.Server{Name: "s1", Address: "127.0.0.2"}) || servers[1] != (join.Server{Name: "s2", Address: "127.0.0.1"}) || apiservers != 2 {
		t.Fatalf("servers %v, %d apiservers; want s1 and s2 by name with their InternalIPs, and 2", servers, apiservers)
	}
	for i, s := range servers {
		reply, err := r.On(ctx, s)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		id, _ := join.ServerBootstrapToken(tok)
		if reply.Node != s.Name || reply.Sealed != (i == 0) || reply.Bootstrap != id {
			t.Errorf("%s answered %+v; want its name, sealed only by the first, and the new bootstrap token %s", s.Name, reply, id)
		}
	}
	if c.Sealed(join.RoleServer) != tok {
		t.Error("the servers do not hold the new token")
	}

	if _, err := r.On(ctx, join.Server{Name: "s9"}); err == nil || !strings.Contains(err.Error(), "no InternalIP") {
		t.Errorf("a server without an address: %v", err)
	}
	stranger, _ := kube.ParseKubeconfig(c.Stranger)
	asked := c.Asked()
	_, err = (&join.Rotation{Admin: stranger, Role: join.RoleServer, Token: tok, Port: c.Port}).On(ctx, servers[0])
	if err == nil || !strings.Contains(err.Error(), "answered 403: only an admin") || c.Asked() != asked {
		t.Errorf("a stranger's certificate: %v; want 403 before the handler", err)
	}
	weak := &join.Rotation{Admin: admin, Role: join.RoleAgent, Token: "Winter2026!", Port: c.Port}
	if _, err := weak.On(ctx, servers[0]); err == nil || !strings.Contains(err.Error(), "answered 400: the new token is too weak") || strings.Contains(err.Error(), "Winter2026!") {
		t.Errorf("a weak token: %v; want the server's 400, without the token", err)
	}
	c.Down("s2")
	if _, err := r.On(ctx, servers[1]); err == nil || !strings.Contains(err.Error(), "reaching 127.0.0.1:") {
		t.Errorf("a server that is down: %v", err)
	}
}
