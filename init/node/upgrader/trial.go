package upgrader

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/boot"
	"github.com/cairn-os/cairn/init/supervise"
)

// TrialPath is the upgrade's trial record in the running system.
var TrialPath = filepath.Join(layout.StateDir, layout.TrialFile)

// trialRun is an upgrade's trial boot in progress: the new system runs
// from its slot, not yet kept. It ends once: kept when the node is healthy
// (the slot blessed), or failed (the slot's entry spent, the reason
// recorded on STATE, the machine restarted into the old slot).
type trialRun struct {
	rec      *boot.Trial
	slot     string
	started  time.Time
	deadline time.Duration
	printf   func(string, ...any)
	reboot   func(string)

	mu      sync.Mutex
	decided bool
	why     string
	// report tells the cluster that the trial failed, when the upgrader
	// can reach it; set once the upgrader runs.
	report func(reason string)
}

// activeTrial is the trial of this boot, if any.
var activeTrial atomic.Pointer[trialRun]

// WatchTrial starts judging an upgrade's trial when this boot is one: the
// trial record names the running slot and its loader entry still counts.
// The node has until the record's health timeout to be healthy (the
// upgrader keeps the slot then); past it, whatever the cause (no config,
// no network, a component that never starts), the machine goes back to the
// old slot. Called early in stage 2, before the node's config is read.
func WatchTrial(slot string, printf func(string, ...any), reboot func(string)) {
	rec, err := boot.ReadTrial(TrialPath)
	if err != nil {
		printf("upgrade: %v", err)
		return
	}
	if rec == nil || rec.Slot != slot || rec.Result != "" || boot.OnTrial(slot) == "" {
		return
	}
	d, err := time.ParseDuration(rec.HealthTimeout)
	if err != nil || d <= 0 {
		d = upgrade.DefaultHealthTimeout
	}
	t := &trialRun{rec: rec, slot: slot, started: time.Now(), deadline: d, printf: printf, reboot: reboot, why: "the node's components have not started"}
	activeTrial.Store(t)
	printf("upgrade: cairn %s runs on trial from slot %s (upgrade %s): it is kept once this node is healthy, within %s; otherwise the machine returns to slot %s (cairn %s)",
		rec.Version, strings.ToUpper(slot), rec.Upgrade, d, strings.ToUpper(rec.FromSlot), rec.FromVersion)
	supervise.Go("upgrade: trial deadline", func() {
		time.Sleep(d)
		t.fail(fmt.Sprintf("not healthy within %s: %s", d, t.lastWhy()))
	})
}

// setWhy records why the node is not healthy yet.
func (t *trialRun) setWhy(why string) {
	t.mu.Lock()
	t.why = why
	t.mu.Unlock()
}

func (t *trialRun) lastWhy() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.why
}

// decide claims the trial's one decision.
func (t *trialRun) decide() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.decided {
		return false
	}
	t.decided = true
	return true
}

// keep blesses the slot and removes the trial record; false when the
// trial was decided already (failed) or the slot cannot be blessed.
func (t *trialRun) keep() bool {
	if !t.decide() {
		return false
	}
	if err := boot.BlessSlot(t.slot); err != nil {
		t.mu.Lock()
		t.decided = false
		t.mu.Unlock()
		t.fail("marking the slot booted: " + err.Error())
		return false
	}
	if err := boot.RemoveTrial(TrialPath); err != nil {
		t.printf("upgrade: removing the trial record: %v", err)
	}
	t.printf("upgrade: cairn %s on slot %s is healthy %.0fs after its start: kept. Slot %s keeps cairn %s",
		t.rec.Version, strings.ToUpper(t.slot), time.Since(t.started).Seconds(), strings.ToUpper(t.rec.FromSlot), t.rec.FromVersion)
	return true
}

// fail ends the trial: the reason goes to STATE (the old system reports
// it) and, if it can be reached within a few seconds, to the cluster; the
// slot's entry loses its tries and the machine restarts into the old slot.
func (t *trialRun) fail(reason string) {
	if !t.decide() {
		return
	}
	t.printf("upgrade: cairn %s on slot %s is not kept: %s; restarting into slot %s (cairn %s)",
		t.rec.Version, strings.ToUpper(t.slot), reason, strings.ToUpper(t.rec.FromSlot), t.rec.FromVersion)
	t.rec.Result = reason
	if err := boot.WriteTrial(TrialPath, t.rec); err != nil {
		t.printf("upgrade: recording why: %v", err)
	}
	if err := boot.RejectSlot(t.slot); err != nil {
		t.printf("upgrade: ending slot %s's trial: %v; the loader falls back once its tries are spent", strings.ToUpper(t.slot), err)
	}
	t.mu.Lock()
	report := t.report
	t.mu.Unlock()
	if report != nil {
		report(reason)
	}
	t.reboot("upgrade: back to slot " + strings.ToUpper(t.rec.FromSlot))
}

// reportTimeout bounds what a failing trial spends telling the cluster.
const reportTimeout = 20 * time.Second

func withTimeout(d time.Duration, fn func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fn(ctx)
}
