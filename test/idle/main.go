//go:build linux

// Command idle measures what cairn's nodes cost at rest (issue #26): it
// starts local clusters with `cairn cluster up`, waits until every node
// is Ready and a settling time more, then for a window samples each node
// and each of its components (CPU from /proc times and the node's cgroup,
// RSS and PSS from smaps_rollup), the datastore's queries (PostgreSQL's
// pg_stat_database, kine's and embedded etcd's metrics), the apiservers'
// requests, and every exec in the nodes (the kernel's process events
// connector: who runs what). Then the same for one server VM under TCG:
// the host CPU of its QEMU. It prints the tables (Markdown) and writes
// them with the raw figures (JSON) under -out. After each window it
// times pod start (podstart.go); `-only podstart` times only that, on a
// fresh small cluster or a running one (-cluster). `make bench-idle`
// runs it as root; docs/performance.md says how to read it.
//
// usage: go run ./test/idle [flags]   (from the repository's root, as root)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/init/supervise"
	"golang.org/x/sys/unix"
)

type options struct {
	cairn, kernel, components, board, stateDir, out string
	only                                            []string
	settle, window, every                           time.Duration
	vip                                             string
	keep                                            bool
	memory, smp                                     int
	// Pod start: how many pods a series, each one's bound, the pause
	// image (versions.env's when empty); podOnly skips the window; cluster
	// is a running cluster to measure instead of starting any.
	pods       int
	podTimeout time.Duration
	podImage   string
	podOnly    bool
	cluster    string
}

// scenario is one cluster the benchmark starts and measures.
type scenario struct {
	key, name, title string
	platform         string
	args             []string // cairn cluster up's flags beyond the common ones
	timeout          time.Duration
}

func scenarios(o *options) []scenario {
	pg := []string{"--servers", "2", "--agents", "1", "--datastore", "postgres"}
	if o.vip != "" {
		pg = append(pg, "--vip", o.vip)
	}
	return []scenario{
		{key: "pg", name: "idle-pg", title: "2 servers on PostgreSQL and an agent (container platform)", platform: "container",
			args: pg, timeout: 20 * time.Minute},
		{key: "etcd", name: "idle-etcd", title: "1 server on embedded etcd (container platform)", platform: "container",
			args: []string{"--servers", "1", "--agents", "0", "--datastore", "embedded"}, timeout: 20 * time.Minute},
		{key: "tcg", name: "idle-tcg", title: "1 server VM on embedded etcd under TCG (QEMU, host CPU)", platform: "qemu",
			args:    []string{"--servers", "1", "--agents", "0", "--datastore", "embedded", "--memory", strconv.Itoa(o.memory), "--smp", strconv.Itoa(o.smp)},
			timeout: time.Hour},
		{key: "tcg3", name: "idle-tcg3", title: "2 server VMs on embedded etcd and an agent VM under TCG (QEMU, host CPU)", platform: "qemu",
			args:    []string{"--servers", "2", "--agents", "1", "--datastore", "embedded", "--memory", strconv.Itoa(o.memory), "--smp", strconv.Itoa(o.smp)},
			timeout: time.Hour},
		{key: "podstart", name: "idle-podstart", title: "Pod start on 1 server on embedded etcd and an agent (container platform)", platform: "container",
			args: []string{"--servers", "1", "--agents", "1", "--datastore", "embedded"}, timeout: 20 * time.Minute},
	}
}

