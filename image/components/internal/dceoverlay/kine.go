package dceoverlay

import (
	"fmt"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
)

// kine's package that links its datastore drivers, and the file of it that
// does, by blank imports of every driver.
const (
	kineEndpoint = "github.com/k3s-io/kine/pkg/endpoint"
	kineInitFile = "pkg/endpoint/init.go"
	kineDrivers  = "github.com/k3s-io/kine/pkg/drivers/"
)

// KineInit returns kine's pkg/endpoint/init.go (src, read from file) with
// the blank imports of the drivers not in keep (their directory names under
// pkg/drivers: pgsql, mysql, sqlite, nats, t4, ...) left out. Every import of
// the file must be such a driver, and every driver in keep must be there.
func KineInit(file string, src []byte, keep []string) ([]byte, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, src, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var have, kept []string
	for _, im := range f.Imports {
		path, err := strconv.Unquote(im.Path.Value)
		if err != nil {
			return nil, err
		}
		name, ok := strings.CutPrefix(path, kineDrivers)
		if !ok || im.Name == nil || im.Name.Name != "_" {
			return nil, fmt.Errorf("%s: import %s is not a blank import of a kine driver; this kine version needs a new look (internal/dceoverlay)", file, path)
		}
		have = append(have, name)
		if slices.Contains(keep, name) {
			kept = append(kept, path)
		}
	}
	for _, k := range keep {
		if !slices.Contains(have, k) {
			return nil, fmt.Errorf("%s: kine has no driver %q (it has %s)", file, k, strings.Join(have, ", "))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\n// The drivers cairn's datastores use (cairn's internal/dceoverlay changed\n// this file; kine's links all of: %s).\nimport (\n", f.Name.Name, strings.Join(have, ", "))
	for _, p := range kept {
		fmt.Fprintf(&b, "\t_ %q\n", p)
	}
	b.WriteString(")\n")
	return []byte(b.String()), nil
}
