package shutdown

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/init/supervise"
)

// Linux input event codes (linux/input-event-codes.h).
const (
	evKey    = 0x01
	keyPower = 116
	// inputEventSize is sizeof(struct input_event) on 64-bit machines:
	// a 16-byte timeval, type, code and value.
	inputEventSize = 24
)

// watchPowerKeys watches every input device that has a power key (the
// ACPI button driver's "Power Button", gpio-keys on arm64) and calls
// pressed on each press. Devices appear as modules load, so the class
// directory is rescanned, every quarter second while the machine boots and
// then slowly.
func watchPowerKeys(ctx context.Context, class, dev string, pressed func()) {
	watched := map[string]bool{}
	start := time.Now()
	for {
		for _, name := range powerKeyDevices(class) {
			if watched[name] {
				continue
			}
			f, err := os.Open(filepath.Join(dev, name))
			if err != nil {
				continue
			}
			watched[name] = true
			slog.Debug(fmt.Sprintf("shutdown: watching %s for the power key", f.Name()))
			supervise.Go("power key "+name, func() {
				readPowerKey(ctx, f, pressed)
			})
		}
		// Power keys appear as coldplug loads button, gpio_keys and evdev;
		// a press made as soon as the network is up must not be missed,
		// so look often while the machine boots (a scan reads a few small
		// sysfs files), then rarely.
		wait := 250 * time.Millisecond
		if time.Since(start) > 2*time.Minute {
			wait = 30 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// powerKeyDevices lists the eventN devices whose key capabilities include
// KEY_POWER.
func powerKeyDevices(class string) []string {
	paths, _ := filepath.Glob(filepath.Join(class, "event*"))
	var out []string
	for _, p := range paths {
		caps, err := os.ReadFile(filepath.Join(p, "device", "capabilities", "key"))
		if err != nil {
			continue
		}
		if hasBit(string(caps), keyPower) {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// hasBit reads a sysfs bitmap: hexadecimal words separated by spaces, most
// significant first, each as wide as a long.
func hasBit(bitmap string, bit int) bool {
	words := strings.Fields(bitmap)
	n := new(big.Int)
	for _, w := range words {
		var v big.Int
		if _, ok := v.SetString(w, 16); !ok {
			return false
		}
		n.Lsh(n, 64)
		n.Or(n, &v)
	}
	return n.Bit(bit) == 1
}

func readPowerKey(ctx context.Context, f *os.File, pressed func()) {
	defer f.Close()
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	buf := make([]byte, inputEventSize*16)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for i := 0; i+inputEventSize <= n; i += inputEventSize {
			ev := buf[i : i+inputEventSize]
			typ := binary.NativeEndian.Uint16(ev[16:])
			code := binary.NativeEndian.Uint16(ev[18:])
			value := int32(binary.NativeEndian.Uint32(ev[20:]))
			if typ == evKey && code == keyPower && value == 1 {
				pressed()
			}
		}
	}
}
