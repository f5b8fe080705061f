package upgrader

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/init/supervise"
)

// healthEvery is how often a trial boot looks at the node's health; it is
// kept after two looks in a row find it healthy.
var healthEvery = 10 * time.Second

// judge decides this boot's trial: the new system is kept once, twice in
// a row, every component the supervisor runs is up and did not restart in
// between, the Node is Ready with a heartbeat from this boot, on a server
// the apiserver's /readyz (which covers the datastore) answers, and the
// upgrade's checks pass. The trial's deadline (WatchTrial) fails it
// otherwise.
func (u *upgrader) judge(ctx context.Context, t *trialRun) {
	rec := t.rec
	t.mu.Lock()
	t.report = func(reason string) {
		withTimeout(reportTimeout, func(ctx context.Context) {
			u.update(ctx, rec.Upgrade, func(up *upgrade.Upgrade) {
				ns := up.Status.Node(u.n.Name)
				ns.Phase, ns.Reason = upgrade.RollingBack, reason
			})
		})
	}
	t.mu.Unlock()
	withTimeout(reportTimeout, func(ctx context.Context) {
		u.setPhase(ctx, rec.Upgrade, upgrade.Verifying, func(ns *upgrade.NodeStatus) { ns.Rebooted = now() })
	})
	passes := 0
	var restarts map[string]int
	for supervise.Sleep(ctx, healthEvery) {
		why, now := u.health(ctx, t.started, rec.Checks)
		if why == "" && restarts != nil && !sameRestarts(restarts, now) {
			why = "a component restarted"
		}
		restarts = now
		if why != "" {
			passes = 0
			t.setWhy(why)
			continue
		}
		if passes++; passes < 2 {
			continue
		}
		if t.keep() {
			u.finish(ctx, rec, "")
		}
		return
	}
}

// health says why the node is not healthy ("" when it is), and each
// component's restart count.
func (u *upgrader) health(ctx context.Context, since time.Time, checks []string) (string, map[string]int) {
	restarts := map[string]int{}
	var down []string
	for _, st := range u.n.Services.Status() {
		restarts[st.Name] = st.Restarts
		if st.State != supervise.Ready && st.State != supervise.Running {
			why := fmt.Sprintf("%s is %s (restarted %d times)", st.Name, st.State, st.Restarts)
			// Its last words say why, but kine's may echo the datastore
			// endpoint, which holds a password.
			if last := brief.LastLine(u.n.Services.Output(st.Name), 300); last != "" && st.Name != "kine" {
				why += ": " + last
			}
			down = append(down, why)
		}
	}
	if len(down) > 0 {
		return strings.Join(down, "; "), restarts
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if why := u.nodeHealthy(ctx, since); why != "" {
		return why, restarts
	}
	if u.n.Serve != nil {
		if err := u.n.API.Get(ctx, "/readyz", nil); err != nil {
			return "kube-apiserver is not ready: " + err.Error(), restarts
		}
	}
	for _, c := range checks {
		if why := u.deploymentAvailable(ctx, c); why != "" {
			return why, restarts
		}
	}
	return "", restarts
}

// nodeHealthy checks the Node's Ready condition, with a heartbeat since
// this boot: a Ready left over from before the restart does not count.
func (u *upgrader) nodeHealthy(ctx context.Context, since time.Time) string {
	c, err := u.n.API.NodeReady(ctx, u.n.Name)
	switch {
	case err != nil:
		return "reading the Node: " + err.Error()
	case c == nil:
		return "the node has no Ready condition yet"
	case c.Status != "True":
		return fmt.Sprintf("the node is not Ready: %s: %s", c.Reason, c.Message)
	case c.LastHeartbeatTime.Before(since.Add(-time.Second)):
		return "the node's Ready condition is from before this boot"
	}
	return ""
}

// deploymentAvailable checks a Deployment ("namespace/name") is Available.
func (u *upgrader) deploymentAvailable(ctx context.Context, ref string) string {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok {
		ns, name = "default", ref
	}
	var d struct {
		Status struct {
			Conditions []struct{ Type, Status, Message string }
		}
	}
	if err := u.n.API.Get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, &d); err != nil {
		return "check: Deployment " + ref + ": " + err.Error()
	}
	for _, c := range d.Status.Conditions {
		if c.Type == "Available" && c.Status == "True" {
			return ""
		}
		if c.Type == "Available" {
			return "check: Deployment " + ref + " is not Available: " + c.Message
		}
	}
	return "check: Deployment " + ref + " reports no Available condition"
}

func sameRestarts(a, b map[string]int) bool {
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
