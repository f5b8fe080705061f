package manifests

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Waiting for the kinds a CustomResourceDefinition of the same round
// defines: the apiserver serves them within seconds of applying it.
var (
	crdWait = 30 * time.Second
	crdPoll = time.Second
)

// maxList bounds a list of one kind's objects of one manifest.
const maxList = 16 << 20

// round is what one round learns of the API: the kinds it serves, and
// the group versions CustomResourceDefinitions applied in it define.
type round struct {
	a       *applier
	disc    *kube.Discovery
	defined map[string]bool // apiVersions a CRD of this round defines, not yet waited for
}

func newRound(a *applier) *round {
	return &round{a: a, disc: kube.NewDiscovery(a.o.API), defined: map[string]bool{}}
}

// find is kind's resource, waiting a while for one a CRD of this round
// defines.
func (r *round) find(ctx context.Context, apiVersion, kind string) (kube.Resource, error) {
	res, err := r.disc.Find(ctx, apiVersion, kind)
	if !errors.Is(err, kube.ErrNoKind) || !r.defined[apiVersion] {
		return res, err
	}
	delete(r.defined, apiVersion) // waited for once a round
	for i := time.Duration(0); i < crdWait && supervise.Sleep(ctx, crdPoll); i += crdPoll {
		r.disc.Forget(apiVersion)
		if res, err = r.disc.Find(ctx, apiVersion, kind); !errors.Is(err, kube.ErrNoKind) {
			return res, err
		}
	}
	return res, err
}

// defines notes the group versions a CustomResourceDefinition serves.
func (r *round) defines(o config.ManifestObject) {
	spec, _ := o.Object["spec"].(map[string]any)
	group, _ := spec["group"].(string)
	versions, _ := spec["versions"].([]any)
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		if name, _ := vm["name"].(string); group != "" && name != "" {
			r.defined[group+"/"+name] = true
			r.disc.Forget(group + "/" + name)
		}
	}
}

// kindOf is an object's entry in the record's kinds.
func kindOf(apiVersion, kind string) string { return apiVersion + " " + kind }

// objectKey names an object whatever version it is read in.
func objectKey(apiVersion, kind, ns, name string) string {
	group, _, _ := strings.Cut(apiVersion, "/")
	if !strings.Contains(apiVersion, "/") {
		group = ""
	}
	return group + "/" + kind + "/" + ns + "/" + name
}

// order puts Namespaces, then CustomResourceDefinitions, first: what the
// other objects may need.
func order(o config.ManifestObject) int {
	switch o.Kind() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	}
	return 2
}

// parse reads m's objects, telling once per change what is wrong with
// it: a manifest that does not parse is left as it is, and its objects
// too.
func (a *applier) parse(m *manifest) bool {
	objs, problems := config.ParseManifest(m.data)
	if len(problems) == 0 {
		m.objs = objs
		return true
	}
	e := problems[0]
	where := m.where
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d", m.where, e.Line)
	}
	more := ""
	if len(problems) > 1 {
		more = fmt.Sprintf(" (and %d more problems)", len(problems)-1)
	}
	msg := e.Msg
	if e.Object != "" {
		msg = e.Object + ": " + msg
	}
	a.say("apply "+m.where, "fail "+m.digest, "manifests: %s: %s%s; nothing of it is applied and its objects stay as they are: fix it", where, msg, more)
	return false
}

