//go:build linux

package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// comm with a space and parentheses; utime 11, stime 22, cutime 33,
	// cstime 44, starttime 5555.
	line := "1234 (kube (api) s) S 77 1234 1234 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 12 0 5555 100000 300 18446744073709551615"
	p, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if p.pid != 1234 || p.ppid != 77 || p.comm != "kube (api) s" || p.ticks != 110 || p.start != 5555 {
		t.Errorf("parseStat: %+v; want pid 1234, ppid 77, comm %q, ticks 110, start 5555", p, "kube (api) s")
	}
	for _, bad := range []string{"", "12 no-paren S 1", "12 (x) S 1 2 3", "x (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) took it", bad)
		}
	}
}

// A node's tree: the launcher, its PID 1, services, a service's exec, a
// shim with a pod's containers.
func nodeTree() []*proc {
	pod := "/process_api/x/cairn-node-10/kubepods/burstable/pod1/abc"
	node := "/process_api/x/cairn-node-10"
	return []*proc{
		{pid: 10, ppid: 1, argv0: "/sbin/init", cgroup: node, ticks: 5},
		{pid: 11, ppid: 10, argv0: "/sbin/init", cgroup: node, ticks: 20},
		{pid: 12, ppid: 11, argv0: "/usr/bin/kube-apiserver", cgroup: node, ticks: 500, rss: 2048, pss: 1024},
		{pid: 13, ppid: 12, argv0: "iptables", cgroup: node, ticks: 3},
		{pid: 14, ppid: 11, argv0: "/usr/bin/containerd", cgroup: node, ticks: 100},
		{pid: 15, ppid: 11, argv0: "/usr/bin/containerd-shim-runc-v2", cgroup: node, ticks: 7},
		{pid: 16, ppid: 15, argv0: "/pause", cgroup: pod, ticks: 1},
		{pid: 17, ppid: 15, argv0: "/coredns", cgroup: pod, ticks: 40},
		{pid: 18, ppid: 17, argv0: "sh", cgroup: pod, ticks: 2},
		{pid: 19, ppid: 11, comm: "flannel", cgroup: node, ticks: 9},
	}
}

func TestAppletOf(t *testing.T) {
	env := []byte("PATH=/usr/bin\x00CAIRN_NODE_APPLET=containerd-shim-runc-v2\x00TOKEN=secret\x00")
	if a := appletOf(env); a != "containerd-shim-runc-v2" {
		t.Errorf("appletOf: %q; want containerd-shim-runc-v2", a)
	}
	if a := appletOf([]byte("PATH=/usr/bin\x00")); a != "" {
		t.Errorf("appletOf without the variable: %q", a)
	}
}

func TestClassify(t *testing.T) {
	ps := nodeTree()
	comp := classify(ps, map[int]bool{10: true, 11: true}, "init (PID 1)")
	want := map[int]string{10: "init (PID 1)", 11: "init (PID 1)", 12: "kube-apiserver", 13: "kube-apiserver",
		14: "containerd", 15: "containerd-shim-runc-v2", 16: "pod pause", 17: "pod coredns", 18: "pod coredns", 19: "flannel"}
	for pid, w := range want {
		if comp[pid] != w {
			t.Errorf("process %d is in %q; want %q", pid, comp[pid], w)
		}
	}
	u := byComponent(ps, comp)
	if got := u["kube-apiserver"]; got.ticks != 503 || got.procs != 2 || got.rss != 2048 || got.pss != 1024 {
		t.Errorf("kube-apiserver sums to %+v; want 503 ticks (with its exec), 2 processes, RSS 2048, PSS 1024", got)
	}
	if got := u["init (PID 1)"].ticks; got != 25 {
		t.Errorf("init sums to %d ticks; want 25 (launcher and PID 1)", got)
	}
}

func TestSummarizeCPUAndMemory(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	mk := func(at time.Time, ticks, rss uint64) sampleAt {
		return sampleAt{at: at, comps: map[string]map[string]usage{"s1": {"kubelet": {ticks: ticks, rss: rss, pss: rss / 2, procs: 1}}}}
	}
	// 300 s; 600 ticks = 6 s of CPU = 2% of a core; RSS 100 then 300 MiB.
	s := summarize(target{name: "s1", role: "server"}, []sampleAt{mk(t0, 1000, 100<<10), mk(t0.Add(300*time.Second), 1600, 300<<10)})
	if len(s.Components) != 1 {
		t.Fatalf("components %+v", s.Components)
	}
	c := s.Components[0]
	if c.CPU < 1.999 || c.CPU > 2.001 || c.RSSMiB != 200 || c.PSSMiB != 100 {
		t.Errorf("kubelet: CPU %.3f%%, RSS %.0f MiB, PSS %.0f MiB; want 2%%, 200 (the mean), 100", c.CPU, c.RSSMiB, c.PSSMiB)
	}
	if s.CgroupCPU != -1 {
		t.Errorf("no cgroup, yet CgroupCPU %v", s.CgroupCPU)
	}
}

