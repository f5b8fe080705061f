// Package dceoverlay writes what `go build` needs (an -overlay file and a
// -modfile) so that the linker can drop code cairn-node never runs: the
// methods nothing calls and the kine drivers no datastore of cairn uses.
//
// One reachable call of reflect's Method or MethodByName with an argument
// known only at run time makes the linker keep every exported method of every
// type that is ever converted to an interface: it can no longer tell which
// ones are called. In cairn-node two places do that: text/template, which
// looks up the methods a template names (kubectl's, cobra's and urfave/cli's
// help pages), and go-cmp, which lists an unnamed interface's methods when it
// prints a type in a diff (etcd and apimachinery reach cmp.Diff). Both are
// changed here, in generated copies that never enter the repository:
//
//   - text/template (an overlay of exec.go): a method is looked up through a
//     switch over the names that the templates compiled into the binary can
//     use, each a constant, so the linker keeps the methods of those names
//     only. The names are every exported identifier after a dot in the
//     string literals and embedded files of the binary's packages, a
//     superset of what their templates call.
//   - go-cmp (a copy of the module, swapped in by a replace directive in the
//     generated go.mod): an unnamed interface type is printed by
//     reflect.Type.String instead of method by method.
//
// kine links every datastore driver it has from one file of pkg/endpoint;
// a copy of kine whose file names only the drivers asked for (Options) drops
// the others (its T4 driver brings pebble and the MinIO client, its NATS
// driver the NATS client and jsm.go).
//
// Three copies change upstream behaviour rather than size: kine's cached
// revision (KineRevision), client-go's work queues, whose unfinished-work
// gauges are refreshed every 10 s instead of every 500 ms (WorkqueuePeriod),
// and the apiserver's watch cache, whose bookmark loops sleep until a
// watcher is due instead of ticking every second (CacherBookmarks).
package dceoverlay

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
)

// Package is what `go list -json` says of one package, as far as needed here.
type Package struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	EmbedFiles []string
	Imports    []string
	Module     *Module
}

// Module is a package's module in `go list -json`.
type Module struct {
	Path    string
	Version string
	Dir     string
	Main    bool
}

// Paths of what Write generates, relative to its directory.
const (
	OverlayFile = "overlay.json" // for go build -overlay
	ModFile     = "go.mod"       // for go build -modfile (go.sum next to it)
)

// Options are the choices of what to leave out.
type Options struct {
	// KineDrivers are the kine drivers to link (directory names under
	// kine's pkg/drivers); nil links kine's own choice, all of them.
	KineDrivers []string
}

// Result says what Write changed.
type Result struct {
	TemplateNames int      // method names a template may call
	Template      bool     // text/template is in the build and was changed
	Modules       []string // the modules swapped for changed copies
}

// Write generates into dir (which it creates) the overlay and the go.mod for
// a build of pkgs, the dependencies of the binary as `go list -deps -json`
// lists them. goMod and goSum are the main module's files; modRoot is the
// main module's directory, which dir must be inside of (go.mod's replace
// directives point into dir by relative paths, so nothing of the builder's
// file system ends up in the binary).
func Write(dir, modRoot string, pkgs []Package, goMod, goSum []byte, opt Options) (Result, error) {
	var res Result
	rel, err := filepath.Rel(modRoot, dir)
	if err != nil || !filepath.IsLocal(rel) {
		return res, fmt.Errorf("%s is not inside the module root %s", dir, modRoot)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	kine := swap{pkg: kineEndpoint, edits: map[string]edit{kineSQLLogFile: KineRevision}}
	if opt.KineDrivers != nil {
		kine.edits[kineInitFile] = func(file string, src []byte) ([]byte, error) {
			return KineInit(file, src, opt.KineDrivers)
		}
	}
	swaps := []swap{
		{pkg: goCmpValue, edits: map[string]edit{goCmpNameFile: GoCmpName}},
		kine,
		{pkg: workqueuePkg, edits: map[string]edit{workqueueFile: WorkqueuePeriod}},
		{pkg: cacherPkg, edits: map[string]edit{cacherFile: CacherBookmarks}},
	}
	overlay := map[string]string{}
	mod := append([]byte(nil), goMod...)
	for _, p := range pkgs {
		if p.ImportPath == "text/template" {
			names, err := TemplateNames(pkgs)
			if err != nil {
				return res, err
			}
			repl, err := templateOverlay(dir, p, names)
			if err != nil {
				return res, err
			}
			maps.Copy(overlay, repl)
			res.Template, res.TemplateNames = true, len(names)
		}
		for _, s := range swaps {
			if p.ImportPath != s.pkg {
				continue
			}
			if p.Module == nil {
				return res, fmt.Errorf("%s: go list names no module", p.ImportPath)
			}
			name := path.Base(p.Module.Path)
			if err := copyModule(p.Module.Dir, filepath.Join(dir, name), s.edits); err != nil {
				return res, err
			}
			// The main module may pin the module by a replace of its own
			// (client-go's version); the copy's replaces it.
			if mod, err = dropReplace(mod, p.Module.Path); err != nil {
				return res, err
			}
			mod = fmt.Appendf(mod, "\n// Written by cairn's internal/dceoverlay: %s with %s changed.\nreplace %s => ./%s\n",
				p.Module.Path, strings.Join(slices.Sorted(maps.Keys(s.edits)), ", "), p.Module.Path, filepath.ToSlash(filepath.Join(rel, name)))
			res.Modules = append(res.Modules, p.Module.Path)
		}
	}
	js, err := json.MarshalIndent(struct{ Replace map[string]string }{overlay}, "", "\t")
	if err != nil {
		return res, err
	}
	for name, data := range map[string][]byte{OverlayFile: append(js, '\n'), ModFile: mod, "go.sum": goSum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return res, err
		}
	}
	return res, nil
}

// dropReplace returns goMod without its replace directives of the module
// modPath (any version); goMod is returned as it is when it has none.
func dropReplace(goMod []byte, modPath string) ([]byte, error) {
	f, err := modfile.Parse("go.mod", goMod, nil)
	if err != nil {
		return nil, err
	}
	found := false
	for _, r := range slices.Clone(f.Replace) {
		if r.Old.Path == modPath {
			if err := f.DropReplace(r.Old.Path, r.Old.Version); err != nil {
				return nil, err
			}
			found = true
		}
	}
	if !found {
		return goMod, nil
	}
	f.Cleanup()
	return modfile.Format(f.Syntax), nil
}
