package debdeps

import (
	"testing"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// constraint is the dependency "x (op v)".
func constraint(op, v string) dependency.Possibility {
	return dependency.Possibility{Name: "x", Version: &dependency.VersionRelation{Operator: op, Number: v}}
}

// TestVersionOrder checks that version constraints follow dpkg's ordering.
func TestVersionOrder(t *testing.T) {
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
	ops := map[int]string{-1: "<<", 0: "=", 1: ">>"}
	for _, tt := range tests {
		for _, c := range []struct {
			a, b string
			want int
		}{{tt.a, tt.b, tt.want}, {tt.b, tt.a, -tt.want}} {
			v, err := version.Parse(c.a)
			if err != nil {
				t.Fatal(err)
			}
			for cmp, op := range ops {
				if got := allows(constraint(op, c.b), v); got != (cmp == c.want) {
					t.Errorf("%s satisfies (%s %s): %v, want %v", c.a, op, c.b, got, !got)
				}
			}
		}
	}
}

func FuzzVersionOrder(f *testing.F) {
	for _, s := range []string{"1.0", "1:2.3~rc1-4+b1", "0", "~", "a-b-c"} {
		f.Add(s, "1.0-1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := version.Parse(a)
		_, errB := version.Parse(b)
		if errA != nil || errB != nil {
			return
		}
		n := 0
		for _, op := range []string{"<<", "=", ">>"} {
			if allows(constraint(op, b), va) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%q meets %d of (<< %s), (= %s), (>> %s); want exactly one", a, n, b, b, b)
		}
	})
}
