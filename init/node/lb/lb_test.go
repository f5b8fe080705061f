package lb

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// nameServer answers each connection with its name and a newline.
func nameServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name + "\n"))
			c.Close()
		}
	}()
	return ln
}

// TestBalancerMovesOn: the proxy forwards to the registration address
// while it answers, and to a learned server once it is gone.
func TestBalancerMovesOn(t *testing.T) {
	a, b := nameServer(t, "a"), nameServer(t, "b")
	defer b.Close()
	lb := New(a.Addr().String(), func(string, ...any) {})
	lb.probeEvery = 50 * time.Millisecond
	lb.setServers([]string{b.Addr().String(), a.Addr().String()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lb.Serve(ctx, ln)
	through := func() string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		s, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(s)
	}
	if got := through(); got != "a" {
		t.Fatalf("with the registration address up: reached %q, want a", got)
	}
	a.Close()
	if got := through(); got != "b" {
		t.Errorf("with the registration address gone: reached %q, want b", got)
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if lb.servers[0] != a.Addr().String() || len(lb.servers) != 2 {
		t.Errorf("servers %v: the registration address first, no duplicate", lb.servers)
	}
}
