// Package upgrader is the node's side of a rolling upgrade: it acts on the
// cluster's Upgrade objects for this node (drain, fetch, write the other
// slot, restart), judges the trial boot that follows, and on a server
// serves the upgrade's files to the other nodes.
package upgrader

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/supervise"
)

// System is what the node knows of the system it runs, for upgrades.
type System struct {
	// Slot is the A/B slot it booted from; "" for live images and
	// container-platform nodes run on a root directory, which cannot be
	// upgraded in place.
	Slot    string
	Board   string
	Version string
}

// Node is what the upgrader needs of the node it runs on, given once.
type Node struct {
	// Name is the node's name in the cluster.
	Name   string
	System System
	// API reaches the cluster's apiserver with the kubelet's client
	// certificate (re-read at each handshake: it rotates).
	API *kube.Client
	// BlobTLS reaches the servers' upgrade file service: the cluster's
	// serving CA and the kubelet's client certificate, the server named
	// as the apiserver's certificate names it.
	BlobTLS *tls.Config
	// Services are the node's supervised components, whose state a trial
	// boot is judged by.
	Services Services
	// DataDir holds the upgrade's files (DataDir/upgrade/blobs).
	DataDir string
	// Serve is set on a server (nil on an agent): its upgrade file
	// service, and a server's trial needs its apiserver ready too.
	Serve *ServeConfig
	// Reboot restarts the machine in order (the init's shutdown path).
	Reboot func(by string)
	// Printf writes one console line.
	Printf func(format string, args ...any)
}

// Services is what the upgrader reads of the supervisor.
type Services interface {
	Status() []supervise.Status
	Output(name string) []byte
}

// ServeConfig is a server's upgrade file service on upgrade.BlobPort.
type ServeConfig struct {
	// CertFile and KeyFile are the apiserver's serving certificate and
	// key, read at each handshake.
	CertFile, KeyFile string
	// ClientCA is the cluster's client CA (PEM): nodes presenting one of
	// its certificates may fetch.
	ClientCA []byte
	// AdminGroup is the organisation of the admin's certificate (of
	// ClientCA): only it may upload.
	AdminGroup string
	// Ready is closed once the server's apiserver is ready and the
	// cluster's objects are published (among them the role that lets
	// nodes read the Upgrades); the service starts then.
	Ready <-chan struct{}
	// Admin are more routes of the port (http.ServeMux patterns), served
	// to an admin's client certificate only: the token rotation.
	Admin map[string]http.Handler
}

// upgrader acts on the cluster's Upgrade objects for this node, with the
// kubelet's credentials: it takes its turn, drains itself, fetches and
// verifies the bundle, writes its other slot and restarts into it; after
// the restart it judges the trial and records the outcome.
type upgrader struct {
	n      Node
	blobs  *http.Client // to the servers' file service
	public *http.Client // to a bundle's source URL
	store  *blobStore
}

// Run runs the node's side of upgrades until ctx ends: on a server the
// upgrade file service (once n.Serve.Ready), the Node's version
// annotations, the trial of this boot or the outcome of the last one, and
// the node's turns in the cluster's Upgrades. Start it once the kubelet's
// client certificate exists.
func Run(ctx context.Context, n Node) {
	u := &upgrader{n: n,
		blobs:  &http.Client{Transport: fetchTransport(n.BlobTLS)},
		public: &http.Client{Transport: fetchTransport(nil)},
		store:  newBlobStore(n.DataDir),
	}
	if n.Serve != nil {
		supervise.Go("upgrade: file service", func() {
			select {
			case <-ctx.Done():
				return
			case <-n.Serve.Ready:
			}
			serveBlobs(ctx, u.store, n.API, n.Name, n.Serve, n.Printf)
		})
	}
	supervise.Go("upgrade: annotations", func() { u.annotate(ctx) })
	u.afterRestart(ctx)
	changed := make(chan struct{}, 1)
	supervise.Go("upgrade: watch", func() { u.watch(ctx, changed) })
	delay := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		err := u.poll(ctx)
		if err == nil || ctx.Err() != nil {
			delay = retryFirst
			continue
		}
		// Read again in a while: the apiserver may be away.
		slog.Debug("upgrade: " + err.Error())
		if !supervise.Sleep(ctx, delay) {
			return
		}
		delay = min(delay*2, retryMax)
		tell(changed)
	}
}

