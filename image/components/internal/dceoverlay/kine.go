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
	// kineSQLLogFile keeps kine's current revision (see KineRevision).
	kineSQLLogFile = "pkg/logstructured/sqllog/sql.go"
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

// kineRevisionCAS are the two places kine v0.17 moves its cached current
// revision, each by a compare-and-swap from the value it last saw.
var kineRevisionCAS = []string{
	"s.currentRev.CompareAndSwap(pollRevision, rev)",
	"s.currentRev.CompareAndSwap(currentRev, rev)",
}

// KineRevision returns kine's pkg/logstructured/sqllog/sql.go (src, read
// from file) with its cached current revision kept as a running maximum.
//
// kine caches the datastore's current revision and moves it by a
// compare-and-swap from the value the poll loop (or a write) last saw.
// With two servers, each with its own kine on one database (cairn's HA
// layout), the other kine's writes land between this kine's start and its
// first poll; from then on the swap never succeeds and only this kine's own
// writes move the cache. Its progress notifications then carry a revision
// far behind the database's, the apiserver's watch cache goes back to it,
// watch-lists fail with "Too large resource version", the informers of idle
// resources never sync, and kube-apiserver's post-start hook kills it a
// minute later, at every restart (componenttest's
// TestAPIServerRestartsOnKine shows it). A running maximum is what the
// cache means: the newest revision this kine has seen.
func KineRevision(file string, src []byte) ([]byte, error) {
	var rs []replacement
	for _, cas := range kineRevisionCAS {
		rs = append(rs, replacement{cas, "cairnRaiseRevision(&s.currentRev, rev)"})
	}
	b, err := replaceOnce(file, "kine", src, rs...)
	if err != nil {
		return nil, err
	}
	// The write path's snapshot of the cache is no longer read.
	out := strings.Replace(string(b), "\tcurrentRev := s.currentRev.Load()\n", "", 1)
	out += `
// cairnRaiseRevision raises *cur to rev, never lowering it (added by cairn's
// internal/dceoverlay: kine kept a stale revision when another kine wrote).
func cairnRaiseRevision(cur *atomic.Int64, rev int64) {
	for c := cur.Load(); rev > c && !cur.CompareAndSwap(c, rev); c = cur.Load() {
	}
}
`
	return []byte(out), nil
}
