package debdeps

import (
	"fmt"
	"sort"
	"strings"

	"pault.ag/go/debian/dependency"
	"pault.ag/go/debian/version"
)

// NodeNetworking is what a node needs from Debian: iptables (nft and legacy
// backends, for kube-proxy and the CNI portmap plugin), nftables and
// conntrack.
var NodeNetworking = []string{"iptables", "nftables", "conntrack"}

// Resolved is a package chosen for the closure, with the first package that
// needed it ("" for the ones asked for).
type Resolved struct {
	*Package
	NeededBy string
}

// Resolve returns the closure of names over Depends and Pre-Depends,
// sorted by name. For each dependency it keeps what is already chosen when
// that satisfies it; otherwise it takes the first alternative the index can
// satisfy, at the highest version allowed, by a real package or else by one
// that provides the name. Names in skip are treated as present and not
// followed (things the image has another way, or does not want).
func (ix *Index) Resolve(names []string, skip ...string) ([]Resolved, error) {
	skipped := map[string]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	chosen := map[string]*Resolved{}
	type want struct {
		alts []dependency.Possibility
		by   string
	}
	var queue []want
	for _, n := range names {
		rels, err := parseRelations(n)
		if err != nil {
			return nil, err
		}
		if len(rels) != 1 || len(rels[0].Possibilities) != 1 {
			return nil, fmt.Errorf("%q: name one package, with or without a version constraint", n)
		}
		queue = append(queue, want{alts: rels[0].Possibilities})
	}
	for len(queue) > 0 {
		w := queue[0]
		queue = queue[1:]
		if ix.satisfied(w.alts, chosen, skipped) {
			continue
		}
		p, err := ix.pick(w.alts, chosen)
		if err != nil {
			if w.by != "" {
				return nil, fmt.Errorf("%s (needed by %s): %w", altString(w.alts), w.by, err)
			}
			return nil, err
		}
		chosen[p.Name] = &Resolved{Package: p, NeededBy: w.by}
		for _, g := range append(append([]dependency.Relation{}, p.PreDepends...), p.Depends...) {
			queue = append(queue, want{alts: g.Possibilities, by: p.Name})
		}
	}
	out := make([]Resolved, 0, len(chosen))
	for _, r := range chosen {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// satisfied reports whether a chosen (or skipped) package meets one of alts.
func (ix *Index) satisfied(alts []dependency.Possibility, chosen map[string]*Resolved, skipped map[string]bool) bool {
	for _, d := range alts {
		if skipped[d.Name] {
			return true
		}
		if r, ok := chosen[d.Name]; ok && allows(d, r.Version) {
			return true
		}
		for _, r := range chosen {
			for _, pr := range r.Provides {
				if pr.Name == d.Name && providesAllows(d, pr) {
					return true
				}
			}
		}
	}
	return false
}

// pick chooses a package for the first alternative the index can satisfy.
func (ix *Index) pick(alts []dependency.Possibility, chosen map[string]*Resolved) (*Package, error) {
	var reasons []string
	for _, d := range alts {
		if r, ok := chosen[d.Name]; ok {
			reasons = append(reasons, fmt.Sprintf("%s is already chosen at %s, which does not satisfy %s", d.Name, r.Version, d))
			continue
		}
		for _, p := range ix.byName[d.Name] {
			if allows(d, p.Version) {
				return p, nil
			}
		}
		for _, p := range ix.provides[d.Name] {
			for _, pr := range p.Provides {
				if pr.Name == d.Name && providesAllows(d, pr) {
					if _, taken := chosen[p.Name]; !taken {
						return p, nil
					}
				}
			}
		}
		if versions := ix.versions(d.Name); versions != "" {
			reasons = append(reasons, fmt.Sprintf("%s: the index has %s", d, versions))
		} else {
			reasons = append(reasons, fmt.Sprintf("%s: not in the %s index", d.Name, ix.Arch))
		}
	}
	return nil, fmt.Errorf("cannot satisfy %s: %s; fetch a newer index (apt-get update) or skip the package", altString(alts), strings.Join(reasons, "; "))
}

// providesAllows: an unversioned Provides satisfies only unversioned
// dependencies; a versioned one ("foo (= 1.2)") is checked like a package.
func providesAllows(d, pr dependency.Possibility) bool {
	if d.Version == nil {
		return true
	}
	if pr.Version == nil || pr.Version.Operator != "=" {
		return false
	}
	v, err := version.Parse(pr.Version.Number)
	return err == nil && allows(d, v)
}

func (ix *Index) versions(name string) string {
	var vs []string
	for _, p := range ix.byName[name] {
		vs = append(vs, p.Version.String())
	}
	return strings.Join(vs, ", ")
}

func altString(alts []dependency.Possibility) string {
	return dependency.Relation{Possibilities: alts}.String()
}