// apply applies one manifest whole, deletes the objects it no longer
// holds, and tells the outcome once per change.
func (a *applier) apply(ctx context.Context, r *round, rec record, m manifest) {
	subject := "apply " + m.where
	objs := m.objs
	slices.SortStableFunc(objs, func(x, y config.ManifestObject) int { return order(x) - order(y) })

	// The record names the kinds first, so that a restart in the middle
	// still finds what is applied.
	prev := rec[m.name]
	var kinds []string
	for _, o := range objs {
		kinds = union(kinds, []string{kindOf(o.APIVersion(), o.Kind())})
	}
	next := entry{Source: m.where, Kinds: union(prev.Kinds, kinds), Servers: union(prev.Servers, []string{a.o.Node})}
	if !next.equal(prev) {
		rec[m.name] = next
		if err := rec.write(ctx, a.o.API); err != nil {
			a.say(subject, "fail "+m.digest, "manifests: %s: cannot write %s/%s: %s; it is tried again in %s", m.where, Namespace, RecordName, brief.Err(err), pollEvery)
			return
		}
	}

	var failed []string
	want := map[string]bool{}
	known := true // every object's kind is known, or surely not served
	for _, o := range objs {
		res, err := r.find(ctx, o.APIVersion(), o.Kind())
		if err != nil {
			known = known && errors.Is(err, kube.ErrNoKind)
			failed = append(failed, fmt.Sprintf("%s: %s", o, reason(err)))
			continue
		}
		obj, ns := labelled(o, res, m)
		want[objectKey(o.APIVersion(), o.Kind(), ns, o.Name())] = true
		if err := a.o.API.ApplyAt(ctx, res, obj, FieldManager); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %s", o, reason(err)))
			continue
		}
		if o.Kind() == "CustomResourceDefinition" {
			r.defines(o)
		}
	}
	if ctx.Err() != nil {
		return // stopping, or the Lease was lost: the next round goes on
	}
	var deleted []string
	keep := kinds
	if known {
		var pruneErr error
		deleted, keep, pruneErr = a.prune(ctx, r, m.name, next.Kinds, want)
		keep = union(keep, kinds)
		if pruneErr != nil {
			failed = append(failed, "deleting what it no longer holds: "+reason(pruneErr))
		}
	} else {
		keep = next.Kinds
	}
	if final := (entry{Source: m.where, Kinds: keep, Servers: next.Servers}); !final.equal(next) {
		rec[m.name] = final
		if err := rec.write(ctx, a.o.API); err != nil {
			failed = append(failed, fmt.Sprintf("writing %s/%s: %s", Namespace, RecordName, reason(err)))
		}
	}
	if len(failed) > 0 {
		more := ""
		if len(failed) > 1 {
			more = fmt.Sprintf(" (and %d more failed)", len(failed)-1)
		}
		a.say(subject, "fail "+m.digest, "manifests: %s: %s%s; the rest of it is applied, and it is tried again every %s", m.where, failed[0], more, pollEvery)
		return
	}
	a.applied[m.name] = m.digest
	gone := ""
	if len(deleted) > 0 {
		gone = fmt.Sprintf("; deleted %d it no longer holds: %s", len(deleted), listed(deleted))
	}
	a.say(subject, "ok "+m.digest, "manifests: applied %s: %s%s", m.where, count(len(objs), "object"), gone)
}

// labelled is the object to apply: labelled with its manifest, its
// namespace "default" when its kind is namespaced and it names none, and
// none when its kind is cluster-scoped. ns is its namespace then.
func labelled(o config.ManifestObject, res kube.Resource, m manifest) (obj kube.Object, ns string) {
	meta, _ := o.Object["metadata"].(map[string]any)
	labels, ok := meta["labels"].(map[string]any)
	if !ok {
		labels = map[string]any{}
	}
	labels[Label] = m.name
	meta["labels"] = labels
	annotations, ok := meta["annotations"].(map[string]any)
	if !ok {
		annotations = map[string]any{}
	}
	annotations[SourceAnnotation] = m.where
	meta["annotations"] = annotations
	if res.Namespaced {
		if ns = o.Namespace(); ns == "" {
			ns = "default"
			meta["namespace"] = ns
		}
	} else {
		delete(meta, "namespace")
	}
	return kube.Object(o.Object), ns
}

