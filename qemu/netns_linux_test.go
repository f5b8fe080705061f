package qemu

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNetns builds a namespace with a bridge, a TAP device and a socket
// pair inside it, and checks that deleting it leaves nothing behind.
func TestNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := NewNetns(ctx, "192.168.79.1/24")
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			ns.Close()
		}
	}()
	tap, err := ns.AddTAP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := ns.Command(ctx, "ip", "-o", "link", "show", tap).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "master br0") {
		t.Errorf("ip link show %s in the namespace: %q, %v; want it on br0", tap, out, err)
	}

	// The bridge's address exists only inside the namespace: a listener
	// there and a dialer there meet.
	ln, err := ns.Listen("tcp", "192.168.79.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello from the bridge")
			c.Close()
		}
	}()
	c, err := ns.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello from the bridge" {
		t.Errorf("read %q over the namespace's bridge", got)
	}
	if l, err := net.Listen("tcp", "192.168.79.1:0"); err == nil {
		l.Close()
		t.Errorf("the bridge address is also on the host: the namespace leaks")
	}

	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), ns.Name) {
		t.Errorf("namespace %s still listed after Close: %q", ns.Name, out)
	}
}
