package network

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/datasource"
)

// TestInQEMU boots a Debian kernel under QEMU (TCG) with this test binary as
// /init, three virtio NICs and a cloud-localds seed disk, and checks what
// the build host's kernel cannot show: a bond and a VLAN (the host lacks
// both drivers), DHCP from QEMU's own server on a NIC matched by MAC and
// renamed, and the NoCloud seed read from a real block device plus a seed
// URL on the kernel command line.
func TestInQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("boots the x86_64 kernel; runs on amd64 hosts")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64")
	}
	for _, tool := range []string{"dpkg-deb", "cpio", "cloud-localds"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	debs := os.Getenv("CAIRN_DEBS")
	if debs == "" {
		debs = "../../out/debs"
	}
	kdebs, _ := filepath.Glob(filepath.Join(debs, "linux-image-*-amd64_*_amd64.deb"))
	if len(kdebs) == 0 {
		t.Skipf("no x86_64 kernel package in %s (make kernels)", debs)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if f, err := elf.Open(self); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				f.Close()
				t.Skip("the test binary is dynamically linked; run with CGO_ENABLED=0 (as make does) to boot it as /init")
			}
		}
		f.Close()
	}

	dir := t.TempDir()
	x := filepath.Join(dir, "x")
	sh(t, "dpkg-deb", "-x", kdebs[0], x)
	vmlinuz, _ := filepath.Glob(filepath.Join(x, "boot/vmlinuz-*"))
	if len(vmlinuz) != 1 {
		t.Fatalf("no kernel in %s", kdebs[0])
	}
	ir := filepath.Join(dir, "ir")
	os.MkdirAll(filepath.Join(ir, "mods"), 0o755)
	var order []string
	for _, m := range vmModules {
		found, _ := filepath.Glob(filepath.Join(x, "lib/modules/*/kernel/*/*/"+m+".ko*"))
		more, _ := filepath.Glob(filepath.Join(x, "lib/modules/*/kernel/*/*/*/"+m+".ko*"))
		found = append(found, more...)
		if len(found) == 0 {
			continue // built in
		}
		data, err := os.ReadFile(found[0])
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(ir, "mods", filepath.Base(found[0])), data, 0o644)
		order = append(order, filepath.Base(found[0]))
	}
	os.WriteFile(filepath.Join(ir, "mods/order"), []byte(strings.Join(order, "\n")), 0o644)
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ir, "init"), bin, 0o755)
	initrd := filepath.Join(dir, "initrd.cpio")
	c := exec.Command("sh", "-c", "find . | cpio -o -H newc > "+initrd)
	c.Dir = ir
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}

	seedDir := filepath.Join(dir, "seed")
	os.MkdirAll(seedDir, 0o755)
	os.WriteFile(filepath.Join(seedDir, "user-data"), []byte("#cloud-config\nhostname: from-disk\n"), 0o644)
	os.WriteFile(filepath.Join(seedDir, "meta-data"), []byte("instance-id: i-1\nlocal-hostname: disk-meta\n"), 0o644)
	seed := filepath.Join(dir, "seed.iso")
	sh(t, "cloud-localds", seed, filepath.Join(seedDir, "user-data"), filepath.Join(seedDir, "meta-data"))

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/seed/user-data":
			io.WriteString(w, "#cloud-config\nkubernetes:\n  role: agent\n")
		case "/seed/meta-data":
			io.WriteString(w, "local-hostname: web-meta\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	port := web.URL[strings.LastIndex(web.URL, ":")+1:]

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"-accel", "tcg", "-M", "q35", "-m", "512", "-nographic", "-no-reboot",
		"-kernel", vmlinuz[0], "-initrd", initrd,
		"-append", "console=ttyS0 quiet panic=-1 ds=nocloud;s=http://10.0.2.2:" + port + "/seed/",
		"-drive", "file=" + seed + ",if=virtio,format=raw,readonly=on"}
	for i := 1; i <= 3; i++ {
		args = append(args, "-netdev", fmt.Sprintf("user,id=n%d", i),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=n%d,mac=52:54:00:00:00:0%d", i, i))
	}
	q := exec.CommandContext(ctx, qemu, args...)
	var console bytes.Buffer
	q.Stdout, q.Stderr = &console, &console
	if err := q.Run(); err != nil {
		t.Fatalf("qemu: %v\n%s", err, console.String())
	}
	var report vmReport
	sc := bufio.NewScanner(&console)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l, ok := strings.CutPrefix(strings.TrimLeft(sc.Text(), "\r"), "CAIRN-VM "); ok {
			if err := json.Unmarshal([]byte(l), &report); err != nil {
				t.Fatalf("report %q: %v", l, err)
			}
		}
	}
	if report.Links == nil {
		t.Fatalf("the VM printed no report:\n%s", console.String())
	}
	t.Logf("console lines: %q", report.Log)
	if report.UpErr != "" {
		t.Errorf("Up: %s", report.UpErr)
	}
	for _, want := range []string{"network: up lan0 10.0.2.15/24 via dhcp", "network: up bond0 10.66.0.5/24 via static", "network: up vlan7 10.7.0.5/24 via static"} {
		if !contains(report.Log, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	for link, want := range map[string]string{
		"bond0": "bond active-backup miimon=100 primary=eth1 mtu=1400 10.66.0.5/24",
		"eth1":  "device master=bond0 mtu=1400",
		"eth2":  "device master=bond0 mtu=1400",
		"vlan7": "vlan id=7 on lan0 mtu=1500 10.7.0.5/24",
		"lan0":  "device mtu=1500 10.0.2.15/24",
	} {
		if got := report.Links[link]; got != want {
			t.Errorf("%s: %q, want %q", link, got, want)
		}
	}
	for _, want := range []string{"default via 10.0.2.2 dev lan0", "10.70.0.0/16 via 10.7.0.1 dev vlan7"} {
		if !contains(report.Routes, want) {
			t.Errorf("routes %q lack %q", report.Routes, want)
		}
	}
	if !strings.Contains(report.Resolv, "nameserver 10.0.2.3\n") {
		t.Errorf("resolv.conf %q lacks QEMU's DNS", report.Resolv)
	}
	wantSources := []string{"cidata:/dev/vda/meta-data", "http://10.0.2.2:" + port + "/seed/meta-data", "cidata:/dev/vda/user-data", "http://10.0.2.2:" + port + "/seed/user-data"}
	if strings.Join(report.Sources, " ") != strings.Join(wantSources, " ") {
		t.Errorf("sources %q, want %q", report.Sources, wantSources)
	}
}

// vmModules are loaded in this order; those built into the kernel are absent.
var vmModules = []string{"virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"failover", "net_failover", "virtio_net", "virtio_blk", "llc", "stp", "garp", "mrp", "8021q", "tls", "bonding"}

type vmReport struct {
	UpErr   string            `json:"up_err"`
	Log     []string          `json:"log"`
	Links   map[string]string `json:"links"`
	Routes  []string          `json:"routes"`
	Resolv  string            `json:"resolv"`
	Sources []string          `json:"sources"`
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// collectLog keeps log messages for the report.
type collectLog struct {
	mu   *sync.Mutex
	msgs *[]string
}

func (c collectLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (c collectLog) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.msgs = append(*c.msgs, r.Message)
	return nil
}
func (c collectLog) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c collectLog) WithGroup(string) slog.Handler      { return c }

// runInVM is this binary's life as PID 1 in the VM: bring the network up
// from a config with a bond and a VLAN, read the config sources, print one
// CAIRN-VM report line and power off.
func runInVM() {
	for _, m := range []struct{ src, dst, fs string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dst, 0o755)
		unix.Mount(m.src, m.dst, m.fs, 0, "")
	}
	os.MkdirAll("/etc", 0o755)
	order, _ := os.ReadFile("/mods/order")
	// The first loads can fail with ENOENT while the kernel is still
	// settling; a second pass picks those up.
	for pass := range 2 {
		for _, m := range strings.Fields(string(order)) {
			if f, err := os.Open("/mods/" + m); err == nil {
				if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST && pass == 1 {
					fmt.Println("module", m, err)
				}
				f.Close()
			}
		}
	}
	var r vmReport
	var mu sync.Mutex
	log := slog.New(collectLog{&mu, &r.Log})
	// Wait for the NICs the drivers just found.
	for i := 0; i < 100; i++ {
		if ls, _ := netlink.LinkList(); len(ls) >= 4 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg := &config.Network{
		Version: 2,
		Ethernets: map[string]config.Ethernet{
			"uplink": {Match: &config.Match{MACAddress: "52:54:00:00:00:01"}, SetName: "lan0", Interface: config.Interface{DHCP4: true}},
			"m1":     {Match: &config.Match{MACAddress: "52:54:00:00:00:02"}},
			"m2":     {Match: &config.Match{Name: "eth*", MACAddress: "52:54:00:00:00:03"}},
		},
		Bonds: map[string]config.Bond{"bond0": {Interfaces: []string{"m1", "m2"},
			Parameters: map[string]string{"mode": "active-backup", "mii-monitor-interval": "100", "primary": "m1"},
			Interface:  config.Interface{Addresses: []string{"10.66.0.5/24"}, MTU: 1400}}},
		VLANs: map[string]config.VLAN{"vlan7": {ID: 7, Link: "uplink", Interface: config.Interface{
			Addresses: []string{"10.7.0.5/24"}, Routes: []config.Route{{To: "10.70.0.0/16", Via: "10.7.0.1"}}}}},
	}
	ctx := context.Background()
	if _, err := Up(ctx, cfg, Options{Log: log, Hostname: "vm", Timeout: 90 * time.Second}); err != nil {
		r.UpErr = err.Error()
	}
	gctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	srcs, err := datasource.Gather(gctx, datasource.Options{Log: log})
	if err != nil {
		r.UpErr += " gather: " + err.Error()
	}
	for _, s := range srcs {
		r.Sources = append(r.Sources, s.Name)
	}
	r.Links = map[string]string{}
	links, _ := netlink.LinkList()
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range links {
		a := l.Attrs()
		desc := l.Type()
		switch v := l.(type) {
		case *netlink.Bond:
			desc = fmt.Sprintf("bond %s miimon=%d primary=%s", v.Mode, v.Miimon, names[v.Primary])
		case *netlink.Vlan:
			desc = fmt.Sprintf("vlan id=%d on %s", v.VlanId, names[v.ParentIndex])
		}
		if a.MasterIndex != 0 {
			desc += " master=" + names[a.MasterIndex]
		}
		desc += fmt.Sprintf(" mtu=%d", a.MTU)
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, ad := range addrs {
			desc += " " + ad.IPNet.String()
		}
		r.Links[a.Name] = desc
	}
	routes, _ := netlink.RouteList(nil, netlink.FAMILY_V4)
	for _, rt := range routes {
		dst := "default"
		if rt.Dst != nil {
			if ones, _ := rt.Dst.Mask.Size(); ones > 0 {
				dst = rt.Dst.String()
			}
		}
		if rt.Gw != nil {
			r.Routes = append(r.Routes, fmt.Sprintf("%s via %s dev %s", dst, rt.Gw, names[rt.LinkIndex]))
		}
	}
	b, _ := os.ReadFile("/etc/resolv.conf")
	r.Resolv = string(b)
	mu.Lock()
	out, _ := json.Marshal(r)
	mu.Unlock()
	fmt.Printf("\nCAIRN-VM %s\n", out)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
