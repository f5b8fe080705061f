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
	mu   sync.Mutex
	b    strings.Builder
	stop func() // kills dnsmasq
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
	srv, cli := dnsmasqPair(t, "dhcp", "10.77.0.1/24")

	dnsLog := startDnsmasq(t, srv, "10.77.0.50,10.77.0.60",
		// Option 3 says .99, option 121 says .1: RFC 3442 wants 121 to win.
		"--dhcp-option=option:router,10.77.0.99",
		"--dhcp-option=option:classless-static-route,10.200.0.0/16,10.77.0.254,0.0.0.0/0,10.77.0.1",
		"--dhcp-option=option:dns-server,10.77.0.53,10.77.0.54",
		"--dhcp-option=option:domain-search,example.test,lab.test",
		"--dhcp-option=option:mtu,1400",
		"--dhcp-option=option:ntp-server,10.77.0.123",
	)

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

// dnsmasqPair makes the namespaces name+"s" (the DHCP server's, with addr
// on vs) and name+"c" (the client's, with vc), joined by a veth pair. It
// skips the test without root or dnsmasq.
func dnsmasqPair(t *testing.T, name, addr string) (srv, cli string) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skip("needs dnsmasq (Debian: dnsmasq-base)")
	}
	srv, cli = netns(t, name+"s"), netns(t, name+"c")
	vethPair(t, srv, "vs", cli, "vc")
	sh(t, "ip", "-n", srv, "addr", "add", addr, "dev", "vs")
	return srv, cli
}

// startDnsmasq serves DHCP on vs in srv from the address range given, with
// the shortest lease dnsmasq grants (2m) and T1 at 20s to keep tests short.
// It is killed when the test ends or when the returned func is called.
func startDnsmasq(t *testing.T, srv, addrRange string, extra ...string) *lockedBuffer {
	t.Helper()
	dir := t.TempDir()
	dnsLog := &lockedBuffer{}
	args := []string{"netns", "exec", srv, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=vs", "--bind-interfaces", "--log-dhcp", "--log-facility=-",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--dhcp-authoritative",
		"--dhcp-range=" + addrRange + ",255.255.255.0,2m",
		"--dhcp-option=option:T1,20", "--dhcp-option=option:T2,90",
	}
	dnsmasq := exec.Command("ip", append(args, extra...)...)
	dnsmasq.Stdout, dnsmasq.Stderr = dnsLog, dnsLog
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			dnsmasq.Process.Kill()
			dnsmasq.Wait()
		})
	}
	dnsLog.stop = stop
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dnsLog.String())
		}
	})
	return dnsLog
}

// TestDHCPNakStartsOver replaces the DHCP server with one serving another
// range: the renewal at T1 is refused (NAK), and the client drops the old
// address and DISCOVERs a new one.
func TestDHCPNakStartsOver(t *testing.T) {
	srv, cli := dnsmasqPair(t, "nak", "10.78.0.1/24")
	first := startDnsmasq(t, srv, "10.78.0.50,10.78.0.50")
	// No network config: DHCP on every link; with no NIC in the namespace
	// that is its veth, as in the container platform.
	h := startHelper(t, cli, helperRequest{Root: t.TempDir()})
	if l := h.waitFor(t, "network: up vc ", 60*time.Second); l != "network: up vc 10.78.0.50/24 via dhcp" {
		t.Fatalf("console line %q", l)
	}
	first.stop()
	startDnsmasq(t, srv, "10.78.0.70,10.78.0.70")
	h.waitFor(t, "network: the DHCP server refused to renew 10.78.0.50/24 on vc", 60*time.Second)
	if l := h.waitFor(t, "network: up vc ", 60*time.Second); l != "network: up vc 10.78.0.70/24 via dhcp" {
		t.Fatalf("console line %q after the NAK", l)
	}
	li := linkInfo(t, cli, "vc")
	var got []string
	for _, a := range li.AddrInfo {
		if a.Family == "inet" {
			got = append(got, a.Local)
		}
	}
	if strings.Join(got, ",") != "10.78.0.70" {
		t.Errorf("addresses on vc: %v, want only the new lease", got)
	}
}

// TestDHCPLeaseExpires stops the DHCP server: renewing and rebinding fail,
// the lease runs out (2m, the shortest dnsmasq grants), the address goes,
// and when a server is back the client DISCOVERs a new lease.
func TestDHCPLeaseExpires(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 2-minute lease to expire")
	}
	srv, cli := dnsmasqPair(t, "exp", "10.79.0.1/24")
	server := startDnsmasq(t, srv, "10.79.0.50,10.79.0.50")
	h := startHelper(t, cli, helperRequest{Root: t.TempDir()})
	if l := h.waitFor(t, "network: up vc ", 60*time.Second); l != "network: up vc 10.79.0.50/24 via dhcp" {
		t.Fatalf("console line %q", l)
	}
	server.stop()
	h.waitFor(t, "network: the lease for 10.79.0.50/24 on vc expired; asking for a new one", 150*time.Second)
	for _, a := range linkInfo(t, cli, "vc").AddrInfo {
		if a.Family == "inet" {
			t.Errorf("vc still has %s after the lease expired", a.Local)
		}
	}
	if rt := routes(t, cli); strings.Contains(rt, "default") {
		t.Errorf("the lease's default route outlived it:\n%s", rt)
	}
	startDnsmasq(t, srv, "10.79.0.60,10.79.0.60")
	if l := h.waitFor(t, "network: up vc ", 90*time.Second); l != "network: up vc 10.79.0.60/24 via dhcp" {
		t.Fatalf("console line %q after the server came back", l)
	}
}
