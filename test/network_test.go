//go:build qemu

package test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/qemu"
)

// The bridge network of these tests lives inside a network namespace the
// test creates: nothing reaches the host's own networks.
const (
	bridgeAddr = "192.168.77.1/24"
	staticAddr = "192.168.77.11/24"
	staticMAC  = "52:54:00:77:00:11"
)

// bridged creates a namespace with a bridge and one TAP device on it, removed
// when the test ends.
func bridged(t *testing.T, ctx context.Context) (*qemu.Netns, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("TAP bridges in a network namespace need root")
	}
	ns, err := qemu.NewNetns(ctx, bridgeAddr)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: QEMU (registered later) is gone
	// before the namespace is deleted.
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Error(err)
		}
	})
	tap, err := ns.AddTAP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ns, tap
}

// TestStaticAddressOnBridge gives a node a static address through a NoCloud
// seed's network-config and reaches it from the bridge.
func TestStaticAddressOnBridge(t *testing.T) {
	for _, ab := range archBoards {
		t.Run(ab.arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			ns, tap := bridged(t, ctx)
			seed := filepath.Join(t.TempDir(), "seed.iso")
			err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{
				UserData: []byte("#cloud-config\nhostname: static-node\n"),
				NetworkConfig: []byte(`version: 2
ethernets:
  eth0:
    addresses: [` + staticAddr + `]
    gateway4: 192.168.77.1
`),
			})
			if err != nil {
				t.Fatal(err)
			}
			m := boot(t, ctx, ab.board, image(t, ab.board), qemu.Config{
				Seed:  seed,
				Netns: ns,
				NICs:  []qemu.NIC{{TAP: tap, MAC: staticMAC}},
			})
			waitFor(t, ctx, m, bootTimeout, reInitStarting)
			waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
			up := waitFor(t, ctx, m, stepTimeout, reNetworkUp)
			if got := reNetworkUp.FindStringSubmatch(up.Text); got[1] != "eth0" || got[2] != staticAddr || got[3] != "static" {
				t.Errorf("network line %q: want eth0 %s via static", up.Text, staticAddr)
			}
			// The address is real: the guest's kernel answers a TCP
			// connection to it from the bridge (with a reset: nothing
			// listens), and the bridge's neighbour table shows the NIC's MAC.
			addr := strings.Split(staticAddr, "/")[0]
			deadline := time.Now().Add(stepTimeout)
			for {
				dctx, cancelDial := context.WithTimeout(ctx, 5*time.Second)
				c, err := ns.DialContext(dctx, "tcp", addr+":9")
				cancelDial()
				if err == nil {
					c.Close()
					t.Fatalf("something listens on %s:9 in a node with no services", addr)
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					break
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					t.Fatalf("TCP to %s:9 from the bridge: %v; want the guest to refuse the connection", addr, err)
				}
				time.Sleep(time.Second)
			}
			out, err := ns.Command(ctx, "ip", "neigh", "show", addr).CombinedOutput()
			if err != nil || !strings.Contains(string(out), staticMAC) {
				t.Errorf("bridge neighbour entry for %s: %q (%v), want MAC %s", addr, out, err, staticMAC)
			}
		})
	}
}

// TestDHCPLeaseRenewalAndHostname runs dnsmasq on the bridge with its
// shortest lease (2 minutes): the node gets an address, sends the hostname
// its seed's meta-data names, and renews the lease at T1 without losing it.
func TestDHCPLeaseRenewalAndHostname(t *testing.T) {
	for _, ab := range archBoards {
		t.Run(ab.arch, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			ns, tap := bridged(t, ctx)
			leases := filepath.Join(t.TempDir(), "dnsmasq.leases")
			var dlog bytes.Buffer
			dnsmasq := ns.Command(ctx, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
				"--interface=br0", "--bind-interfaces", "--user=root", "--pid-file="+filepath.Join(t.TempDir(), "pid"),
				"--dhcp-range=192.168.77.50,192.168.77.99,255.255.255.0,2m",
				"--dhcp-leasefile="+leases, "--dhcp-authoritative", "--log-dhcp", "--log-facility=-")
			dnsmasq.Stdout, dnsmasq.Stderr = &dlog, &dlog
			if err := dnsmasq.Start(); err != nil {
				t.Fatalf("dnsmasq: %v", err)
			}
			t.Cleanup(func() {
				dnsmasq.Process.Kill()
				dnsmasq.Wait()
				if t.Failed() {
					t.Logf("dnsmasq log:\n%s", dlog.String())
				}
			})

			seed := filepath.Join(t.TempDir(), "seed.iso")
			err := qemu.MakeSeedISO(ctx, seed, qemu.Seed{
				UserData: []byte("#cloud-config\n"),
				MetaData: []byte("instance-id: lease-test\nlocal-hostname: lease-node\n"),
			})
			if err != nil {
				t.Fatal(err)
			}
			m := boot(t, ctx, ab.board, image(t, ab.board), qemu.Config{
				Seed:  seed,
				Netns: ns,
				NICs:  []qemu.NIC{{TAP: tap}},
			})
			waitFor(t, ctx, m, bootTimeout, reInitStarting)
			waitFor(t, ctx, m, stepTimeout, reConfigLoaded)
			up := waitFor(t, ctx, m, stepTimeout, reNetworkUp)
			got := reNetworkUp.FindStringSubmatch(up.Text)
			if got[3] != "dhcp" || !regexp.MustCompile(`^192\.168\.77\.([5-9]\d)/24$`).MatchString(got[2]) {
				t.Fatalf("network line %q: want an address from dnsmasq's 192.168.77.50-99 via dhcp", up.Text)
			}

			// dnsmasq's lease file: "expiry mac ip hostname client-id".
			data, err := os.ReadFile(leases)
			if err != nil {
				t.Fatalf("dnsmasq lease file: %v", err)
			}
			if !regexp.MustCompile(regexp.QuoteMeta(strings.Split(got[2], "/")[0]) + ` lease-node `).Match(data) {
				t.Errorf("dnsmasq's lease %q does not carry hostname lease-node from meta-data", data)
			}

			renewed := regexp.MustCompile(`network: lease renewed on ` + regexp.QuoteMeta(got[1]+" "+got[2]) + ` for (\S+)`)
			l := waitFor(t, ctx, m, stepTimeout, renewed)
			if d, err := time.ParseDuration(renewed.FindStringSubmatch(l.Text)[1]); err != nil || d <= 0 || d > 2*time.Minute {
				t.Errorf("renewal line %q: want a lease of at most 2m", l.Text)
			}
			if n := m.Count(reNetworkUp); n != 1 {
				t.Errorf("network came up %d times, want once (renewal keeps the address)", n)
			}
			t.Logf("figures: %s: dhcp address %s after QEMU start, renewed %s later", ab.board, secs(up.At), secs(l.At-up.At))
		})
	}
}