// prune deletes the objects labelled with manifest name, of kinds, that
// want does not hold (all of them when want is empty). keep are the
// kinds that may still have such objects: those it could not list or
// delete.
func (a *applier) prune(ctx context.Context, r *round, name string, kinds []string, want map[string]bool) (deleted, keep []string, err error) {
	api := a.o.API.WithMaxReply(maxList)
	for _, k := range kinds {
		apiVersion, kind, _ := strings.Cut(k, " ")
		res, ferr := r.find(ctx, apiVersion, kind)
		if errors.Is(ferr, kube.ErrNoKind) {
			continue // not served any more: nothing of it is left
		}
		if ferr != nil {
			keep, err = append(keep, k), ferr
			continue
		}
		var list struct {
			Items []struct {
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			} `json:"items"`
		}
		if lerr := api.Get(ctx, res.Collection("")+"?labelSelector="+url.QueryEscape(Label+"="+name), &list); lerr != nil {
			keep, err = append(keep, k), lerr
			continue
		}
		for _, it := range list.Items {
			md := it.Metadata
			if want[objectKey(apiVersion, kind, md.Namespace, md.Name)] {
				continue
			}
			derr := a.o.API.Do(ctx, http.MethodDelete, res.Path(md.Namespace, md.Name)+"?propagationPolicy=Background", nil, nil)
			if derr != nil && !kube.IsStatus(derr, http.StatusNotFound) {
				keep, err = union(keep, []string{k}), derr
				continue
			}
			obj := kind + " " + md.Name
			if md.Namespace != "" {
				obj = kind + " " + md.Namespace + "/" + md.Name
			}
			deleted = append(deleted, obj)
		}
	}
	return deleted, keep, err
}

// removals says whether the record holds work for this server: a
// manifest it no longer holds but is named for, or one no server that is
// still a node of the cluster holds.
func (a *applier) removals(ctx context.Context, rec record, s sources) bool {
	if s.partial {
		return false
	}
	for name, e := range rec {
		if !s.holds(name) && (slices.Contains(e.Servers, a.o.Node) || a.orphan(ctx, e)) {
			return true
		}
	}
	return false
}

// orphan says whether no server but this one holds the manifest of e: a
// server named there that is no longer a node of the cluster holds
// nothing.
func (a *applier) orphan(ctx context.Context, e entry) bool {
	for _, s := range e.Servers {
		if s == a.o.Node {
			continue
		}
		err := a.o.API.Get(ctx, "/api/v1/nodes/"+url.PathEscape(s), nil)
		if !kube.IsStatus(err, http.StatusNotFound) {
			return false // a node, or unknown: it may hold it
		}
	}
	return true
}

// remove takes this server's name off the manifests it no longer holds,
// and deletes the objects of those no server holds then. It says whether
// all of that is done.
func (a *applier) remove(ctx context.Context, r *round, rec record, s sources) bool {
	if s.partial {
		return false
	}
	done := true
	for _, name := range sortedNames(rec) {
		e := rec[name]
		if s.holds(name) {
			continue
		}
		subject := "remove " + name
		if !a.orphan(ctx, e) {
			if slices.Contains(e.Servers, a.o.Node) {
				e.Servers = without(e.Servers, a.o.Node)
				rec[name] = e
				if err := rec.write(ctx, a.o.API); err != nil {
					done = false
				}
			}
			continue
		}
		why := "is gone from every server"
		if a.disabled(name) {
			why = "is disabled"
		}
		deleted, keep, err := a.prune(ctx, r, name, e.Kinds, nil)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			done = false
			e.Kinds = keep
			rec[name] = e
			rec.write(ctx, a.o.API)
			a.say(subject, reason(err), "manifests: %s %s; deleting its objects failed: %s; it is tried again in %s", e.Source, why, reason(err), pollEvery)
			continue
		}
		delete(rec, name)
		if err := rec.write(ctx, a.o.API); err != nil {
			done = false
			continue
		}
		a.quiet(subject)
		msg := "it had no objects left"
		if len(deleted) > 0 {
			msg = fmt.Sprintf("deleted its %s: %s", count(len(deleted), "object"), listed(deleted))
		}
		a.o.Printf("manifests: %s %s: %s", e.Source, why, msg)
	}
	return done
}

func sortedNames(rec record) []string {
	names := make([]string, 0, len(rec))
	for n := range rec {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// count is "1 object", "2 objects".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// listed names up to a few objects.
func listed(objs []string) string {
	if len(objs) <= 5 {
		return strings.Join(objs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(objs[:5], ", "), len(objs)-5)
}

// reason is the apiserver's words for a failure, or the error's.
func reason(err error) string {
	var ae *kube.Error
	if errors.As(err, &ae) {
		return brief.FirstLine([]byte(ae.Message), 300)
	}
	if errors.Is(err, kube.ErrNoKind) {
		return err.Error() + " (is its CustomResourceDefinition applied?)"
	}
	return brief.Err(err)
}
