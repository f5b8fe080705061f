package shutdown

import "testing"

// FuzzHasBit reads arbitrary sysfs capability bitmaps: nothing may panic.
func FuzzHasBit(f *testing.F) {
	f.Add("10000000000000 0\n", 116)
	f.Add("ffff ffffffffffffffff", 3)
	f.Fuzz(func(t *testing.T, bitmap string, bit int) {
		if bit < 0 || bit > 1<<16 {
			return
		}
		hasBit(bitmap, bit)
	})
}