const hybridMountinfo = `25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
`

func TestLocateNodeCgroup(t *testing.T) {
	lines := cgroupLines("12:memory:/a/cairn-node-7\n4:cpu,cpuacct:/cairn-node-7\n1:name=systemd:/x\n0::/cairn-node-7\n")
	nc := locateNodeCgroup(parseCgroupMounts(hybridMountinfo), lines)
	if nc.cpu != "/sys/fs/cgroup/cpu,cpuacct/cairn-node-7" || nc.cpuV2 || nc.mem != "/sys/fs/cgroup/memory/a/cairn-node-7" || nc.memV2 {
		t.Errorf("hybrid host: %+v; want cpuacct and memory v1 directories", nc)
	}
	unified := "30 1 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n"
	nc = locateNodeCgroup(parseCgroupMounts(unified), cgroupLines("0::/machine/cairn-node-9\n"))
	if nc.cpu != "/sys/fs/cgroup/machine/cairn-node-9" || !nc.cpuV2 || !nc.memV2 {
		t.Errorf("unified host: %+v; want the v2 directory for both", nc)
	}
	if got := parseCgroup([]byte("4:cpu,cpuacct:/n/kubepods/p\n0::/other\n")); got != "/n/kubepods/p" {
		t.Errorf("parseCgroup prefers cpuacct's path; got %q", got)
	}
}

func TestCgroupFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cpuacct.usage"), []byte("123456789\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "memory.usage_in_bytes"), []byte("2097152\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "memory.stat"), []byte("cache 5\nrss 1\ntotal_cache 9\ntotal_rss 1048576\n"), 0o644)
	nc := nodeCgroup{cpu: dir, mem: dir}
	if ns, err := nc.cpuNanos(); err != nil || ns != 123456789 {
		t.Errorf("v1 CPU: %d, %v", ns, err)
	}
	if u, a, err := nc.memory(); err != nil || u != 2<<20 || a != 1<<20 {
		t.Errorf("v1 memory: %d, %d, %v; want 2 MiB and the hierarchy's rss, 1 MiB", u, a, err)
	}
	v2 := t.TempDir()
	os.WriteFile(filepath.Join(v2, "cpu.stat"), []byte("usage_usec 42\nuser_usec 40\n"), 0o644)
	if ns, err := (nodeCgroup{cpu: v2, cpuV2: true}).cpuNanos(); err != nil || ns != 42000 {
		t.Errorf("v2 CPU: %d, %v; want 42000 ns", ns, err)
	}
}

// event builds one netlink message of the connector.
func event(what uint32, data ...uint32) []byte {
	ne := binary.NativeEndian
	m := make([]byte, procEventStart+4*len(data))
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint32(m[nlmsgHdrLen:], cnIdxProc)
	ne.PutUint32(m[nlmsgHdrLen+4:], cnValProc)
	ne.PutUint32(m[nlmsgHdrLen+cnMsgLen:], what)
	for i, d := range data {
		ne.PutUint32(m[procEventStart+4*i:], d)
	}
	return m
}

func TestParseProcEvents(t *testing.T) {
	var b []byte
	b = append(b, event(procEventExec, 501, 500)...)             // a thread of 500 exec'd: the process is 500
	b = append(b, event(procEventFork, 40, 40, 41, 41)...)       // a new process
	b = append(b, event(procEventFork, 40, 40, 42, 40)...)       // a new thread
	b = append(b, event(procEventExit, 41, 41, 0, 0, 40, 40)...) // the process's end
	b = append(b, event(0x00000004, 1, 1, 0, 0)...)              // an event not asked for
	b = append(b, []byte{1, 2, 3}...)                            // a torn tail
	got := parseProcEvents(b)
	want := []procEvent{
		{what: procEventExec, tgid: 500},
		{what: procEventFork, parent: 40, child: 41},
		{what: procEventFork, parent: 40, child: 40, thread: true},
		{what: procEventExit, tgid: 41},
	}
	if len(got) != len(want) {
		t.Fatalf("events %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v; want %+v", i, got[i], want[i])
		}
	}
}

