//go:build linux

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// target is one tree of processes measured: a node (its launcher on the
// container platform, its `cairn cluster vm` under QEMU) or the
// datastore's server.
type target struct {
	name, role string
	root       int
	// rootName is the component of the root (and of the node's PID 1);
	// flat puts every process of the tree in it (the datastore's).
	rootName string
	flat     bool
	cg       *nodeCgroup
}

// sampleAt is one reading of every target.
type sampleAt struct {
	at    time.Time
	comps map[string]map[string]usage // target → component → usage
	cpuNs map[string]uint64           // target → its cgroup's CPU
}

func takeSample(targets []target, memory bool) (sampleAt, error) {
	s := sampleAt{at: time.Now(), comps: map[string]map[string]usage{}, cpuNs: map[string]uint64{}}
	// The cgroups first, then the processes: both within milliseconds.
	for _, t := range targets {
		if t.cg != nil {
			if ns, err := t.cg.cpuNanos(); err == nil {
				s.cpuNs[t.name] = ns
			}
		}
	}
	tab, err := readProcs("/proc")
	if err != nil {
		return s, err
	}
	for _, t := range targets {
		ps := tab.tree(t.root)
		details("/proc", ps, memory)
		var comp map[int]string
		if t.flat {
			comp = map[int]string{}
			for _, p := range ps {
				comp[p.pid] = t.rootName
			}
		} else {
			roots := map[int]bool{t.root: true}
			if t.cg != nil {
				// The launcher's child is the node's PID 1.
				for _, c := range tab.children[t.root] {
					roots[c] = true
				}
			}
			comp = classify(ps, roots, t.rootName)
		}
		s.comps[t.name] = byComponent(ps, comp)
	}
	return s, nil
}

// measure samples the cluster for the window and fills res.
func measure(ctx context.Context, o *options, cl *cluster, res *result) error {
	var targets []target
	markers := map[string]string{}
	for _, n := range cl.Nodes {
		t := target{name: n.Name, role: n.Role, root: n.Proc.PID}
		if cl.Platform == "container" {
			cg, err := findNodeCgroup(n.Proc.PID)
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: its cgroup: %v", n.Name, err))
			} else {
				t.cg = &cg
			}
			t.rootName = "init (PID 1)"
			markers["cairn-node-"+strconv.Itoa(n.Proc.PID)] = n.Name
		} else {
			t.rootName = "cairn cluster vm"
		}
		targets = append(targets, t)
	}
	if cl.Store != nil && cl.Store.Proc.PID > 0 {
		targets = append(targets, target{name: "datastore", role: cl.Store.Kind, root: cl.Store.Proc.PID, rootName: cl.Store.Kind, flat: true})
	}

	var creds *kube.Credentials
	if kc, err := readPrefix(filepath.Join(cl.dir, "kubeconfig"), 1<<20); err != nil {
		res.Errors = append(res.Errors, "the admin kubeconfig: "+err.Error())
	} else if creds, err = kube.ParseKubeconfig(kc); err != nil {
		res.Errors = append(res.Errors, "the admin kubeconfig: "+err.Error())
	}
	counters := func() map[string]map[string]float64 { return readCounters(ctx, cl, creds, res) }

	var tracer *execTracer
	if cl.Platform == "container" {
		var err error
		if tracer, err = startExecTracer(markers); err != nil {
			res.Errors = append(res.Errors, "execs not counted: "+err.Error())
		}
	}
	res.LoadStart = loadavg()
	res.Started = time.Now().UTC().Truncate(time.Second)
	beforeAt, before := time.Now(), counters()
	first, err := takeSample(targets, true)
	if err != nil {
		if tracer != nil {
			tracer.stop()
		}
		return err
	}
	samples := []sampleAt{first}
	end := first.at.Add(o.window)
	for time.Until(end) > 0 {
		if !supervise.Sleep(ctx, min(o.every, time.Until(end))) {
			break
		}
		s, err := takeSample(targets, true)
		if err != nil {
			res.Errors = append(res.Errors, "a sample: "+err.Error())
			continue
		}
		samples = append(samples, s)
	}
	last := samples[len(samples)-1]
	afterAt, after := time.Now(), counters()
	if tracer != nil {
		c := tracer.stop()
		res.Execs = &c
	}
	res.LoadEnd = loadavg()
	res.Seconds = last.at.Sub(first.at).Seconds()
	if len(samples) < 2 || res.Seconds < 1 {
		return fmt.Errorf("the window ended after %d samples (interrupted?)", len(samples))
	}
	for _, t := range targets {
		res.Nodes = append(res.Nodes, summarize(t, samples))
	}
	res.Rates = map[string]map[string]float64{}
	for k, a := range after {
		if b, ok := before[k]; ok {
			// Each read is timed from just before it: the reads take
			// about as long at both ends.
			res.Rates[k] = rates(b, a, afterAt.Sub(beforeAt).Seconds())
		}
	}
	return ctx.Err()
}

