// Package etcdsnap keeps snapshots of a server's embedded etcd member, the
// way k3s does: on a schedule and when `cairn etcd-snapshot save` asks,
// into a directory on STATE and with etcd-s3 into an S3 bucket too, the
// newest kept in both, each recorded in the cluster (config/etcdsnap);
// and, before etcd starts, it restores one (a file, or a snapshot in the
// bucket) into a new single-member cluster or resets membership (Reset).
// One seam (Options) and one start (Run).
package etcdsnap

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/cron"
	snaprec "github.com/cairn-os/cairn/config/etcdsnap"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Options are what the snapshots need, given once.
type Options struct {
	// Node is this server's node name: in every file name and record.
	Node string
	// Etcd reaches this server's own member only (one endpoint), with
	// its TLS client certificate.
	Etcd clientv3.Config
	// API is the server's admin client of its own apiserver.
	API *kube.Client
	// Dir holds the snapshot files; Name starts their names; Compress
	// is one of config.Compress*; Retention is how many this server
	// keeps.
	Dir, Name, Compress string
	Retention           int
	// Schedule says when to take one; nil takes them only when asked.
	Schedule *cron.Schedule
	// S3 is where each snapshot is copied too (etcd-s3); nil: nowhere.
	S3 *S3
	// Printf writes one console line.
	Printf func(format string, args ...any)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Waiting on the apiserver: growing delays; a watch of the record lasts
// watchFor before it is asked again; a record is written within
// patchTries.
var (
	retryFirst = 2 * time.Second
	retryMax   = time.Minute
	watchFor   = 5 * time.Minute
	patchTries = 5
	// hashLimit bounds reading a snapshot file to hash it.
	hashLimit = maxSnapshot
)

// runner is one server's snapshots while it runs.
type runner struct {
	o Options
	// mu keeps a snapshot and a sync of the record from interleaving.
	mu sync.Mutex
	// offered is the last request handed to the loop.
	offered string
	// s3 reaches o.S3 (nil without it, or when its settings are
	// unusable). s3Have are this server's copies there, newest first,
	// as last listed; s3Known says they are the whole of them; s3Lists
	// counts the listings after a copy.
	s3      *minio.Client
	s3Have  []remote
	s3Known bool
	s3Lists int
}

// Run takes snapshots until ctx ends: at each time of the schedule, and
// for each request recorded in the cluster that this server has not
// answered. A panic in one round is told and the loop goes on.
func Run(ctx context.Context, o Options) {
	r := &runner{o: o}
	cleanParts(o)
	copies := ""
	if o.S3 != nil {
		copies = fmt.Sprintf(", each copied to %s (the newest %d kept there too)", o.S3.where(), o.Retention)
	}
	if o.Schedule != nil {
		next, _ := o.Schedule.Next(o.now())
		o.Printf("etcd-snapshot: snapshots of this server's etcd member at %q (UTC; next %s), the newest %d kept in %s%s",
			o.Schedule.String(), next.Format("2006-01-02 15:04"), o.Retention, o.Dir, copies)
	} else {
		o.Printf("etcd-snapshot: no snapshots on a schedule (etcd-disable-snapshots); `cairn etcd-snapshot save` takes one into %s%s", o.Dir, copies)
	}
	requests := make(chan string, 1)
	supervise.Go("etcd-snapshot: requests", func() { r.watch(ctx, requests) })
	if r.startS3() {
		supervise.Go("etcd-snapshot: S3", func() { r.firstListing(ctx) })
	}
	var next time.Time
	if o.Schedule != nil {
		next, _ = o.Schedule.Next(o.now())
	}
	for {
		// A wait of at most an hour follows a clock that was set.
		wait := time.Hour
		if !next.IsZero() {
			wait = min(max(next.Sub(o.now()), 0), time.Hour)
		}
		select {
		case <-ctx.Done():
			return
		case id := <-requests:
			r.round(ctx, id)
		case <-time.After(wait):
			if now := o.now(); !next.IsZero() && !now.Before(next) {
				r.round(ctx, "")
				next, _ = o.Schedule.Next(o.now())
			}
		}
	}
}

// round takes one snapshot, and tells a panic instead of dying of it.
func (r *runner) round(ctx context.Context, request string) {
	defer supervise.Recover("etcd-snapshot")
	r.take(ctx, request)
}

// take takes a snapshot, keeps the newest, says so in one console line
// and records it (and the answer to request, when there is one).
func (r *runner) take(ctx context.Context, request string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	began := time.Now()
	snap, err := Take(ctx, r.o, request)
	if ctx.Err() != nil {
		return
	}
	entries := map[string]any{}
	if err != nil {
		r.o.Printf("etcd-snapshot: a snapshot of this server's etcd member failed: %v", err)
		if request != "" {
			entries[snaprec.ServerKey(r.o.Node)] = snaprec.Entry(snaprec.Server{Node: r.o.Node, Request: request, Error: err.Error()})
		}
	} else {
		r.o.Printf("etcd-snapshot: %s saved in %s: %s in %.1fs", snap.Name, r.o.Dir, snaprec.Size(snap.Size), time.Since(began).Seconds())
		entries[snap.Key()] = snaprec.Entry(snap)
		removed, perr := Prune(r.o)
		if perr != nil {
			r.o.Printf("etcd-snapshot: removing snapshots beyond the newest %d: %v", r.o.Retention, perr)
		}
		for _, name := range removed {
			entries[name] = nil
		}
		answer := snaprec.Server{Node: r.o.Node, Request: request}
		if r.s3 != nil {
			if err := r.copyToS3(ctx, snap, entries); err != nil {
				answer.S3Error = err.Error()
			}
		}
		if request != "" {
			entries[snaprec.ServerKey(r.o.Node)] = snaprec.Entry(answer)
		}
	}
	if r.o.API == nil {
		return
	}
	for try := 1; ; try++ {
		err := snaprec.Patch(ctx, r.o.API, entries)
		if err == nil || ctx.Err() != nil {
			return
		}
		if try == patchTries {
			r.o.Printf("etcd-snapshot: %v; the record is brought up to date when the apiserver answers again", err)
			return
		}
		if !supervise.Sleep(ctx, retryFirst) {
			return
		}
	}
}

// errGone ends a watch whose ConfigMap was deleted: sync makes it again.
var errGone = errors.New("the record was deleted")

// watch follows the record: it makes it and this server's entry when
// they are missing, brings this server's snapshot entries in line with
// its files, and hands the loop each request this server has not
// answered.
func (r *runner) watch(ctx context.Context, requests chan<- string) {
	defer supervise.Recover("etcd-snapshot: requests")
	delay, lastSaid := retryFirst, ""
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if msg := brief.Err(err); msg != lastSaid {
			r.o.Printf("etcd-snapshot: reading kube-system/%s: %s; trying again", snaprec.RecordName, msg)
			lastSaid = msg
		}
		ok := supervise.Sleep(ctx, delay)
		delay = min(delay*2, retryMax)
		return ok
	}
	collection := "/api/v1/namespaces/" + snaprec.Namespace + "/configmaps?fieldSelector=metadata.name%3D" + snaprec.RecordName
	for ctx.Err() == nil {
		rec, err := r.sync(ctx)
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		delay, lastSaid = retryFirst, ""
		r.offer(rec, requests)
		rv, began := rec.ResourceVersion, time.Now()
		err = r.o.API.Watch(ctx, collection, rv, watchFor, func(ev kube.WatchEvent) error {
			switch ev.Type {
			case "ADDED", "MODIFIED":
				rec, err := snaprec.Parse(ev.Object)
				if err != nil {
					return err
				}
				r.offer(rec, requests)
			case "DELETED":
				return errGone
			}
			return nil
		})
		if err != nil && !errors.Is(err, errGone) && !kube.IsStatus(err, http.StatusGone) && !fail(err) {
			return
		}
		// A watch the apiserver ends at once is not asked again at once.
		if time.Since(began) < time.Second && !supervise.Sleep(ctx, time.Second) {
			return
		}
	}
}

