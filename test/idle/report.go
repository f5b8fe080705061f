//go:build linux

package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// highLoad is the load average above which a figure is flagged: the
// machine was busy with more than the clusters, and every CPU figure of
// the window is inflated by the contention.
const highLoad = 2.0

type report struct {
	Machine machine   `json:"machine"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	Results []result  `json:"results"`
}

// result is one scenario's figures.
type result struct {
	Scenario, Cluster, Title, Platform, Command string
	UpSeconds, SettleSeconds                    float64
	Started                                     time.Time
	Seconds                                     float64
	LoadStart, LoadEnd                          [3]float64
	Nodes                                       []nodeResult
	// Rates are counters' increases per second over the window, keyed
	// "postgres", "kine NODE", "etcd NODE", "apiserver NODE".
	Rates  map[string]map[string]float64
	Execs  *execCounts `json:",omitempty"`
	Errors []string    `json:",omitempty"`
	// PodStart is timed after the window; PodStartOnly: no window.
	PodStart     *podStart `json:",omitempty"`
	PodStartOnly bool      `json:",omitempty"`
}

type nodeResult struct {
	Name, Role string
	// CgroupCPU is the node cgroup's CPU in % of a core (-1: not read);
	// CgroupMemMiB and CgroupAnonMiB its memory at the end.
	CgroupCPU                    float64
	CgroupMemMiB, CgroupAnonMiB  float64
	SumCPU, SumRSSMiB, SumPSSMiB float64
	Components                   []componentResult
}

type componentResult struct {
	Name           string
	CPU            float64 // % of a core
	RSSMiB, PSSMiB float64 // means over the window
	Procs          int
}

// busy says whether the machine's 1-minute load was above highLoad at
// the start or the end of the window.
func (r *result) busy() bool { return r.LoadStart[0] > highLoad || r.LoadEnd[0] > highLoad }

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Commit %s; %s, %d cores, kernel %s.\n", r.Machine.Commit, r.Machine.CPU, r.Machine.Cores, r.Machine.Kernel)
	for i := range r.Results {
		b.WriteString("\n")
		r.Results[i].markdown(&b)
	}
	return b.String()
}

func (r *result) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "#### %s\n\n", r.Title)
	if r.PodStartOnly {
		if r.UpSeconds > 0 {
			fmt.Fprintf(b, "`%s`: every node Ready %.0f s after it started (the image's build included).\n", r.Command, r.UpSeconds)
		}
		r.podStartMarkdown(b)
		return
	}
	fmt.Fprintf(b, "`%s`: every node Ready %.0f s after it started (the image's build included); measured for %.0f s from %s, %.0f s after Ready. Load average %s at the start, %s at the end.",
		r.Command, r.UpSeconds, r.Seconds, r.Started.Format("15:04:05 UTC"), r.SettleSeconds, fmtLoad(r.LoadStart), fmtLoad(r.LoadEnd))
	flag := ""
	if r.busy() {
		flag = " ⚠"
		fmt.Fprintf(b, " **⚠ load above %.0f: the machine was busy with more than this cluster; the CPU figures marked ⚠ are inflated, measure again on a quiet machine.**", highLoad)
	}
	b.WriteString("\n\n")
	if r.Platform == "qemu" {
		b.WriteString("| node | process | host CPU % of a core | RSS MiB | PSS MiB | processes |\n|---|---|---:|---:|---:|---:|\n")
	} else {
		b.WriteString("| node | component | CPU % of a core | RSS MiB | PSS MiB | processes |\n|---|---|---:|---:|---:|---:|\n")
	}
	for _, n := range r.Nodes {
		for _, c := range n.Components {
			fmt.Fprintf(b, "| %s | %s | %.2f%s | %.1f | %.1f | %d |\n", n.Name, c.Name, c.CPU, flag, c.RSSMiB, c.PSSMiB, c.Procs)
		}
		total := n.SumCPU
		if n.CgroupCPU >= 0 {
			total = n.CgroupCPU
			fmt.Fprintf(b, "| %s | (not in a process above: reaped elsewhere, or gone) | %.2f%s | | | |\n", n.Name, n.CgroupCPU-n.SumCPU, flag)
		}
		fmt.Fprintf(b, "| **%s** | **all** (%s) | **%.2f**%s | %.1f | %.1f | |\n", n.Name, n.Role, total, flag, n.SumRSSMiB, n.SumPSSMiB)
	}
	var mem []string
	for _, n := range r.Nodes {
		if n.CgroupMemMiB > 0 {
			mem = append(mem, fmt.Sprintf("%s %.0f MiB (anonymous %.0f MiB)", n.Name, n.CgroupMemMiB, n.CgroupAnonMiB))
		}
	}
	if len(mem) > 0 {
		fmt.Fprintf(b, "\nCgroup memory at the end: %s. RSS counts the multicall binary's shared pages once per process; PSS shares them out.\n", strings.Join(mem, ", "))
	}
	r.datastoreMarkdown(b)
	r.execsMarkdown(b)
	r.apiMarkdown(b)
	r.podStartMarkdown(b)
	if len(r.Errors) > 0 {
		b.WriteString("\nNot measured:\n")
		for _, e := range r.Errors {
			fmt.Fprintf(b, "- %s\n", e)
		}
	}
}

// sortedKeys are the keys of the rates with prefix, in order.
func (r *result) sortedKeys(prefix string) []string {
	var out []string
	for k := range r.Rates {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (r *result) datastoreMarkdown(b *strings.Builder) {
	pg, kine, etcd := r.Rates["postgres"], r.sortedKeys("kine "), r.sortedKeys("etcd ")
	if pg == nil && len(kine) == 0 && len(etcd) == 0 {
		return
	}
	b.WriteString("\nDatastore:\n\n| where | what | per second |\n|---|---|---:|\n")
	if pg != nil {
		total := pg["xact_commit"] + pg["xact_rollback"]
		fmt.Fprintf(b, "| PostgreSQL, database kine | transactions (commits + rollbacks) | %.1f |\n", total)
		for _, c := range pgColumns[2:] {
			fmt.Fprintf(b, "| PostgreSQL, database kine | %s | %.1f |\n", c, pg[c])
		}
	}
	for _, k := range kine {
		sum := 0.0
		for _, v := range r.Rates[k] {
			sum += v
		}
		fmt.Fprintf(b, "| %s | SQL statements, all | %.2f |\n", k, sum)
		for _, t := range top(r.Rates[k], 6) {
			fmt.Fprintf(b, "| %s | SQL `%s` | %.2f |\n", k, t.Key, t.Rate)
		}
	}
	for _, k := range etcd {
		for _, t := range top(r.Rates[k], 12) {
			fmt.Fprintf(b, "| %s | %s | %.2f |\n", k, t.Key, t.Rate)
		}
	}
}

func (r *result) execsMarkdown(b *strings.Builder) {
	if r.Execs == nil {
		return
	}
	minutes := r.Execs.Seconds / 60
	if minutes <= 0 {
		minutes = r.Seconds / 60
	}
	b.WriteString("\nExecs:\n\n| node | execs per minute |\n|---|---:|\n")
	for _, n := range r.Nodes {
		if n.Role == "server" || n.Role == "agent" {
			fmt.Fprintf(b, "| %s | %.1f |\n", n.Name, float64(r.Execs.Total[n.Name])/minutes)
		}
	}
	b.WriteString("\nWho runs what, the 10 most frequent per node (a program is named as it was run, its path as first seen):\n\n| node | parent → program | path | execs | per minute |\n|---|---|---|---:|---:|\n")
	var nodes []string
	for n := range r.Execs.ByNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		m := map[string]float64{}
		for k, v := range r.Execs.ByNode[n] {
			m[k] = float64(v)
		}
		for _, t := range top(m, 10) {
			fmt.Fprintf(b, "| %s | %s | %s | %.0f | %.1f |\n", n, t.Key, r.Execs.Paths[t.Key], t.Rate, t.Rate/minutes)
		}
	}
	if r.Execs.Lost > 0 || r.Execs.Gone > 0 || r.Execs.Error != "" {
		fmt.Fprintf(b, "\nNot counted: %d batches of events the kernel dropped (its buffer was full), %d execs of processes gone before their node could be told.", r.Execs.Lost, r.Execs.Gone)
		if r.Execs.Error != "" {
			fmt.Fprintf(b, " The counting stopped early: %s.", r.Execs.Error)
		}
		b.WriteString("\n")
	}
}

// podStartMarkdown writes the figures: per series the median and the
// largest time to Running and to Ready, then what failed.
func (r *result) podStartMarkdown(b *strings.Builder) {
	p := r.PodStart
	if p == nil {
		return
	}
	fmt.Fprintf(b, "\nPod start (`%s`, imagePullPolicy Never; each pod deleted and gone before the next), from %s; load average %s at the start, %s at the end.",
		p.Image, p.Started.Format("15:04:05 UTC"), fmtLoad(p.LoadStart), fmtLoad(p.LoadEnd))
	flag := ""
	if p.LoadStart[0] > highLoad || p.LoadEnd[0] > highLoad {
		flag = " ⚠"
		fmt.Fprintf(b, " **⚠ load above %.0f: the times marked ⚠ are inflated.**", highLoad)
	}
	b.WriteString("\n\n")
	var fails []string
	for _, s := range p.Series {
		way := "pod start"
		if s.Scheduler {
			way = "pod start through the scheduler"
		}
		for _, m := range []struct {
			what string
			xs   []float64
		}{{"Running", s.Running}, {"Ready", s.Ready}} {
			if len(m.xs) == 0 {
				fmt.Fprintf(b, "- %s (apply → %s): no pod of %d got there on %s (%s)\n", way, m.what, s.Wanted, s.Node, s.Role)
				continue
			}
			med, top := medianMax(m.xs)
			of := ""
			if len(m.xs) < s.Wanted {
				of = fmt.Sprintf(", of %d", s.Wanted)
			}
			fmt.Fprintf(b, "- %s (apply → %s): median %.2f s, max %.2f s%s over %d pods on %s (%s%s)\n",
				way, m.what, med, top, flag, len(m.xs), s.Node, s.Role, of)
		}
		fails = append(fails, s.Failures...)
	}
	fails = append(fails, p.Errors...)
	if len(fails) > 0 {
		b.WriteString("\nPod start, not measured:\n")
		for _, f := range fails {
			fmt.Fprintf(b, "- %s\n", f)
		}
	}
}

func (r *result) apiMarkdown(b *strings.Builder) {
	keys := r.sortedKeys("apiserver ")
	if len(keys) == 0 {
		return
	}
	b.WriteString("\nApiserver requests, the 10 most frequent per server:\n\n| server | request | per minute |\n|---|---|---:|\n")
	for _, k := range keys {
		for _, t := range top(r.Rates[k], 10) {
			fmt.Fprintf(b, "| %s | %s | %.1f |\n", strings.TrimPrefix(k, "apiserver "), t.Key, t.Rate*60)
		}
	}
}