func TestNodeOf(t *testing.T) {
	tr := &execTracer{markers: map[string]string{"cairn-node-10": "pg-s1", "cairn-node-20": "pg-a1"}}
	if n := tr.nodeOf("4:cpu,cpuacct:/p/cairn-node-20/kubepods/x\n0::/\n"); n != "pg-a1" {
		t.Errorf("nodeOf: %q; want pg-a1", n)
	}
	if n := tr.nodeOf("4:cpu,cpuacct:/p/cairn-node-100\n"); n != "" {
		t.Errorf("another node's cgroup is taken for %q", n)
	}
}

// TestExecTracer counts a real exec of this process, where the events
// connector is there (root).
func TestExecTracer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process events connector needs root")
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skip(err)
	}
	marker := ""
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && filepath.Base(parts[2]) != "/" {
			marker = filepath.Base(parts[2])
		}
	}
	if marker == "" {
		t.Skip("this process is in no cgroup but the root: nothing tells its execs apart")
	}
	tr, err := startExecTracer(map[string]string{marker: "here"})
	if err != nil {
		t.Skip(err)
	}
	time.Sleep(100 * time.Millisecond)
	// A program that lives a little, as iptables does: /bin/true may be
	// reaped before its exec is looked at.
	for range 3 {
		if err := exec.Command("sleep", "0.05").Run(); err != nil {
			t.Skip(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	c := tr.stop()
	// The program as its command line names it, or as its comm does
	// when it had exited by the time it was looked at.
	n := 0
	for k, v := range c.ByNode["here"] {
		if strings.HasPrefix(k, filepath.Base(os.Args[0])+" → ") && strings.Contains(k, "sleep") {
			n += v
		}
	}
	if n < 3 {
		t.Errorf("execs counted: %v (%d unattributed); want 3 of %s → sleep", c.ByNode["here"], c.Gone, filepath.Base(os.Args[0]))
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP kine_sql_total Total number of SQL operations
# TYPE kine_sql_total counter
kine_sql_total{error_code="",name="after"} 120
kine_sql_total{error_code="",name="list"} 30
kine_sql_total{error_code="23505",name="list"} 2
apiserver_request_total{code="200",group="coordination.k8s.io",resource="leases",subresource="",verb="PUT",version="v1"} 1.5e+03
apiserver_request_total{code="200",group="",resource="",subresource="",verb="GET",version=""} 9
apiserver_request_total{code="200",group="",resource="pods",subresource="status",verb="PATCH",version="v1"} 4
odd{path="a\"b\\c"} 1
broken{x="1" 2
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 10
grpc_server_handled_total{grpc_code="OK",grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 3
etcd_disk_wal_fsync_duration_seconds_count 7
`
	ss, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	k := kineCounters(ss)
	if k["after"] != 120 || k["list"] != 32 {
		t.Errorf("kine counters %v; want after 120, list 32", k)
	}
	a := sumBy(ss, "apiserver_request_total", apiRequestKey)
	if len(a) != 2 || a["PUT leases.coordination.k8s.io"] != 1500 || a["PATCH pods/status"] != 4 {
		t.Errorf("apiserver requests %v; want the two resource requests", a)
	}
	e := etcdCounters(ss)
	if e["gRPC Range"] != 10 || e["WAL fsyncs"] != 7 || e["gRPC Watch"] != 0 {
		t.Errorf("etcd counters %v; want unary Range 10, fsyncs 7, no stream", e)
	}
	found := false
	for _, s := range ss {
		if s.name == "odd" && s.labels["path"] == `a"b\c` {
			found = true
		}
		if s.name == "broken" {
			t.Errorf("a line with an unclosed label set was read: %+v", s)
		}
	}
	if !found {
		t.Error("escaped label values were not read")
	}
}

func TestRates(t *testing.T) {
	r := rates(map[string]float64{"a": 100, "b": 50}, map[string]float64{"a": 400, "b": 10, "c": 30}, 10)
	if r["a"] != 30 || r["b"] != 1 || r["c"] != 3 {
		t.Errorf("rates %v; want a 30/s, b 1/s (restarted: its later value), c 3/s", r)
	}
	tp := top(map[string]float64{"x": 1, "y": 3, "z": 0, "w": 3}, 2)
	if len(tp) != 2 || tp[0].Key != "w" || tp[1].Key != "y" {
		t.Errorf("top %v; want w, y (ties by name, zeros left out)", tp)
	}
}

func TestParsePGRow(t *testing.T) {
	m, err := parsePGRow("10|1|300|200|5|6|7|900|3\n")
	if err != nil || m["xact_commit"] != 10 || m["tup_deleted"] != 7 || m["blks_read"] != 3 {
		t.Errorf("parsePGRow: %v, %v", m, err)
	}
	if _, err := parsePGRow("psql: error: connection refused"); err == nil || !strings.Contains(err.Error(), "want 9 numbers") {
		t.Errorf("an error message is taken for figures: %v", err)
	}
}

func sampleResult(load float64) result {
	return result{Title: "2 servers", Platform: "container", Command: "cairn cluster up --servers 2", Seconds: 300,
		LoadStart: [3]float64{load, 0, 0}, LoadEnd: [3]float64{0.5, 0, 0},
		Nodes: []nodeResult{{Name: "pg-s1", Role: "server", CgroupCPU: 12.5, SumCPU: 12, CgroupMemMiB: 458,
			Components: []componentResult{{Name: "kube-apiserver", CPU: 4.9, RSSMiB: 300, PSSMiB: 200, Procs: 1}}}},
		Rates: map[string]map[string]float64{"kine pg-s1": {"after": 1, "list": 0.5}, "postgres": {"xact_commit": 40, "xact_rollback": 2}},
		Execs: &execCounts{Total: map[string]int{"pg-s1": 1200}, ByNode: map[string]map[string]int{"pg-s1": {"flannel → iptables": 1200}},
			Paths: map[string]string{"flannel → iptables": "/usr/sbin/iptables → xtables-nft-multi"}}}
}

func TestMarkdownFlagsABusyMachine(t *testing.T) {
	var quiet, busy strings.Builder
	q, b := sampleResult(0.8), sampleResult(2.6)
	q.markdown(&quiet)
	b.markdown(&busy)
	if strings.Contains(quiet.String(), "⚠") {
		t.Errorf("a window at load 0.8 is flagged:\n%s", quiet.String())
	}
	if !strings.Contains(busy.String(), "| pg-s1 | kube-apiserver | 4.90 ⚠ |") || !strings.Contains(busy.String(), "load above 2") {
		t.Errorf("a window at load 2.6 is not flagged:\n%s", busy.String())
	}
	out := quiet.String()
	for _, want := range []string{
		"| **pg-s1** | **all** (server) | **12.50** |",  // the node's cgroup
		"| pg-s1 | (not in a process above", "| 0.50 |", // cgroup − components
		"| PostgreSQL, database kine | transactions (commits + rollbacks) | 42.0 |",
		"| kine pg-s1 | SQL statements, all | 1.50 |",
		"| pg-s1 | 240.0 |", // 1200 execs in 5 minutes
		"| pg-s1 | flannel → iptables | /usr/sbin/iptables → xtables-nft-multi | 1200 | 240.0 |",
		"pg-s1 458 MiB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-only", "tcg,pg"})
	if err != nil || strings.Join(o.only, ",") != "tcg,pg" || o.window != 5*time.Minute || o.settle != 3*time.Minute {
		t.Errorf("parseFlags: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-only", "mysql"}, {"-window", "1s"}, {"-every", "1h"}, {"-smp", "0"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) took it", bad)
		}
	}
}

// TestSampleOwnTree reads this test's own process tree from /proc,
// with a child it started and its memory.
func TestSampleOwnTree(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(100 * time.Millisecond)
	// The test's process must have a clock tick (10 ms) of CPU to show:
	// a warm test binary can start and get here in less (CI at 02:30).
	spinCPU(t, 30*time.Millisecond)
	tg := target{name: "self", root: os.Getpid(), rootName: "the test"}
	if cg, err := findNodeCgroup(os.Getpid()); err == nil {
		if _, err := cg.cpuNanos(); err == nil {
			tg.cg = &cg
		}
	}
	s, err := takeSample([]target{tg}, true)
	if err != nil {
		t.Fatal(err)
	}
	c := s.comps["self"]
	if c["the test"].procs < 1 || c["the test"].ticks == 0 {
		t.Errorf("the test's own process: %+v", c["the test"])
	}
	// With a cgroup, the root is a node's launcher and its children the
	// node's PID 1: the sleep is the root's; without, it is a component
	// (a VM's QEMU).
	sleep := c["sleep"]
	if tg.cg != nil {
		sleep = c["the test"]
	}
	if sleep.procs < 1 || sleep.rss == 0 {
		t.Errorf("the sleep child: %+v (components %v)", sleep, c)
	}
}

// spinCPU keeps this process busy until it has used d of CPU, for at most
// 5 s of wall time.
func spinCPU(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for x := 0; time.Now().Before(deadline); {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
			return
		}
		for i := range 1 << 20 {
			x ^= i
		}
	}
}
