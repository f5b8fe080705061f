package shutdown

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestHasBit(t *testing.T) {
	for _, tc := range []struct {
		bitmap string
		bit    int
		want   bool
	}{
		// The ACPI power button: KEY_POWER (116) only.
		{"10000000000000 0\n", 116, true},
		{"10000000000000 0\n", 115, false},
		// A keyboard without a power key, bits in the low word.
		{"fffffffffffffffe", 116, false},
		{"0", 116, false},
		{"zz", 116, false},
	} {
		if got := hasBit(tc.bitmap, tc.bit); got != tc.want {
			t.Errorf("hasBit(%q, %d) = %v, want %v", tc.bitmap, tc.bit, got, tc.want)
		}
	}
}

// TestWatchPowerKeys feeds input events through a FIFO laid out as sysfs
// and /dev/input would be: a key release, another key, then a power press.
func TestWatchPowerKeys(t *testing.T) {
	dir := t.TempDir()
	class, dev := filepath.Join(dir, "class"), filepath.Join(dir, "dev")
	os.MkdirAll(filepath.Join(class, "event3/device/capabilities"), 0o755)
	os.WriteFile(filepath.Join(class, "event3/device/capabilities/key"), []byte("10000000000000 0\n"), 0o644)
	os.MkdirAll(filepath.Join(class, "event4/device/capabilities"), 0o755)
	os.WriteFile(filepath.Join(class, "event4/device/capabilities/key"), []byte("fffe\n"), 0o644)
	os.MkdirAll(dev, 0o755)
	fifo := filepath.Join(dev, "event3")
	if err := mkfifo(fifo); err != nil {
		t.Skip(err)
	}
	pressed := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchPowerKeys(ctx, class, dev, func() { pressed <- struct{}{} })

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ev := func(typ, code uint16, value int32) []byte {
		b := make([]byte, inputEventSize)
		binary.NativeEndian.PutUint16(b[16:], typ)
		binary.NativeEndian.PutUint16(b[18:], code)
		binary.NativeEndian.PutUint32(b[20:], uint32(value))
		return b
	}
	w.Write(ev(evKey, keyPower, 0)) // release
	w.Write(ev(evKey, 30, 1))       // KEY_A
	select {
	case <-pressed:
		t.Fatal("a release or another key counted as a power press")
	case <-time.After(100 * time.Millisecond):
	}
	w.Write(ev(evKey, keyPower, 1))
	select {
	case <-pressed:
	case <-time.After(10 * time.Second):
		t.Fatal("a power key press was not seen")
	}
}
