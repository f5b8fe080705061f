package debdeps

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1:1.0", "2.0", 1},    // epoch wins
		{"0:1.0", "1.0", 0},    // missing epoch is 0
		{"1.0~rc1", "1.0", -1}, // ~ sorts before the end
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0a", "1.0", 1},
		{"1.0+b1", "1.0", 1},
		{"1.0-1", "1.0-2", -1},
		{"1.0-10", "1.0-9", 1},
		{"2.36-9+deb12u14", "2.36-9+deb12u7", 1},
		{"1.0.0", "1.0", 1},
		{"1.0-1", "1.0.1-1", -1},
		{"1.001", "1.1", 0},  // leading zeros
		{"1.0a", "1.0+", -1}, // letters before other characters
		{"1.8.9-2", "1.8.9-2", 0},
		{"1:1.4.7-1+b2", "1.4.7", 1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"1.0", "1:2.3~rc1-4+b1", "0", "~", "a-b-c"} {
		f.Add(s, "1.0-1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Errorf("CompareVersions is not antisymmetric on %q, %q", a, b)
		}
		if CompareVersions(a, a) != 0 {
			t.Errorf("CompareVersions(%q, itself) != 0", a)
		}
	})
}