// allScenarios are what -only measures by default; extraScenarios only
// when named (three VMs take more of this machine than a default run should).
var (
	allScenarios   = []string{"pg", "etcd", "tcg"}
	extraScenarios = []string{"tcg3"}
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-idle: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench-idle: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("bench-idle", flag.ContinueOnError)
	o := &options{}
	var only string
	fs.StringVar(&o.cairn, "cairn", "out/bin/cairn", "the cairn CLI (make cairn)")
	fs.StringVar(&o.kernel, "kernel", "out/debs", "kernel packages for the clusters' image (make kernels)")
	fs.StringVar(&o.components, "components", "out/components", "node components for the clusters' image (make components-ARCH)")
	fs.StringVar(&o.board, "board", "", "the clusters' board (default: cairn cluster up's, this machine's architecture's QEMU board)")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/cairn-cluster", "cairn cluster's state directory")
	fs.StringVar(&o.out, "out", "out/bench-idle", "where the report (Markdown) and the raw figures (JSON) go")
	fs.StringVar(&only, "only", strings.Join(allScenarios, ","), "what to measure, in order: pg (2 servers on PostgreSQL and an agent), etcd (a server on embedded etcd), tcg (a server VM under TCG); "+
		"tcg3 (2 server VMs and an agent VM under TCG, 3 x -memory; only when named); "+
		"podstart: pod start only, no window (alone: on a fresh server and agent, or on -cluster)")
	fs.DurationVar(&o.settle, "settle", 3*time.Minute, "how long to wait after every node is Ready before measuring")
	fs.DurationVar(&o.window, "window", 5*time.Minute, "how long to measure")
	fs.DurationVar(&o.every, "every", 30*time.Second, "how often memory is sampled within the window (its mean is reported)")
	fs.StringVar(&o.vip, "vip", "", "pg: give the servers a VIP (auto, or an address): its election's cost is then in the figures")
	fs.BoolVar(&o.keep, "keep", false, "leave each cluster running after it was measured (cairn cluster down --name NAME removes it)")
	fs.IntVar(&o.memory, "memory", 3072, "tcg: the VM's memory in MiB")
	fs.IntVar(&o.smp, "smp", 2, "tcg: the VM's CPUs")
	fs.IntVar(&o.pods, "pods", 10, "pod start: pods a series, one after another (0: no pod start)")
	fs.DurationVar(&o.podTimeout, "pod-timeout", 3*time.Minute, "pod start: how long a pod may take to be Running and Ready")
	fs.StringVar(&o.podImage, "pod-image", "", "pod start: the pause image every node carries (default: PAUSE_IMAGE of "+versionsEnv+")")
	fs.StringVar(&o.cluster, "cluster", "", "with -only podstart: a running cluster (cairn cluster up --name) to time pod start on, left running")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for s := range strings.SplitSeq(only, ",") {
		s = strings.TrimSpace(s)
		if s == "podstart" {
			o.podOnly = true
			continue
		}
		if !slices.Contains(allScenarios, s) && !slices.Contains(extraScenarios, s) {
			return nil, fmt.Errorf("-only: %q is not one of %s", s, strings.Join(slices.Concat(allScenarios, extraScenarios), ", "))
		}
		if !slices.Contains(o.only, s) {
			o.only = append(o.only, s)
		}
	}
	switch {
	case o.podOnly && o.cluster != "" && len(o.only) > 0:
		return nil, fmt.Errorf("-cluster %s and -only %s: a running cluster, or clusters to start, not both", o.cluster, strings.Join(o.only, ","))
	case o.podOnly && len(o.only) == 0 && o.cluster == "":
		o.only = []string{"podstart"}
	}
	switch {
	case o.cluster != "" && !o.podOnly:
		return nil, fmt.Errorf("-cluster %s: a running cluster's pod start only: add -only podstart", o.cluster)
	case o.cluster != "" && (o.cluster != filepath.Base(o.cluster) || strings.HasPrefix(o.cluster, ".")):
		return nil, fmt.Errorf("-cluster %q: want a cluster's name (cairn cluster list)", o.cluster)
	case o.pods < 0 || o.pods > 100 || (o.podOnly && o.pods == 0):
		return nil, fmt.Errorf("-pods %d: want 1 to 100 (0 without podstart in -only: no pod start)", o.pods)
	case o.podTimeout < 10*time.Second || o.podTimeout > time.Hour:
		return nil, fmt.Errorf("-pod-timeout %s: want 10s to 1h", o.podTimeout)
	case o.settle < 0 || o.settle > time.Hour:
		return nil, fmt.Errorf("-settle %s: want 0 to 1h", o.settle)
	case o.window < 30*time.Second || o.window > 2*time.Hour:
		return nil, fmt.Errorf("-window %s: want 30s to 2h", o.window)
	case o.every < 5*time.Second || o.every > o.window:
		return nil, fmt.Errorf("-every %s: want 5s to the window (%s)", o.every, o.window)
	case o.memory < 512 || o.memory > 65536 || o.smp < 1 || o.smp > 16:
		return nil, fmt.Errorf("-memory %d / -smp %d: want 512-65536 MiB and 1-16 CPUs", o.memory, o.smp)
	}
	return o, nil
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench-idle: "+format+"\n", args...) }

func run(ctx context.Context, o *options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: cairn cluster up makes namespaces and containers, and the process events connector is root's")
	}
	if _, err := os.Stat(o.cairn); err != nil {
		return fmt.Errorf("-cairn %s: %w (make cairn)", o.cairn, err)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if o.podImage == "" && o.pods > 0 {
		env, err := readPrefix(versionsEnv, 1<<20)
		if err == nil {
			o.podImage, err = pauseImageOf(string(env))
		}
		if err != nil {
			return fmt.Errorf("the pause image: %s: %w (run from the repository's root, or give -pod-image)", versionsEnv, err)
		}
	}
	rep := &report{Machine: describeMachine(), Started: time.Now().UTC().Truncate(time.Second)}
	logf("%s, %d cores, load %s; commit %s", rep.Machine.CPU, rep.Machine.Cores, fmtLoad(loadavg()), rep.Machine.Commit)
	var runErr error
	if o.cluster != "" {
		res, err := measureRunning(ctx, o)
		if res != nil {
			rep.Results = append(rep.Results, *res)
		}
		runErr = err
	}
	for _, sc := range scenarios(o) {
		if o.cluster != "" || !slices.Contains(o.only, sc.key) {
			continue
		}
		res, err := measureScenario(ctx, o, sc)
		if res != nil {
			rep.Results = append(rep.Results, *res)
		}
		if err != nil {
			runErr = fmt.Errorf("%s: %w", sc.name, err)
			break
		}
		if ctx.Err() != nil {
			runErr = errors.New("interrupted")
			break
		}
	}
	rep.Ended = time.Now().UTC().Truncate(time.Second)
	md := rep.markdown()
	fmt.Print(md)
	stamp := rep.Started.Format("20060102-150405")
	if err := os.WriteFile(filepath.Join(o.out, "idle-"+stamp+".md"), []byte(md), 0o644); err != nil {
		return errors.Join(runErr, err)
	}
	data, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "idle-"+stamp+".json"), append(data, '\n'), 0o644); err != nil {
		return errors.Join(runErr, err)
	}
	logf("report: %s (raw figures beside it)", filepath.Join(o.out, "idle-"+stamp+".md"))
	return runErr
}

