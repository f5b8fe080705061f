package config_test

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// floors are the house's floors, top-level folder by folder
// (docs/architecture.md): a package may import its own floor and those
// below, never one above; on floor 2 the builder, the init and the harness
// keep out of each other's rooms.
var floors = map[string]int{"cmd": 3, "image": 2, "init": 2, "qemu": 2, "test": 3, "config": 1, "boards": 1}

func TestImportsRunDown(t *testing.T) {
	const module = "github.com/cairn-os/cairn/"
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		from := folder(strings.TrimPrefix(p.ImportPath, module))
		for _, imp := range p.Imports {
			rest, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			checked++
			to := folder(rest)
			if from == to {
				continue
			}
			if floors[to] > floors[from] || (floors[to] == floors[from] && floors[to] == 2) {
				t.Errorf("%s imports %s: %s (floor %d) may not import %s (floor %d); move the shared piece down to config/", p.ImportPath, imp, from, floors[from], to, floors[to])
			}
		}
	}
	if checked == 0 {
		t.Fatal("no imports between cairn's packages were seen: the check checked nothing")
	}
}

func folder(path string) string {
	top, _, _ := strings.Cut(path, "/")
	if _, ok := floors[top]; !ok {
		return "cmd" // a folder the table does not name sits at the top until it is placed
	}
	return top
}
