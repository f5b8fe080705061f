package flannel

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// flannel's iptables rules, and who checks that they are still there.
//
// flannel's traffic manager (pkg/trafficmngr/iptables, v0.28.10) installs
// its forward and masquerade rules once, then checks every resync period
// that each is still there and installs them all again when one is not:
// the repair of a rule someone deleted (an `iptables -F` from a privileged
// pod, a firewall tool). Its check runs iptables twice per rule, 20 execs
// of iptables-nft per period, each loading the table from the kernel:
// with flanneld's default period of 5 s, 240 a minute, the most of what a
// node at rest spent in short-lived processes (docs/performance.md).
//
// cairn keeps the repair and drops the cost: flannel's own loop is given a
// period it never reaches (flannelNoResync), and ruleKeeper reads every
// rule of the node with one iptables-save every rulesEvery, compares
// flannel's rules (each carries a "flanneld masq" or "flanneld forward"
// comment) with those it found after flannel installed them, and has
// flannel install them again when one is missing: one exec instead of 20,
// every 30 s instead of every 5 s. A deleted rule comes back within 30 s,
// the period at which kube-proxy checks its own rules (its canary).
//
// flannel's nftables traffic manager has no periodic check at all, but it
// is not the same rules: its exemption of kube-proxy's traffic matches the
// mark 0x4000 exactly where the iptables rule masks it, it does not
// masquerade the host's own traffic to another node's pods as the
// iptables rules do, its rules sit in a table of their own that a DROP
// policy of the iptables FORWARD chain still drops, and it repairs
// nothing. kube-proxy runs in iptables mode here; the iptables rules stay.
const (
	// flannelNoResync is the resync period, in seconds, given to flannel's
	// own check: 2^30 s, 34 years (0 or less would make its loop spin).
	flannelNoResync = 1 << 30
	// saveTimeout bounds one iptables-save; maxSave what is read of it
	// (kube-proxy's rules are most of it: about 1 KiB a Service).
	saveTimeout = 20 * time.Second
	maxSave     = 32 << 20
	// rulesEvery is how often the rules are looked at.
	rulesEvery = 30 * time.Second
)

// flannelComments mark flannel's rules: it gives every rule it adds one.
var flannelComments = []string{`--comment "flanneld masq"`, `--comment "flanneld forward"`}

// flannelRules returns flannel's rules in an iptables-save dump, in the
// dump's order, each as "TABLE RULE" ("nat -A FLANNEL-POSTRTG …").
func flannelRules(dump []byte) []string {
	var out []string
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, "-A ") && slices.ContainsFunc(flannelComments, func(c string) bool { return strings.Contains(l, c) }):
			out = append(out, table+" "+l)
		}
	}
	return out
}

// installed says whether rules hold what flannel installs in one go: its
// jump from FORWARD and, with masquerading, from POSTROUTING. It installs
// each table's rules with one iptables-restore, all or none.
func installed(rules []string, masq bool) bool {
	has := func(prefix string) bool {
		return slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, prefix) })
	}
	return has("filter -A FORWARD ") && (!masq || has("nat -A POSTROUTING "))
}

// missingRules are the rules of want that have does not hold.
func missingRules(want, have []string) []string {
	var out []string
	for _, r := range want {
		if !slices.Contains(have, r) {
			out = append(out, r)
		}
	}
	return out
}

// ruleKeeper puts flannel's rules back when they go.
type ruleKeeper struct {
	// save returns the node's rules, as iptables-save prints them.
	save func(context.Context) ([]byte, error)
	// install has flannel install its rules again.
	install func(context.Context) error
	masq    bool
	log     *slog.Logger
	// want are flannel's rules as first found installed; nil before.
	want []string
	said string // the last failure logged
}

// run checks the rules now and every period until ctx ends.
func (k *ruleKeeper) run(ctx context.Context, every time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.check(ctx)
		t.Reset(every)
	}
}

// check reads the rules once and has flannel install them again when one
// of them is gone, or when they were never all there.
func (k *ruleKeeper) check(ctx context.Context) {
	dump, err := k.save(ctx)
	if err != nil {
		if ctx.Err() == nil {
			k.fail("reading the iptables rules to check flannel's", err)
		}
		return
	}
	have := flannelRules(dump)
	switch {
	case k.want == nil && installed(have, k.masq):
		k.want, k.said = have, ""
		return
	case k.want == nil:
		k.log.Warn("flannel's iptables rules are not all installed; installing them again", "found", len(have))
	default:
		missing := missingRules(k.want, have)
		if len(missing) == 0 {
			k.said = ""
			return
		}
		k.log.Warn("flannel's iptables rules were removed; installing them again", "missing", len(missing), "of", len(k.want), "first", missing[0])
	}
	if err := k.install(ctx); err != nil && ctx.Err() == nil {
		k.fail("installing flannel's iptables rules", err)
	}
}

// fail logs what failed, once until something else fails or it works.
func (k *ruleKeeper) fail(what string, err error) {
	if msg := what + ": " + err.Error(); msg != k.said {
		k.said = msg
		k.log.Warn(what+"; trying again", "every", rulesEvery, "err", err)
	}
}

// iptablesSave returns a function that runs iptables-save from PATH, or an
// error when there is none.
func iptablesSave() (func(context.Context) ([]byte, error), error) {
	path, err := exec.LookPath("iptables-save")
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, saveTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, path)
		var stderr bytes.Buffer
		cmd.Stderr = &limitedWriter{w: &stderr, n: 4 << 10}
		cmd.WaitDelay = time.Second
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		dump, rerr := io.ReadAll(io.LimitReader(out, maxSave+1))
		if len(dump) > maxSave {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s printed more than %d bytes", path, maxSave)
		}
		if err := cmd.Wait(); err != nil {
			if first, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n"); first != "" {
				err = fmt.Errorf("%w: %s", err, first)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if rerr != nil {
			return nil, fmt.Errorf("%s: %w", path, rerr)
		}
		return dump, nil
	}, nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
