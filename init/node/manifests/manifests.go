// Package manifests keeps a cluster's own manifests applied, the k3s way:
// the cloud-config's kubernetes.manifests and the files of
// layout.ManifestsDir, applied by the servers with server-side apply at
// start and on change, one server at a time; what a manifest no longer
// holds is deleted, and so is everything it held once no server holds it.
package manifests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Options are what the applier needs, given once.
type Options struct {
	// API is the server's admin client of its own apiserver.
	API *kube.Client
	// Node is this server's node name: the Lease's holder while it
	// applies, and its name in the record of who holds which manifest.
	Node string
	// Printf writes one console line.
	Printf func(format string, args ...any)
	// Inline are the cloud-config's kubernetes.manifests.
	Inline []config.Manifest
	// Dir holds manifest files (layout.ManifestsDir).
	Dir string
	// Disable names manifests not to apply (kubernetes.disable).
	Disable []string
}

// The names the applier uses in the cluster.
const (
	// FieldManager owns the fields applied from manifests.
	FieldManager = "cairn-manifests"
	// Namespace holds the Lease and the record.
	Namespace = "kube-system"
	// LeaseName is the Lease a server holds while it applies.
	LeaseName = "cairn-manifests"
	// RecordName is the ConfigMap that records, per manifest, the kinds
	// of its objects and the servers that hold it.
	RecordName = "cairn-manifests"
	// Label names, on every object applied, the manifest it came from.
	Label = "cairn-os.github.io/manifest"
	// SourceAnnotation says where that manifest is: a file, or
	// manifests[NAME] of the cloud-config.
	SourceAnnotation = "cairn-os.github.io/manifest-source"
)

// pollEvery is how often the directory is read again.
var pollEvery = 30 * time.Second

// Run applies the manifests until ctx ends: now, and whenever one
// changes. A round that fails is tried again at the next poll; a panic
// in one is told and the next round runs.
func Run(ctx context.Context, o Options) {
	a := newApplier(o)
	for {
		func() {
			defer supervise.Recover("manifests")
			a.round(ctx)
		}()
		if !supervise.Sleep(ctx, pollEvery) {
			return
		}
	}
}

// applier is the state of one server's applying.
type applier struct {
	o   Options
	now func() time.Time
	// applied maps each manifest this server applied whole to the
	// digest of what it applied.
	applied map[string]string
	// names are the manifests of the last round, joined; reconcile says
	// the record must be checked for manifests this server no longer
	// holds (at start, and when names change).
	names     string
	reconcile bool
	// said maps a subject (a manifest, a file) to the last line told
	// about it, so that each is told once per change.
	said map[string]string
}

func newApplier(o Options) *applier {
	return &applier{o: o, now: time.Now, applied: map[string]string{}, reconcile: true, said: map[string]string{}}
}

// say prints a line about subject unless the last one about it had the
// same key.
func (a *applier) say(subject, key, format string, args ...any) {
	if k, ok := a.said[subject]; ok && k == key {
		return
	}
	a.said[subject] = key
	a.o.Printf(format, args...)
}

// quiet forgets what was told about subject.
func (a *applier) quiet(subject string) { delete(a.said, subject) }

// manifest is one manifest of a round.
type manifest struct {
	name   string
	where  string // a file's path, or manifests[NAME]
	data   []byte
	digest string
	objs   []config.ManifestObject
}

func newManifest(name, where string, data []byte) manifest {
	sum := sha256.Sum256(data)
	return manifest{name: name, where: where, data: data, digest: hex.EncodeToString(sum[:])}
}

// round applies what changed and removes what is gone, holding the Lease;
// it does nothing, and asks the apiserver nothing, when there is nothing
// to do.
func (a *applier) round(ctx context.Context) {
	s := a.gather()
	var names []string
	var pending []manifest
	for _, m := range s.list {
		names = append(names, m.name)
		if a.applied[m.name] != m.digest && a.parse(&m) {
			pending = append(pending, m)
		}
	}
	if joined := strings.Join(names, ","); joined != a.names {
		a.names, a.reconcile = joined, true
	}
	if len(pending) == 0 && !a.reconcile {
		return
	}
	if len(pending) == 0 {
		// Only removals: this server's name must be in the record, or a
		// manifest there held by no server, before it takes the Lease.
		rec, err := readRecord(ctx, a.o.API)
		if err != nil {
			// Most often a server with no manifests at all: it says
			// nothing on the console, and asks again at the next poll.
			slog.Debug(fmt.Sprintf("manifests: cannot read %s/%s: %s; trying again in %s", Namespace, RecordName, brief.Err(err), pollEvery))
			return
		}
		if !a.removals(ctx, rec, s) {
			a.reconcile = false
			return
		}
	}
	hold, err := a.take(ctx)
	if err != nil {
		a.say("lease", brief.Err(err), "manifests: cannot take the Lease %s/%s: %s; trying again in %s", Namespace, LeaseName, brief.Err(err), pollEvery)
		return
	}
	a.quiet("lease")
	if hold == nil {
		return // another server applies now; this one tries at the next poll
	}
	defer hold.release()
	rec, err := readRecord(hold.ctx, a.o.API)
	if err != nil {
		a.say("record", brief.Err(err), "manifests: cannot read %s/%s: %s; trying again in %s", Namespace, RecordName, brief.Err(err), pollEvery)
		return
	}
	a.quiet("record")
	r := newRound(a)
	for _, m := range pending {
		a.apply(hold.ctx, r, rec, m)
	}
	if a.reconcile && a.remove(hold.ctx, r, rec, s) {
		a.reconcile = false
	}
}

// disabled says whether kubernetes.disable names the manifest.
func (a *applier) disabled(name string) bool { return slices.Contains(a.o.Disable, name) }