// summarize turns a target's samples into its row of figures: CPU from
// the first and the last sample, memory the mean of all.
func summarize(t target, samples []sampleAt) nodeResult {
	first, last := samples[0], samples[len(samples)-1]
	secs := last.at.Sub(first.at).Seconds()
	nr := nodeResult{Name: t.name, Role: t.role, CgroupCPU: -1}
	if t.cg != nil {
		a, okA := first.cpuNs[t.name]
		b, okB := last.cpuNs[t.name]
		if okA && okB && b >= a {
			nr.CgroupCPU = float64(b-a) / 1e9 / secs * 100
		}
		if usage, anon, err := t.cg.memory(); err == nil {
			nr.CgroupMemMiB, nr.CgroupAnonMiB = float64(usage)/(1<<20), float64(anon)/(1<<20)
		}
	}
	names := map[string]bool{}
	for _, s := range samples {
		for c := range s.comps[t.name] {
			names[c] = true
		}
	}
	for c := range names {
		a, b := first.comps[t.name][c], last.comps[t.name][c]
		cr := componentResult{Name: c, Procs: b.procs}
		// A component can lose ticks when a process of it was reaped by
		// another's (its time moves there): the node's sum stays right.
		cr.CPU = (float64(b.ticks) - float64(a.ticks)) / clockTicks / secs * 100
		var rss, pss float64
		for _, s := range samples {
			u := s.comps[t.name][c]
			rss += float64(u.rss)
			pss += float64(u.pss)
		}
		n := float64(len(samples)) * 1024
		cr.RSSMiB, cr.PSSMiB = rss/n, pss/n
		nr.Components = append(nr.Components, cr)
		nr.SumCPU += cr.CPU
		nr.SumRSSMiB += cr.RSSMiB
		nr.SumPSSMiB += cr.PSSMiB
	}
	sort.Slice(nr.Components, func(i, j int) bool {
		if nr.Components[i].CPU != nr.Components[j].CPU {
			return nr.Components[i].CPU > nr.Components[j].CPU
		}
		return nr.Components[i].Name < nr.Components[j].Name
	})
	return nr
}

// readCounters reads every counter the benchmark compares across the
// window, keyed "what on where": the datastore server's, each server's
// kine or etcd, each apiserver's requests. What cannot be read is noted
// once in res.Errors.
func readCounters(ctx context.Context, cl *cluster, creds *kube.Credentials, res *result) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	note := func(what string, err error) {
		msg := what + ": " + err.Error()
		for _, e := range res.Errors {
			if e == msg {
				return
			}
		}
		res.Errors = append(res.Errors, msg)
	}
	if cl.Store != nil && cl.Store.Kind == "postgres" {
		if m, err := postgresCounters(ctx, cl.Store.Dir); err != nil {
			note("PostgreSQL's statistics", err)
		} else {
			out["postgres"] = m
		}
	}
	for _, n := range cl.Nodes {
		if n.Role != "server" {
			continue
		}
		if cl.Platform == "container" {
			ss, err := scrapeNetns(ctx, cl.Network.Namespace+"."+n.ID, "http://127.0.0.1:2381/metrics")
			switch {
			case err != nil:
				note(n.Name+": the datastore's metrics", err)
			case cl.Datastore == "embedded":
				out["etcd "+n.Name] = etcdCounters(ss)
			case cl.Datastore == "postgres" || cl.Datastore == "mysql":
				out["kine "+n.Name] = kineCounters(ss)
			}
		}
		if creds != nil {
			ss, err := scrapeAPIServer(ctx, creds, n.Addr)
			if err != nil {
				note(n.Name+": the apiserver's metrics", err)
			} else {
				out["apiserver "+n.Name] = sumBy(ss, "apiserver_request_total", apiRequestKey)
			}
		}
	}
	return out
}