// measureScenario starts the scenario's cluster, lets it settle, measures
// it and removes it (unless -keep, or it failed to come up: then its
// logs are there to read).
func measureScenario(ctx context.Context, o *options, sc scenario) (*result, error) {
	args := []string{"cluster", "up", "--name", sc.name, "--platform", sc.platform, "--state-dir", o.stateDir,
		"--kernel", o.kernel, "--components", o.components, "--wait", "node", "--timeout", sc.timeout.String()}
	if o.board != "" {
		args = append(args, "--board", o.board)
	}
	args = append(args, sc.args...)
	logf("%s: %s %s", sc.name, o.cairn, strings.Join(args, " "))
	began := time.Now()
	if err := cairnCLI(ctx, o.cairn, args...); err != nil {
		if ctx.Err() != nil && !o.keep {
			// Interrupted while it waited for the nodes: up leaves them
			// running then.
			if _, serr := os.Stat(filepath.Join(o.stateDir, sc.name)); serr == nil {
				cairnCLI(context.Background(), o.cairn, "cluster", "down", "--name", sc.name, "--state-dir", o.stateDir)
			}
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cairn cluster up: %w (its nodes' consoles are in %s; cairn cluster down --name %s removes it)",
			err, filepath.Join(o.stateDir, sc.name, "nodes"), sc.name)
	}
	up := time.Since(began)
	defer func() {
		if o.keep {
			logf("%s: left running (-keep); cairn cluster down --name %s --state-dir %s removes it", sc.name, sc.name, o.stateDir)
			return
		}
		logf("%s: cairn cluster down", sc.name)
		if err := cairnCLI(context.Background(), o.cairn, "cluster", "down", "--name", sc.name, "--state-dir", o.stateDir); err != nil {
			logf("%s: cairn cluster down: %v", sc.name, err)
		}
	}()
	cl, err := loadCluster(o.stateDir, sc.name)
	if err != nil {
		return nil, err
	}
	res := &result{Scenario: sc.key, Cluster: sc.name, Title: sc.title, Platform: sc.platform,
		Command:   "cairn cluster up " + strings.Join(sc.args, " ") + " --platform " + sc.platform,
		UpSeconds: up.Seconds(), SettleSeconds: o.settle.Seconds(), PodStartOnly: o.podOnly}
	if !o.podOnly {
		logf("%s: every node Ready after %s; settling %s (load %s)", sc.name, up.Round(time.Second), o.settle, fmtLoad(loadavg()))
		if !supervise.Sleep(ctx, o.settle) {
			return nil, ctx.Err()
		}
		logf("%s: measuring for %s", sc.name, o.window)
		err = measure(ctx, o, cl, res)
		logf("%s: measured (load %s)", sc.name, fmtLoad(res.LoadEnd))
	}
	// After the window: pod start does not disturb it.
	if err == nil && o.pods > 0 {
		logf("%s: pod start, %d pods a series", sc.name, o.pods)
		res.PodStart = measurePodStart(ctx, o, cl)
		err = ctx.Err()
	}
	return res, err
}

// cairnCLI runs the cairn CLI with its output on this program's stderr;
// an interrupt reaches it as SIGINT (cluster up then removes what it
// made while it is still making it).
func cairnCLI(ctx context.Context, cairn string, args ...string) error {
	cmd := exec.CommandContext(ctx, cairn, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Minute
	return cmd.Run()
}

// cluster is what the benchmark reads of a cluster's cluster.json.
type cluster struct {
	dir       string
	Name      string `json:"name"`
	Platform  string `json:"platform"`
	Datastore string `json:"datastore"`
	Network   struct {
		Namespace string `json:"namespace"`
	} `json:"network"`
	Store *struct {
		Kind string  `json:"kind"`
		Dir  string  `json:"dir"`
		Proc procRef `json:"proc"`
	} `json:"store"`
	Nodes []struct {
		ID   string  `json:"id"`
		Name string  `json:"name"`
		Role string  `json:"role"`
		Addr string  `json:"addr"`
		Proc procRef `json:"proc"`
	} `json:"nodes"`
}

// procRef is a process as cluster.json records it: its PID and start time.
type procRef struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// alive says whether the process still runs (same PID, same start time).
func (p procRef) alive() bool {
	data, err := readPrefix(fmt.Sprintf("/proc/%d/stat", p.PID), 4097)
	if err != nil {
		return false
	}
	st, err := parseStat(strings.TrimSpace(string(data)))
	return err == nil && st.start == p.Start
}

func loadCluster(stateDir, name string) (*cluster, error) {
	dir := filepath.Join(stateDir, name)
	data, err := readPrefix(filepath.Join(dir, "cluster.json"), 1<<20)
	if err != nil {
		return nil, err
	}
	cl := &cluster{dir: dir}
	if err := json.Unmarshal(data, cl); err != nil {
		return nil, fmt.Errorf("%s/cluster.json: %w", dir, err)
	}
	for _, n := range cl.Nodes {
		if n.Proc.PID <= 0 || !n.Proc.alive() {
			return nil, fmt.Errorf("node %s (process %d) is not running", n.Name, n.Proc.PID)
		}
	}
	return cl, nil
}

// loadavg is /proc/loadavg's three figures.
func loadavg() [3]float64 {
	var l [3]float64
	data, err := readPrefix("/proc/loadavg", 256)
	if err != nil {
		return l
	}
	f := strings.Fields(string(data))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

func fmtLoad(l [3]float64) string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

// machine says where the figures were taken.
type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Commit string `json:"commit"`
}

func describeMachine() machine {
	m := machine{CPU: "unknown CPU", Commit: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			k = strings.TrimSpace(k)
			if ok && (k == "model name" || k == "Model") && m.CPU == "unknown CPU" {
				m.CPU = strings.TrimSpace(v)
			}
			if ok && k == "processor" {
				m.Cores++
			}
		}
		f.Close()
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += "-dirty"
		}
	}
	return m
}
