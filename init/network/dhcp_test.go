package network

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
)

// lockedBuffer collects dnsmasq's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDHCPWithDnsmasq leases an address from a real dnsmasq across a veth
// pair and watches the client apply the lease and renew it at T1.
func TestDHCPWithDnsmasq(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skip("needs dnsmasq (Debian: dnsmasq-base)")
	}
	srv, cli := netns(t, "dhcps"), netns(t, "dhcpc")
	vethPair(t, srv, "vs", cli, "vc")
	sh(t, "ip", "-n", srv, "addr", "add", "10.77.0.1/24", "dev", "vs")

	dir := t.TempDir()
	dnsLog := &lockedBuffer{}
	dnsmasq := exec.Command("ip", "netns", "exec", srv, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=vs", "--bind-interfaces", "--log-dhcp", "--log-facility=-",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"),
		"--dhcp-authoritative",
		// The shortest lease dnsmasq grants is 2m; T1 at 20s keeps the test short.
		"--dhcp-range=10.77.0.50,10.77.0.60,255.255.255.0,2m",
		"--dhcp-option=option:T1,20", "--dhcp-option=option:T2,90",
		// Option 3 says .99, option 121 says .1: RFC 3442 wants 121 to win.
		"--dhcp-option=option:router,10.77.0.99",
		"--dhcp-option=option:classless-static-route,10.200.0.0/16,10.77.0.254,0.0.0.0/0,10.77.0.1",
		"--dhcp-option=option:dns-server,10.77.0.53,10.77.0.54",
		"--dhcp-option=option:domain-search,example.test,lab.test",
		"--dhcp-option=option:mtu,1400",
		"--dhcp-option=option:ntp-server,10.77.0.123",
	)
	dnsmasq.Stdout, dnsmasq.Stderr = dnsLog, dnsLog
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dnsmasq.Process.Kill()
		dnsmasq.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dnsLog.String())
		}
	})

	root := t.TempDir()
	h := startHelper(t, cli, helperRequest{Root: root, Hostname: "cairn-test", Network: &config.Network{
		Version: 2, Ethernets: map[string]config.Ethernet{"vc": {Interface: config.Interface{DHCP4: true}}},
	}})
	up := h.waitFor(t, "network: up vc ", 60*time.Second)
	m := regexp.MustCompile(`^network: up vc (10\.77\.0\.(5\d|60))/24 via dhcp$`).FindStringSubmatch(up)
	if m == nil {
		t.Fatalf("console line %q, want network: up vc 10.77.0.5x/24 via dhcp", up)
	}
	addr := m[1]
	if l := h.waitFor(t, "UP ", 10*time.Second); l != "UP ok" {
		t.Errorf("Up returned %q", l)
	}
	state := h.waitFor(t, "STATE ", 5*time.Second)
	if !strings.Contains(state, `"vc":["`+addr+`/24"]`) || !strings.Contains(state, `"ntp":["10.77.0.123"]`) {
		t.Errorf("state %s lacks the address or the NTP server from option 42", state)
	}

	li := linkInfo(t, cli, "vc")
	if li.MTU != 1400 {
		t.Errorf("MTU %d, want 1400 from option 26", li.MTU)
	}
	var lifetime uint64
	for _, a := range li.AddrInfo {
		if a.Family == "inet" && a.Local+"/24" == addr+"/24" {
			lifetime = a.ValidLife
		}
	}
	if lifetime == 0 || lifetime > 120 {
		t.Errorf("address %s has valid lifetime %d, want the lease's (≤120s)", addr, lifetime)
	}
	rt := routes(t, cli)
	for _, want := range []string{"default via 10.77.0.1 dev vc proto dhcp", "10.200.0.0/16 via 10.77.0.254 dev vc proto dhcp"} {
		if !strings.Contains(rt, want) {
			t.Errorf("routes lack %q:\n%s", want, rt)
		}
	}
	if strings.Contains(rt, "10.77.0.99") {
		t.Errorf("option 3's router was used although option 121 was given:\n%s", rt)
	}
	resolv, err := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nameserver 10.77.0.53\nnameserver 10.77.0.54\n", "search example.test lab.test\n"} {
		if !strings.Contains(string(resolv), want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if !strings.Contains(dnsLog.String(), "cairn-test") {
		t.Errorf("dnsmasq never saw the hostname (option 12):\n%s", dnsLog.String())
	}

	renewed := h.waitFor(t, "network: lease renewed on vc ", 60*time.Second)
	if want := "network: lease renewed on vc " + addr + "/24 for 2m0s"; renewed != want {
		t.Errorf("console line %q, want %q", renewed, want)
	}
	// The renewal is a REQUEST for the same address, answered by an ACK.
	if n := strings.Count(dnsLog.String(), "DHCPACK(vs) "+addr); n < 2 {
		t.Errorf("dnsmasq acknowledged %s %d times, want the lease and its renewal", addr, n)
	}
}