// offer hands the loop the record's request when this server has not
// answered it (and it was not handed already).
func (r *runner) offer(rec *snaprec.Record, requests chan<- string) {
	if rec.Request == "" || rec.Request == r.offered {
		return
	}
	for _, s := range rec.Servers {
		if s.Node == r.o.Node && s.Request == rec.Request {
			r.offered = rec.Request
			return
		}
	}
	select {
	case requests <- rec.Request:
		r.offered = rec.Request
	default: // the loop has one waiting; this one comes again with the next event
	}
}

// sync makes the record and this server's entry when they are missing,
// and makes this server's snapshot entries those of its files: a file
// nobody recorded (the apiserver was away, or a restore took the record
// back in time) is recorded, and an entry whose file is gone is deleted.
func (r *runner) sync(ctx context.Context) (*snaprec.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := snaprec.Ensure(ctx, r.o.API); err != nil {
		return nil, err
	}
	rec, err := snaprec.Read(ctx, r.o.API)
	if err != nil {
		return nil, err
	}
	have, err := locals(r.o)
	if err != nil {
		return nil, err
	}
	entries := map[string]any{}
	if !slices.ContainsFunc(rec.Servers, func(s snaprec.Server) bool { return s.Node == r.o.Node }) {
		entries[snaprec.ServerKey(r.o.Node)] = snaprec.Entry(snaprec.Server{Node: r.o.Node})
	}
	recorded := map[string]bool{}
	for _, s := range rec.Snapshots {
		if s.Node != r.o.Node || s.S3 != "" {
			continue
		}
		recorded[s.Name] = true
		if !slices.ContainsFunc(have, func(f local) bool { return f.name == s.Name }) {
			entries[s.Name] = nil
		}
	}
	for _, f := range have {
		if recorded[f.name] {
			continue
		}
		path := filepath.Join(r.o.Dir, f.name)
		sum, n, err := files.SHA256(path, hashLimit)
		if err != nil {
			continue
		}
		entries[f.name] = snaprec.Entry(snaprec.Snapshot{Node: r.o.Node, Name: f.name, Path: path, Size: n, SHA256: sum, Time: time.Unix(f.unix, 0).UTC()})
	}
	r.syncS3(rec, entries)
	if len(entries) == 0 {
		return rec, nil
	}
	if err := snaprec.Patch(ctx, r.o.API, entries); err != nil {
		return nil, err
	}
	return snaprec.Read(ctx, r.o.API)
}
