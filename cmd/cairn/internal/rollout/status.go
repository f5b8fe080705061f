package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/upgrade"
)

// ErrReported is what Run and Status return when the upgrade failed or
// following it stopped: they have said so already.
var ErrReported = errors.New("failure already reported")

// Status prints the upgrade called name, or the newest when name is empty,
// for `cairn upgrade status`: its phase and message, what it installs, and
// a line per node. With follow, it then follows an upgrade not yet ended
// as Run does; kubeconfig is the --kubeconfig given, for the hint printed.
func Status(ctx context.Context, stdout, stderr io.Writer, k *Kube, kubeconfig, name string, follow bool) error {
	u, err := pickUpgrade(ctx, k, name)
	if err != nil || u == nil {
		if u == nil && err == nil {
			fmt.Fprintf(stdout, "no upgrade in the cluster (namespace %s)\n", upgrade.Namespace)
		}
		return err
	}
	printUpgrade(stdout, u)
	if !follow || upgrade.Done(u.Status.Phase) {
		return nil
	}
	return followUpgrade(ctx, stdout, stderr, k, u.Metadata.Name, followCommand(kubeconfig, u.Metadata.Name))
}

// pickUpgrade reads the Upgrade called name, or the newest when name is
// empty; nil when there is none.
func pickUpgrade(ctx context.Context, k *Kube, name string) (*upgrade.Upgrade, error) {
	if name != "" {
		return k.get(ctx, name)
	}
	ups, err := k.upgrades(ctx)
	if err != nil || len(ups) == 0 {
		return nil, err
	}
	return &ups[len(ups)-1], nil
}

// nodeStatuses are the Upgrade's nodes in the order of its spec, each
// with its status (Pending until the node writes one).
func nodeStatuses(u *upgrade.Upgrade) []upgrade.NodeStatus {
	st := upgrade.Status{Nodes: append([]upgrade.NodeStatus(nil), u.Status.Nodes...)}
	var out []upgrade.NodeStatus
	for _, name := range u.Spec.Nodes {
		out = append(out, *st.Node(name))
	}
	for _, n := range u.Status.Nodes {
		if !slices.Contains(u.Spec.Nodes, n.Name) {
			out = append(out, n)
		}
	}
	return out
}

// printUpgrade prints an Upgrade for `cairn upgrade status`.
func printUpgrade(w io.Writer, u *upgrade.Upgrade) {
	phase := u.Status.Phase
	if phase == "" {
		phase = "not started (the files were being uploaded, or the client stopped before starting it)"
	}
	if u.Status.Message != "" {
		phase += ": " + u.Status.Message
	}
	fmt.Fprintf(w, "%s: %s\n", u.Metadata.Name, phase)
	s := u.Spec
	drain, health, _ := s.Durations()
	fmt.Fprintf(w, "created %s; max unavailable %d, drain timeout %s, health timeout %s\n",
		u.Metadata.CreationTimestamp, max(s.MaxUnavailable, 1), drain, health)
	for _, im := range s.Images {
		from := "the servers"
		if im.Source != "" {
			from = im.Source
		}
		fmt.Fprintf(w, "image: %s %s (%s), files from %s\n", im.Board, im.Version, im.Arch, from)
	}
	for _, c := range s.Checks {
		fmt.Fprintf(w, "check: deployment %s available\n", c.Deployment)
	}
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPHASE\tVERSION\tDRAIN\tWRITE\tREBOOT+HEALTHY\tREASON")
	for _, n := range nodeStatuses(u) {
		version := ""
		if n.FromVersion != "" || n.ToVersion != "" {
			version = n.FromVersion + " → " + n.ToVersion
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Phase, version,
			span(n.Started, n.Drained), span(n.Drained, n.Written), span(n.Written, n.Finished), n.Reason)
	}
	tw.Flush()
	for line := range strings.SplitSeq(strings.TrimSuffix(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// span is the time from one step's RFC 3339 time to another's ("431s"),
// or "" when either is missing.
func span(from, to string) string {
	a, err1 := time.Parse(time.RFC3339, from)
	b, err2 := time.Parse(time.RFC3339, to)
	if err1 != nil || err2 != nil {
		return ""
	}
	return fmt.Sprintf("%.0fs", b.Sub(a).Seconds())
}

// nodeLine is the line `cairn upgrade` prints when a node's phase
// changes: "upgrade: s1: Succeeded (drain 12s, write 9s, reboot+healthy 431s)".
func nodeLine(n upgrade.NodeStatus) string {
	line := "upgrade: " + n.Name + ": " + n.Phase
	if n.Phase == upgrade.Succeeded {
		var parts []string
		for _, p := range []struct{ what, from, to string }{
			{"drain", n.Started, n.Drained}, {"write", n.Drained, n.Written}, {"reboot+healthy", n.Written, n.Finished},
		} {
			if d := span(p.from, p.to); d != "" {
				parts = append(parts, p.what+" "+d)
			}
		}
		if len(parts) > 0 {
			line += " (" + strings.Join(parts, ", ") + ")"
		}
		return line
	}
	if n.Reason != "" {
		line += ": " + n.Reason
	}
	return line
}

// pollInterval is how often an upgrade being followed is read.
var pollInterval = 3 * time.Second

// followUpgrade prints a line per node phase change until the upgrade
// ends: nil when it succeeds, ErrReported when it fails or ctx ends.
// An apiserver that does not answer (its server rebooting) is said once
// and asked again.
func followUpgrade(ctx context.Context, stdout, stderr io.Writer, k *Kube, name, hint string) error {
	seen := map[string]string{}
	lastErr := ""
	for {
		u, err := k.get(ctx, name)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errNoUpgrade):
			return fmt.Errorf("upgrade %s was removed from the cluster while being followed", name)
		case err != nil:
			if msg := brief.Err(err); msg != lastErr {
				lastErr = msg
				fmt.Fprintf(stderr, "cairn upgrade: cannot read %s (%s); asking again every %s\n", name, msg, pollInterval)
			}
		default:
			if lastErr != "" {
				lastErr = ""
				fmt.Fprintf(stderr, "cairn upgrade: the apiserver answers again\n")
			}
			for _, n := range nodeStatuses(u) {
				key := n.Phase + "\x00" + n.Reason
				if prev, ok := seen[n.Name]; (ok && prev != key) || (!ok && n.Phase != upgrade.Pending) {
					fmt.Fprintln(stdout, nodeLine(n))
				}
				seen[n.Name] = key
			}
			switch u.Status.Phase {
			case upgrade.Succeeded:
				fmt.Fprintf(stdout, "upgrade %s: Succeeded in %s\n", name, took(u))
				return nil
			case upgrade.Failed:
				fmt.Fprintf(stdout, "upgrade %s: Failed: %s\n", name, u.Status.Message)
				return ErrReported
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "cairn upgrade: stopped following; upgrade %s goes on in the cluster. Follow it with: %s\n", name, hint)
			return ErrReported
		case <-time.After(pollInterval):
		}
	}
}

// took is an ended upgrade's time: from its creation to its last node's
// end (or now).
func took(u *upgrade.Upgrade) time.Duration {
	began, err := time.Parse(time.RFC3339, u.Metadata.CreationTimestamp)
	if err != nil {
		return 0
	}
	end := time.Time{}
	for _, n := range u.Status.Nodes {
		if t, err := time.Parse(time.RFC3339, n.Finished); err == nil && t.After(end) {
			end = t
		}
	}
	if end.IsZero() {
		end = now()
	}
	return end.Sub(began).Round(time.Second)
}