// watchFor bounds one watch of the Upgrades; the next goes on from where
// it ended. A read of them that fails is tried again after retryFirst,
// doubling up to retryMax.
var (
	watchFor   = 5 * time.Minute
	retryFirst = 5 * time.Second
	retryMax   = time.Minute
)

// watch tells changed when the Upgrades may ask something of this node:
// after each list (at the start, and again only after an error) and at
// each change a watch reports. poll then reads them from the datastore (a
// quorum read) before it acts. An idle cluster costs each node one open
// watch, not a datastore read every few seconds.
func (u *upgrader) watch(ctx context.Context, changed chan<- struct{}) {
	u.n.API.ListWatch(ctx, upgrade.Path(""), watchFor,
		func([]json.RawMessage) error { tell(changed); return nil },
		func(kube.WatchEvent) error { tell(changed); return nil },
		func(err error) { slog.Debug("upgrade: watching the upgrades: " + err.Error()) })
}

// tell wakes the upgrader's loop, unless it has a wake-up waiting.
func tell(changed chan<- struct{}) {
	select {
	case changed <- struct{}{}:
	default:
	}
}

// fetchTransport gives up quickly on a server that is away (another
// holds the same files), never on a slow download.
func fetchTransport(tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		TLSClientConfig:       tlsCfg,
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// annotate records the running version and slot on the Node object.
func (u *upgrader) annotate(ctx context.Context) {
	ann := map[string]any{upgrade.VersionAnnotation: u.n.System.Version}
	if u.n.System.Slot != "" {
		ann[upgrade.SlotAnnotation] = u.n.System.Slot
	}
	if data, err := files.Read("/usr/share/cairn/components.json", 1<<20); err == nil {
		var c struct{ Key string }
		if json.Unmarshal(data, &c) == nil && c.Key != "" {
			ann[upgrade.ComponentsAnnotation] = c.Key
		}
	}
	for supervise.Sleep(ctx, 3*time.Second) {
		if err := u.n.API.MergePatch(ctx, "/api/v1/nodes/"+u.n.Name, map[string]any{"metadata": map[string]any{"annotations": ann}}); err == nil {
			return
		}
	}
}

// afterRestart handles a trial record: judge this boot's trial, or report
// one that failed (the machine is back on the old slot).
func (u *upgrader) afterRestart(ctx context.Context) {
	rec, err := boot.ReadTrial(TrialPath)
	if err != nil || rec == nil {
		return
	}
	if t := activeTrial.Load(); t != nil {
		u.judge(ctx, t)
		return
	}
	if rec.Slot == u.n.System.Slot {
		// Kept on an earlier boot, which stopped before it said so.
		if boot.OnTrial(u.n.System.Slot) == "" {
			u.finish(ctx, rec, "")
			boot.RemoveTrial(TrialPath)
		}
		return
	}
	reason := rec.Result
	if reason == "" {
		reason = fmt.Sprintf("cairn %s on slot %s never judged itself healthy: its boot tries ran out (it did not boot, or stopped before the stage that judges)", rec.Version, strings.ToUpper(rec.Slot))
	}
	u.n.Printf("upgrade: back on slot %s (cairn %s) after a failed trial of cairn %s: %s", strings.ToUpper(u.n.System.Slot), u.n.System.Version, rec.Version, reason)
	u.finish(ctx, rec, reason)
	if err := boot.DropSlot(rec.Slot); err != nil {
		u.n.Printf("upgrade: removing slot %s's entry: %v", strings.ToUpper(rec.Slot), err)
	}
	boot.RemoveTrial(TrialPath)
}

// finish uncordons the node and records its outcome (reason "" for
// success), each retried until the cluster takes it: uncordoned first, so
// an Upgrade that says Succeeded has every node schedulable again.
func (u *upgrader) finish(ctx context.Context, rec *boot.Trial, reason string) {
	for {
		if err := cordon(ctx, u.n.API, u.n.Name, false); err == nil {
			break
		}
		if !supervise.Sleep(ctx, time.Second) {
			return
		}
	}
	for delay := 2 * time.Second; ; delay = min(delay*2, 30*time.Second) {
		err := u.update(ctx, rec.Upgrade, func(up *upgrade.Upgrade) {
			ns := up.Status.Node(u.n.Name)
			ns.Finished = now()
			if reason == "" {
				ns.Phase, ns.Reason = upgrade.Succeeded, ""
				if ns.Rebooted == "" {
					ns.Rebooted = now()
				}
				complete(up)
				return
			}
			ns.Phase, ns.Reason = upgrade.Failed, reason+"; it runs cairn "+u.n.System.Version+" again"
			up.Status.Phase = upgrade.Failed
			up.Status.Message = "node " + u.n.Name + ": " + ns.Reason
		})
		if err == nil {
			break
		}
		if kube.IsStatus(err, http.StatusNotFound) {
			break
		}
		u.n.Printf("upgrade: recording the outcome in upgrade %s: %v; retrying in %s", rec.Upgrade, err, delay)
		if !supervise.Sleep(ctx, delay) {
			return
		}
	}
}

// complete marks the upgrade Succeeded once every node has.
func complete(up *upgrade.Upgrade) {
	for _, n := range up.Spec.Nodes {
		if up.Status.Node(n).Phase != upgrade.Succeeded {
			return
		}
	}
	var versions []string
	for _, im := range up.Spec.Images {
		versions = append(versions, im.Version)
	}
	up.Status.Phase = upgrade.Succeeded
	up.Status.Message = fmt.Sprintf("%d nodes run cairn %s", len(up.Spec.Nodes), strings.Join(slices.Compact(versions), ", "))
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// update reads the upgrade called name, changes its status with fn and
// writes it back, again on a conflict.
func (u *upgrader) update(ctx context.Context, name string, fn func(*upgrade.Upgrade)) error {
	var err error
	for range 8 {
		var up upgrade.Upgrade
		if err = u.n.API.Get(ctx, upgrade.Path(name), &up); err != nil {
			return err
		}
		fn(&up)
		err = u.n.API.Do(ctx, http.MethodPut, upgrade.Path(name)+"/status", &up, nil)
		if !kube.IsStatus(err, http.StatusConflict) {
			return err
		}
	}
	return err
}

// setPhase records the node's phase, and a step's time when stamp names
// one of its fields.
func (u *upgrader) setPhase(ctx context.Context, name, phase string, stamp func(*upgrade.NodeStatus)) error {
	return u.update(ctx, name, func(up *upgrade.Upgrade) {
		ns := up.Status.Node(u.n.Name)
		ns.Phase = phase
		if stamp != nil {
			stamp(ns)
		}
	})
}

// poll reads the upgrades and, when it is this node's turn in the oldest
// running one, upgrades the node.
func (u *upgrader) poll(ctx context.Context) error {
	var list struct{ Items []upgrade.Upgrade }
	if err := u.n.API.Get(ctx, upgrade.Path(""), &list); err != nil {
		return err
	}
	var run *upgrade.Upgrade
	live := map[string]bool{}
	for i := range list.Items {
		up := &list.Items[i]
		if upgrade.Done(up.Status.Phase) {
			continue
		}
		for _, im := range up.Spec.Images {
			for _, f := range im.Files {
				live[f.SHA256] = true
			}
		}
		if up.Status.Phase == upgrade.Running && (run == nil || up.Metadata.CreationTimestamp < run.Metadata.CreationTimestamp) {
			run = up
		}
	}
	if _, err := os.Stat(TrialPath); err != nil {
		u.store.prune(live)
	}
	if run == nil || !slices.Contains(run.Spec.Nodes, u.n.Name) {
		return nil
	}
	if rec, _ := boot.ReadTrial(TrialPath); rec != nil {
		return nil // a trial is on: afterRestart, or the restart into it, has it
	}
	phase := upgrade.Pending
	for _, ns := range run.Status.Nodes {
		if ns.Name == u.n.Name {
			phase = ns.Phase
		}
	}
	switch {
	case upgrade.Done(phase):
		return nil
	case phase == upgrade.Pending:
		if !myTurn(run, u.n.Name) {
			return nil
		}
	case phase == upgrade.Draining || phase == upgrade.Fetching || phase == upgrade.Writing:
		u.n.Printf("upgrade: %s was interrupted while %s; starting this node's part again", run.Metadata.Name, strings.ToLower(phase))
	default:
		// Rebooting or Verifying, and no trial record: the new system
		// was kept and stopped before saying so, or the record is gone.
		rec := &boot.Trial{Upgrade: run.Metadata.Name, Version: u.n.System.Version}
		reason := ""
		if im, ok := run.Spec.ImageFor(u.n.System.Board); !ok || im.Version != u.n.System.Version {
			reason = "the node restarted during its upgrade without a trial record"
		}
		u.finish(ctx, rec, reason)
		return nil
	}
	return u.upgrade(ctx, run)
}

// myTurn says whether node may start: no node has failed, fewer than
// maxUnavailable are upgrading, and every node before it has started.
func myTurn(up *upgrade.Upgrade, node string) bool {
	limit := max(up.Spec.MaxUnavailable, 1)
	busy := 0
	for _, n := range up.Spec.Nodes {
		ph := up.Status.Node(n).Phase
		if ph == upgrade.Failed {
			return false
		}
		if upgrade.InProgress(ph) {
			busy++
		}
	}
	if busy >= limit {
		return false
	}
	for _, n := range up.Spec.Nodes {
		if n == node {
			return true
		}
		if up.Status.Node(n).Phase == upgrade.Pending {
			return false
		}
	}
	return false
}

// upgrade takes this node through its part of run: claim, drain, fetch,
// write, restart. A failure is recorded on the node and the upgrade, which
// stops the rollout, and the node is made schedulable again.
func (u *upgrader) upgrade(ctx context.Context, run *upgrade.Upgrade) error {
	name := run.Metadata.Name
	im, hasImage := run.Spec.ImageFor(u.n.System.Board)
	drainTimeout, healthTimeout, durErr := run.Spec.Durations()
	// Claim the turn; a conflict means another node wrote first.
	claimed := false
	err := u.update(ctx, name, func(up *upgrade.Upgrade) {
		if !myTurn(up, u.n.Name) && up.Status.Node(u.n.Name).Phase == upgrade.Pending {
			return
		}
		ns := up.Status.Node(u.n.Name)
		ns.Phase, ns.Started, ns.FromVersion, ns.Reason = upgrade.Draining, now(), u.n.System.Version, ""
		ns.Drained, ns.Written, ns.Rebooted, ns.Finished = "", "", "", ""
		if hasImage {
			ns.ToVersion = im.Version
		}
		claimed = true
	})
	if err != nil || !claimed {
		return err
	}
	fail := func(reason string) error {
		u.n.Printf("upgrade: %s: this node's part failed: %s; the rollout stops", name, reason)
		withTimeout(time.Minute, func(ctx context.Context) {
			u.update(ctx, name, func(up *upgrade.Upgrade) {
				ns := up.Status.Node(u.n.Name)
				ns.Phase, ns.Reason, ns.Finished = upgrade.Failed, reason, now()
				up.Status.Phase, up.Status.Message = upgrade.Failed, "node "+u.n.Name+": "+reason
			})
			cordon(ctx, u.n.API, u.n.Name, false)
		})
		return nil
	}
	switch {
	case durErr != nil:
		return fail(durErr.Error())
	case !hasImage:
		return fail("the upgrade has no image for this node's board " + u.n.System.Board)
	case u.n.System.Version == im.Version:
		// Already there (a node added to the list twice, or one rolled
		// forward by hand): nothing to do.
		return u.update(ctx, name, func(up *upgrade.Upgrade) {
			ns := up.Status.Node(u.n.Name)
			ns.Phase, ns.Reason, ns.Finished = upgrade.Succeeded, "already runs cairn "+im.Version, now()
			complete(up)
		})
	}
	if why := boot.Upgradable(u.n.System.Slot); why != "" {
		return fail("this node cannot be upgraded in place: " + why)
	}
	if err := im.Check(); err != nil {
		return fail("the image for board " + u.n.System.Board + ": " + err.Error())
	}
	u.n.Printf("upgrade: %s: this node's turn: cairn %s → %s; draining", name, u.n.System.Version, im.Version)
	if err := drain(ctx, u.n.API, u.n.Name, drainTimeout, u.n.Printf); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fail("drain: " + err.Error())
	}
	u.setPhase(ctx, name, upgrade.Fetching, func(ns *upgrade.NodeStatus) { ns.Drained = now() })
	sources, err := u.servers(ctx)
	if err != nil && im.Source == "" {
		return fail("finding the servers that hold the files: " + err.Error())
	}
	hc := u.blobs
	if im.Source != "" {
		hc = u.public
	}
	paths, err := fetch(ctx, u.store, im, sources, hc, u.n.Printf)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fail(err.Error())
	}
	u.setPhase(ctx, name, upgrade.Writing, nil)
	target := boot.OtherSlot(u.n.System.Slot)
	sysFile, _ := im.File(upgrade.SystemFile)
	var checks []string
	for _, c := range run.Spec.Checks {
		if c.Deployment != "" {
			checks = append(checks, c.Deployment)
		}
	}
	rec := &boot.Trial{Upgrade: name, UID: run.Metadata.UID, Slot: target, FromSlot: u.n.System.Slot,
		Version: im.Version, FromVersion: u.n.System.Version, HealthTimeout: healthTimeout.String(), Checks: checks}
	err = boot.WriteSlot(target, boot.NewSystem{
		System: paths[upgrade.SystemFile], Kernel: paths[upgrade.KernelFile], Initrd: paths[upgrade.InitrdFile],
		SystemSHA256: sysFile.SHA256, Version: im.Version, Epoch: im.Epoch, Cmdline: im.Cmdline,
	}, rec, TrialPath, u.n.Printf)
	if err != nil {
		boot.DropSlot(target)
		boot.RemoveTrial(TrialPath)
		return fail(err.Error())
	}
	u.setPhase(ctx, name, upgrade.Rebooting, func(ns *upgrade.NodeStatus) { ns.Slot, ns.Written = target, now() })
	u.n.Printf("upgrade: %s: restarting into slot %s (cairn %s)", name, strings.ToUpper(target), im.Version)
	u.n.Reboot("upgrade " + name)
	<-ctx.Done()
	return nil
}

// servers are the base URLs of the servers' upgrade file service: this
// node's first when it is a server, then every control-plane node's
// InternalIP.
func (u *upgrader) servers(ctx context.Context) ([]string, error) {
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Status   struct {
				Addresses []struct{ Type, Address string }
			} `json:"status"`
		}
	}
	q := url.Values{"labelSelector": {upgrade.ServerLabel}}
	if err := u.n.API.Get(ctx, "/api/v1/nodes?"+q.Encode(), &list); err != nil {
		return nil, err
	}
	var out []string
	for _, n := range list.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				base := "https://" + net.JoinHostPort(a.Address, strconv.Itoa(upgrade.BlobPort))
				if n.Metadata.Name == u.n.Name {
					out = append([]string{base}, out...)
				} else {
					out = append(out, base)
				}
				break
			}
		}
	}
	return out, nil
}
