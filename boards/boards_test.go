package boards

import "testing"

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
