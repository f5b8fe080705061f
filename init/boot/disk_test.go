package boot

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBlessEntries(t *testing.T) {
	for _, c := range []struct {
		name       string
		entries    []string
		slot       string
		want       []string
		fellBackTo string
	}{
		{"first boot of A", []string{"cairn-a+2-1.conf"}, "a", []string{"cairn-a.conf"}, ""},
		{"A already good", []string{"cairn-a.conf"}, "a", []string{"cairn-a.conf"}, ""},
		{"B ran out of tries", []string{"cairn-a.conf", "cairn-b+0-3.conf"}, "a", []string{"cairn-a.conf", "cairn-b+0-3.conf"}, "slot B failed to boot 3 times"},
		{"B boots, A kept", []string{"cairn-a.conf", "cairn-b+2-1.conf", "other.conf"}, "b", []string{"cairn-a.conf", "cairn-b.conf", "other.conf"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, e := range c.entries {
				if err := os.WriteFile(filepath.Join(dir, e), []byte("title x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var log bytes.Buffer
			old := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&log, nil)))
			defer slog.SetDefault(old)
			if err := blessEntries(dir, c.entries, c.slot); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("entries after blessing %v: %v, want %v", c.entries, got, c.want)
			}
			if c.fellBackTo != "" && !strings.Contains(log.String(), c.fellBackTo) {
				t.Errorf("console %q does not say %q", log.String(), c.fellBackTo)
			}
		})
	}
}

func TestGrowEnd(t *testing.T) {
	for _, c := range []struct {
		name string
		bi   blockInfo
		want uint64
	}{
		// STATE of 64 MiB ending 1 MiB before the end of a 700 MiB disk, as built.
		{"as built", blockInfo{start: 1269760, sectors: 131072, diskLen: 1402880}, 1269760 + 131072 - 1},
		// The same disk enlarged to 2 GiB: the end moves to the last whole MiB before the backup GPT.
		{"enlarged", blockInfo{start: 1269760, sectors: 131072, diskLen: 4194304}, 4192255},
		// A disk sysfs says is smaller than the partition: left alone.
		{"inconsistent", blockInfo{start: 1269760, sectors: 131072, diskLen: 20}, 1269760 + 131072 - 1},
	} {
		if got := growEnd(c.bi); got != c.want {
			t.Errorf("%s: growEnd = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB", 1536 << 10: "1.5 MiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTrialEntry(t *testing.T) {
	for _, c := range []struct {
		entries []string
		slot    string
		want    string
	}{
		{[]string{"cairn-a+2-1.conf"}, "a", "cairn-a+2-1.conf"},
		{[]string{"cairn-a.conf", "cairn-b+0-1.conf"}, "b", "cairn-b+0-1.conf"},
		{[]string{"cairn-a.conf", "cairn-b+0-1.conf"}, "a", ""},
		{[]string{"cairn-a+3.conf"}, "a", "cairn-a+3.conf"},
	} {
		if got := trialEntry(c.entries, c.slot); got != c.want {
			t.Errorf("trialEntry(%v, %s) = %q, want %q", c.entries, c.slot, got, c.want)
		}
	}
}

// TestBlessTryboot follows the Raspberry Pi's tryboot scheme: what
// config.txt and tryboot.txt name after a boot, and what the console says.
func TestBlessTryboot(t *testing.T) {
	conf := func(slot string) string { return "arm_64bit=1\nos_prefix=" + slot + "/\nkernel=vmlinuz\n" }
	for _, c := range []struct {
		name               string
		cfg, try           string // slots config.txt and tryboot.txt name
		slot               string // the running slot
		tryboot            bool
		wantCfg, wantTry   string
		wantLog, wantTrial string
	}{
		{"first boot of A", "a", "a", "a", false, "a", "a", "slot A booted (config.txt)", ""},
		{"B on trial, comes up", "a", "b", "b", true, "b", "b", "slot B booted on trial (tryboot.txt); config.txt boots it from now on", "the firmware's trial boot"},
		{"B's trial failed, A again", "a", "b", "a", false, "a", "a", "slot B did not come up on its trial boot (tryboot.txt); the firmware fell back to slot A", ""},
		{"B trusted", "b", "b", "b", false, "b", "b", "slot B booted", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "config.txt"), []byte(conf(c.cfg)), 0o644)
			os.WriteFile(filepath.Join(dir, "tryboot.txt"), []byte(conf(c.try)), 0o644)
			if got := trialTryboot(dir, c.slot, c.tryboot); !strings.HasPrefix(got, c.wantTrial) || (got == "") != (c.wantTrial == "") {
				t.Errorf("on trial: %q, want %q", got, c.wantTrial)
			}
			var log bytes.Buffer
			old := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&log, nil)))
			defer slog.SetDefault(old)
			if err := blessTryboot(dir, c.slot, c.tryboot); err != nil {
				t.Fatal(err)
			}
			cfg, _ := os.ReadFile(filepath.Join(dir, "config.txt"))
			try, _ := os.ReadFile(filepath.Join(dir, "tryboot.txt"))
			if piSlot(cfg) != c.wantCfg || piSlot(try) != c.wantTry {
				t.Errorf("config.txt boots %q, tryboot.txt %q; want %q and %q", piSlot(cfg), piSlot(try), c.wantCfg, c.wantTry)
			}
			if !strings.Contains(log.String(), c.wantLog) {
				t.Errorf("console %q does not say %q", log.String(), c.wantLog)
			}
		})
	}
}
