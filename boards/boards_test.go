package boards

import (
	"strings"
	"testing"
)

func TestEveryBoardLoads(t *testing.T) {
	names := Names()
	if len(names) < 2 {
		t.Fatalf("boards: %v, want at least qemu-x86_64 and qemu-arm64", names)
	}
	for _, n := range names {
		b, err := Load(n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if b.Console == "" || b.Kernel.Package == "" || len(b.Modules) == 0 {
			t.Errorf("%s: console, kernel.package and modules are required: %+v", n, b)
		}
	}
}

func TestUnknownBoard(t *testing.T) {
	if _, err := Load("pdp-11"); err == nil {
		t.Fatal("Load(pdp-11) succeeded")
	}
}

func TestParseIsStrict(t *testing.T) {
	for _, c := range []struct{ name, data, want string }{
		{"unknown key", "name: x\narch: arm64\nconsol: ttyS0\n", "field consol not found"},
		{"no name", "arch: arm64\n", "name is missing"},
		{"bad arch", "name: x\narch: riscv64\n", `arch "riscv64" is not amd64 or arm64`},
		{"firmware without files", "name: x\narch: arm64\nfirmware:\n  package: raspi-firmware\n", "firmware: needs package and files"},
	} {
		_, err := Parse([]byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse = %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
