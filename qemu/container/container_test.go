package container

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/layout"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line  string
		state byte
		start uint64
		err   string
	}{
		{"1234 (init) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200", 'S', 98765, ""},
		{"77 (a (strange) name) Z 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0", 'Z', 42, ""},
		{"77 (x) R 1 2 3", 0, 0, "want at least 20"},
		{"77 x R", 0, 0, "without a command name"},
		{"77 (x) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 0", 0, 0, "start time"},
		{strings.Repeat("x", 5000), 0, 0, "longer than"},
	} {
		st, err := parseStat(tc.line)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseStat(%.40q): %v; want an error with %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || st.state != tc.state || st.start != tc.start {
			t.Errorf("parseStat(%.40q) = %c %d %v; want %c %d", tc.line, st.state, st.start, err, tc.state, tc.start)
		}
	}
}

// TestProcDetached: a detached process is found alive by its PID and start
// time, writes to its log, and is stopped by Stop.
func TestProcDetached(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	p, err := StartDetached(exec.Command("sh", "-c", "echo hello; exec sleep 60"), log)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alive() {
		t.Fatal("the process is not alive just after its start")
	}
	if (Proc{PID: p.PID, Start: p.Start + 1}).Alive() {
		t.Error("a different start time counts as the same process")
	}
	// The shell writes before it sleeps; stopping it earlier would race
	// with the write.
	for deadline := time.Now().Add(10 * time.Second); Tail(log, 5) != "hello" && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Stop(15, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Alive() {
		t.Error("alive after Stop")
	}
	if got := Tail(log, 5); got != "hello" {
		t.Errorf("log %q; want hello", got)
	}
	if (Proc{}).Alive() {
		t.Error("the zero Proc is alive")
	}
}

func TestParseRoutes(t *testing.T) {
	table := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	010200C0	0003	0	0	0	00000000	0	0	0
eth0	000200C0	00000000	0001	0	0	0	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
bad	zz	00000000	0001	0	0	0	00FFFFFF	0	0	0
`
	got, err := parseRoutes(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("172.17.0.0/16")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseRoutes = %v; want %v", got, want)
	}
}

func TestFreeSubnet(t *testing.T) {
	c := []netip.Prefix{netip.MustParsePrefix("192.168.200.0/24"), netip.MustParsePrefix("192.168.201.0/24")}
	got, err := FreeSubnet(c, []netip.Prefix{netip.MustParsePrefix("192.168.200.0/24"), netip.MustParsePrefix("10.0.0.0/8")})
	if err != nil || got != c[1] {
		t.Errorf("FreeSubnet = %v, %v; want %v", got, err, c[1])
	}
	if _, err := FreeSubnet(c, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}); err == nil {
		t.Error("a /16 in use left a /24 inside it free")
	}
}

// newc builds one newc cpio entry.
func newc(name string, data []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		1, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	b.WriteString(name + "\x00")
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	b.Write(data)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func TestFindSystemImage(t *testing.T) {
	// A stand-in for the compressed stage-1 archive, holding a decoy
	// header, then the archive with the system image.
	stage1 := append(bytes.Repeat([]byte{0x28, 0xb5, 0x2f, 0xfd}, 1000), newc("init", []byte("decoy"))...)
	sqfs := append([]byte("hsqs"), bytes.Repeat([]byte{7}, 3000)...)
	img := append(append([]byte{}, stage1...), newc("system.sqfs", sqfs)...)
	img = append(img, newc("TRAILER!!!", nil)...)
	off, size, err := findSystemImage(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(sqfs)) || !bytes.Equal(img[off:off+size], sqfs) {
		t.Errorf("found %d bytes at %d; want the squashfs", size, off)
	}

	for name, bad := range map[string][]byte{
		"no system image":   append(append([]byte{}, stage1...), newc("TRAILER!!!", nil)...),
		"not a squashfs":    append(append([]byte{}, stage1...), newc("system.sqfs", []byte("nope"))...),
		"cut short":         append(append([]byte{}, stage1...), newc("system.sqfs", sqfs)...)[:len(stage1)+200],
		"empty":             nil,
		"only garbage text": []byte(strings.Repeat("070701zzzz", 100)),
	} {
		if _, _, err := findSystemImage(bytes.NewReader(bad), int64(len(bad))); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestNewDisk: a node directory boots slot A, a link to the cluster's
// system image; its config is the node's own (0600); its archives are
// there; and the loader entry is one the init's launcher reads.
func TestNewDisk(t *testing.T) {
	sys := filepath.Join(t.TempDir(), "system.sqfs")
	os.WriteFile(sys, []byte("hsqs"), 0o644)
	archive := filepath.Join(t.TempDir(), "app.tar")
	os.WriteFile(archive, []byte("tar"), 0o644)
	dir := filepath.Join(t.TempDir(), "disk")
	if err := NewDisk(dir, sys, []byte("#cloud-config\nhostname: s1\n"), []string{archive}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(sys)
	b, err := os.Stat(filepath.Join(dir, layout.ContainerSlot(layout.SlotA)))
	if err != nil || !os.SameFile(a, b) {
		t.Errorf("slot A is not a link to the system image: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, layout.ContainerConfig))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the node's config: %v %v; want mode 0600", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dir, layout.ContainerImages, "app.tar")); err != nil {
		t.Errorf("the image archive: %v", err)
	}
	entry, err := os.ReadFile(filepath.Join(dir, layout.ContainerESP, "loader/entries/cairn-a.conf"))
	if err != nil || !strings.Contains(string(entry), "\noptions cairn.system=disk cairn.slot=a\n") || !strings.Contains(string(entry), "\nversion 1\n") {
		t.Errorf("the loader entry: %v\n%s", err, entry)
	}
	if err := NewDisk(dir, sys, nil, nil); err == nil {
		t.Error("a second NewDisk on the same directory succeeded")
	}
}

func TestSystemImage(t *testing.T) {
	// A live build: the system image inside the initramfs.
	img := t.TempDir()
	sqfs := append([]byte("hsqs"), bytes.Repeat([]byte{7}, 3000)...)
	os.WriteFile(filepath.Join(img, "initramfs.img"), append(newc("system.sqfs", sqfs), newc("TRAILER!!!", nil)...), 0o644)
	dst := filepath.Join(t.TempDir(), "system.sqfs")
	if err := SystemImage(img, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, sqfs) {
		t.Errorf("from the initramfs: %d bytes, want the %d of the squashfs", len(got), len(sqfs))
	}
	// A build with an update bundle: its system.sqfs.
	os.MkdirAll(filepath.Join(img, "update"), 0o755)
	os.WriteFile(filepath.Join(img, "update/system.sqfs"), []byte("hsqs bundle"), 0o644)
	dst = filepath.Join(t.TempDir(), "system.sqfs")
	if err := SystemImage(img, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "hsqs bundle" {
		t.Errorf("from the bundle: %q", got)
	}
	if err := SystemImage(t.TempDir(), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Error("a directory without a system image: no error")
	}
}

// TestPeerMAC: a node's eth0 keeps its address when it is made again, the
// address is a unicast, locally administered one, and another node or
// another cluster's namespace gets another.
func TestPeerMAC(t *testing.T) {
	a := Network{Namespace: "cairn-cluster-a"}
	b := Network{Namespace: "cairn-cluster-b"}
	mac := a.PeerMAC("s1")
	if again := a.PeerMAC("s1"); again != mac {
		t.Errorf("PeerMAC(s1) = %s, then %s; want the same", mac, again)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		t.Fatalf("PeerMAC(s1) = %q: not a MAC address (%v)", mac, err)
	}
	if hw[0]&1 != 0 || hw[0]&2 == 0 {
		t.Errorf("PeerMAC(s1) = %s: want unicast and locally administered", mac)
	}
	if other := a.PeerMAC("s2"); other == mac {
		t.Errorf("s1 and s2 both get %s", mac)
	}
	if other := b.PeerMAC("s1"); other == mac {
		t.Errorf("s1 of two clusters both get %s", mac)
	}
}
