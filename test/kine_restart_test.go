//go:build qemu

package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/qemu"
)

// Issue 28's crash loop: a server's kube-apiserver restarted on kine ended
// in "Too large resource version: 1322, current: 1054" at its sixth
// restart in TestVIP, and its post-start hook killed it every minute.
//
// The cause is kine's (v0.17.5), not cairn's flags or stop order: kine
// caches the datastore's current revision and moves it only by a
// compare-and-swap from the value its poll loop or a write last saw. With
// two servers, each with its own kine on one database, the other kine's
// writes land between this kine's start (which fills the cache) and its
// first poll (which starts at the database's revision then), so the swap
// fails from then on and only this kine's own writes move the cache. kine
// answers the apiserver's progress requests with that cached revision; the
// apiserver's watch cache takes a progress notification's revision as its
// own, even a lower one; a consistent watch-list (what client-go's
// informers send since 1.35) asks the database's revision and waits 3 s for
// the cache to reach it, which it never does for a resource nobody writes. Informers of
// idle resources never sync, `start-service-ip-repair-controllers` gives
// up after a minute and kube-apiserver exits, again at every restart while
// the other server writes. cairn's kine keeps the cached revision as a
// running maximum (image/components/internal/dceoverlay, KineRevision;
// docs/components.md "kine's current revision").
//
// These tests restart kube-apiserver inside a running cairn server, the way
// the supervisor sees a crash, and (on PostgreSQL) power the server off and
// boot it again as TestVIP does, while another client keeps writing.

// apiRestartPlan is one way a server's kube-apiserver goes down and comes
// back.
type apiRestartPlan struct {
	name     string
	kine     syscall.Signal // sent to kine first; 0 leaves kine running
	api      syscall.Signal // sent to kube-apiserver
	powerOff bool           // the whole server off and booted again (TestVIP's kill)
}

// apiRestartPlans cycle over the restarts inside a running node: the
// supervisor then restarts what was killed, with its backoff.
var apiRestartPlans = []apiRestartPlan{
	{name: "kube-apiserver SIGKILL (a crash: its kine keeps running)", api: syscall.SIGKILL},
	{name: "kine and kube-apiserver SIGKILL (both start again on a moving database)", kine: syscall.SIGKILL, api: syscall.SIGKILL},
	{name: "kube-apiserver SIGTERM", api: syscall.SIGTERM},
	{name: "kine SIGTERM, then kube-apiserver SIGTERM", kine: syscall.SIGTERM, api: syscall.SIGTERM},
}

// powerOffPlan is TestVIP's kill: every fifth restart on PostgreSQL.
var powerOffPlan = apiRestartPlan{name: "the server powered off and booted again (fresh STATE, as in TestVIP)", powerOff: true}

const tooLargeRV = "Too large resource version"

// TestKineRestartPostgres is the scenario of TestVIP: two servers on one
// PostgreSQL, each with its own kine. A client writes Leases and
// ConfigMaps through s1 all along; s2's kube-apiserver is restarted
// $CAIRN_APISERVER_RESTARTS times (20; 5 with -short) in the plans above,
// every fifth time by powering s2 off and booting it again. After each
// restart the apiserver must come back ready without exiting on its own,
// answer /readyz, and finish a consistent watch-list (what informers send)
// of an idle and a busy resource no older than a write made before the
// restart, and still run afterwards.
func TestKineRestartPostgres(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	// The bridge keeps its MAC when a powered-off server's port goes, so
	// the database stays reachable for the other server.
	pinBridgeMAC(t, ns)
	pg := startPostgres(t, ns, dsAddr)
	pgKeepalives(t, ns) // a powered-off server's connections go within seconds
	b := &kineBed{t: t, ns: ns, datastore: "postgres, two servers"}
	s1 := b.server("s1", "192.168.77.11", pg.endpoint())
	s2 := b.server("s2", "192.168.77.12", pg.endpoint())
	for _, s := range []*kineServer{s1, s2} {
		s.n.expect(t, controlPlane, reServerReady)
	}
	b.api = newAPIClient(t, ns, mustKubeconfig(t, ctx, ns, s1.addr))
	b.writer = s1.url
	b.run(s2, true)
	noSecretOnConsole(t, append(s1.boots, s2.boots...), pgPassword, clusterToken)
}

// TestKineRestartSQLite is the same on one server whose datastore is
// sqlite:// (kine on a file of the node's STATE): the client writes through
// that server, and the restarts are the ones inside a running node (a
// power-off would lose the container platform's STATE, and the database
// with it).
func TestKineRestartSQLite(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	b := &kineBed{t: t, ns: ns, datastore: "sqlite, one server"}
	s1 := b.server("s1", "192.168.77.11", "sqlite:///var/lib/cairn/state.db")
	s1.n.expect(t, controlPlane, reServerReady)
	b.api = newAPIClient(t, ns, mustKubeconfig(t, ctx, ns, s1.addr))
	b.writer = s1.url
	b.run(s1, false)
	noSecretOnConsole(t, s1.boots, clusterToken)
}

// kineBed is one TestKineRestart* run.
type kineBed struct {
	t         *testing.T
	ns        *qemu.Netns
	datastore string // for the figures
	api       *apiClient
	writer    string // the server the client writes through
}

// kineServer is one server machine and its apiserver's URL.
type kineServer struct {
	machine
	url string
}

// server makes a server on datastore and boots it.
func (b *kineBed) server(name, addr, datastore string) *kineServer {
	b.t.Helper()
	s := &kineServer{url: "https://" + addr + ":6443",
		machine: machine{name: name, addr: addr, root: nodeRoot(b.t, serverConfig(name, addr, clusterToken, datastore))}}
	s.boot(b.t, b.ns)
	return s
}

// run restarts s's kube-apiserver again and again while the client
// writes, and prints the figures.
func (b *kineBed) run(s *kineServer, powerOffs bool) {
	t := b.t
	restarts := 20
	if testing.Short() {
		restarts = 5
	}
	if v := os.Getenv("CAIRN_APISERVER_RESTARTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CAIRN_APISERVER_RESTARTS=%q is not a positive number", v)
		}
		restarts = n
	}
	stop := b.churn()
	var ready []float64
	tooLarge := 0
	for i := range restarts {
		plan := apiRestartPlans[i%len(apiRestartPlans)]
		if powerOffs && i%5 == 4 {
			plan = powerOffPlan
		}
		d, lines := b.restart(s, i+1, restarts, plan)
		ready = append(ready, d.Seconds())
		tooLarge += lines
	}
	ops, failed := stop()
	t.Logf("figures: kube-apiserver restarted %d times on kine (%s) while a client wrote through %s (%d requests, %d failed): ready again after median %.1fs, worst %.1fs; %d %q lines in its output",
		restarts, b.datastore, b.writer, ops, failed, median(ready), slices.Max(ready), tooLarge, tooLargeRV)
}

// churn deletes and creates Leases and ConfigMaps through the writer until
// the returned function is called, which says how many requests were sent
// and how many failed (the writer's own restarts fail some, on SQLite).
func (b *kineBed) churn() func() (ops, failed int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var n, bad int
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			name := fmt.Sprintf("kine-churn-%d", i%20)
			lease := map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
				"metadata": map[string]any{"name": name, "namespace": "default"},
				"spec":     map[string]any{"holderIdentity": fmt.Sprint(i), "leaseDurationSeconds": 10}}
			cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": name, "namespace": "default"}, "data": map[string]string{"i": fmt.Sprint(i)}}
			for _, req := range []struct {
				path string
				body any
			}{{"/apis/coordination.k8s.io/v1/namespaces/default/leases/", lease}, {"/api/v1/namespaces/default/configmaps/", cm}} {
				dc, _, _ := b.api.do("DELETE", b.writer+req.path+name, nil)
				pc, _, _ := b.api.do("POST", b.writer+req.path, req.body)
				mu.Lock()
				n += 2
				for _, code := range []int{dc, pc} {
					if code == 0 || code >= 500 {
						bad++
					}
				}
				mu.Unlock()
			}
		}
	})
	return func() (int, int) {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return n, bad
	}
}

// mark writes a ConfigMap through the writer and returns its resource
// version: what a client that wrote just before a restart holds.
func (b *kineBed) mark(i int) int64 {
	b.t.Helper()
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": fmt.Sprintf("kine-restart-%d", i), "namespace": "default"}}
	var last string
	for range 10 {
		code, body, err := b.api.do("POST", b.writer+"/api/v1/namespaces/default/configmaps", cm)
		if code == 201 {
			var o struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(body, &o); err == nil {
				if rv, err := strconv.ParseInt(o.Metadata.ResourceVersion, 10, 64); err == nil {
					return rv
				}
			}
			b.t.Fatalf("creating the ConfigMap kine-restart-%d: no resource version in %.200s", i, body)
		}
		last = fmt.Sprintf("%d %v %.200s", code, err, body)
		time.Sleep(3 * time.Second)
	}
	b.t.Fatalf("creating the ConfigMap kine-restart-%d through %s: %s", i, b.writer, last)
	return 0
}

// restart takes s's kube-apiserver down by plan and checks that it comes
// back as a user needs it. It returns the time from the kill to the
// supervisor's ready line and the number of "Too large resource version"
// lines the apiserver wrote meanwhile.
func (b *kineBed) restart(s *kineServer, i, of int, plan apiRestartPlan) (time.Duration, int) {
	t := b.t
	t.Helper()
	what := fmt.Sprintf("restart %d of %d (%s)", i, of, plan.name)
	rv := b.mark(i)
	from, exits := len(s.n.consoleLines()), 1 // the exit the test causes
	wait := 5 * time.Minute                   // a crash loop shows within it: the post-start hook gives up after 1 min
	began := time.Now()
	if plan.powerOff {
		s.powerOff(t, b.ns)
		s.boot(t, b.ns)
		from, exits, wait = 0, 0, controlPlane
	} else {
		if plan.kine != 0 {
			if err := syscall.Kill(componentPID(t, s.n, "kine"), plan.kine); err != nil {
				t.Fatalf("%s: signalling kine: %v", what, err)
			}
		}
		if err := syscall.Kill(componentPID(t, s.n, "kube-apiserver"), plan.api); err != nil {
			t.Fatalf("%s: signalling kube-apiserver: %v", what, err)
		}
		if consoleLine(s.n, from, 2*time.Minute, `service kube-apiserver: exited`) < 0 {
			t.Fatalf("%s: %s printed no exit line for kube-apiserver within 2 minutes; its console:\n%s", what, s.n.name, s.n.tail(40))
		}
	}
	// The ready line after the kill: the apiserver was ready before it.
	at := consoleLine(s.n, from, wait, `service kube-apiserver: ready`)
	took := time.Since(began)
	lines := s.n.consoleLines()
	end := len(lines)
	if at >= 0 {
		end = at
	}
	self := statusLines(lines[min(from, len(lines)):end], `service kube-apiserver: exited`)
	large := outputLines(lines[min(from, len(lines)):end], "kube-apiserver", tooLargeRV)
	if at < 0 {
		t.Fatalf("%s: %s's kube-apiserver was not ready again within %s: %d exits (the test caused %d), %d %q lines in its output%s%s\nits console:\n%s",
			what, s.n.name, wait, len(self), exits, len(large), tooLargeRV, quoted("exits", self), quoted("last "+tooLargeRV, lastOf(large)), s.n.tail(40))
	}
	if len(self) > exits {
		t.Errorf("%s: %s's kube-apiserver exited by itself before it was ready again:%s", what, s.n.name, quoted("", self[exits:]))
	}
	b.api.waitReady(t, s.url, time.Minute)
	// Informers list with a consistent watch-list: it waits for the watch
	// cache to reach the database's revision. podtemplates: nobody writes
	// them, so only kine's progress notifications move that cache;
	// configmaps: the client writes them all along.
	for _, path := range []string{"/api/v1/podtemplates", "/api/v1/configmaps"} {
		got, err := watchListRetry(b.api, s.url, path)
		if err != nil {
			t.Errorf("%s: a consistent watch-list of %s through %s (what informers send) failed 4 tries, 5 s apart: %v", what, path, s.name, err)
		} else if got < rv {
			t.Errorf("%s: a consistent watch-list of %s through %s ended at resource version %d, older than the write at %d before the restart", what, path, s.name, got, rv)
		}
	}
	if after := statusLines(s.n.consoleLines()[at:], `service kube-apiserver: exited`); len(after) > 0 {
		t.Errorf("%s: %s's kube-apiserver exited after it was ready:%s", what, s.n.name, quoted("", after))
	}
	t.Logf("%s: kube-apiserver ready %.1fs after the kill; %d %q lines in its output meanwhile", what, took.Seconds(), len(large), tooLargeRV)
	return took, len(large)
}

// consoleLines is the console so far (lines already there never change).
func (n *containerNode) consoleLines() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lines
}

// reStatus is an init's status line, after its "cairn: [time] " prefix.
var reStatus = regexp.MustCompile(`^cairn: \[\s*\d+\.\d+\] (.*)$`)

// consoleLine waits up to d for an init status line matching re at or after
// line from of n's console and returns its index, or -1 when none came or
// n ended first.
func consoleLine(n *containerNode, from int, d time.Duration, re string) int {
	r := regexp.MustCompile(re)
	deadline := time.After(d)
	for i := from; ; {
		n.mu.Lock()
		lines, more := n.lines, n.more
		n.mu.Unlock()
		for ; i < len(lines); i++ {
			if m := reStatus.FindStringSubmatch(lines[i]); m != nil && r.MatchString(m[1]) {
				return i
			}
		}
		select {
		case <-more:
		case <-n.done:
			if len(n.consoleLines()) == i {
				return -1
			}
		case <-deadline:
			return -1
		}
	}
}

// statusLines are the init status lines of lines matching re.
func statusLines(lines []string, re string) []string {
	r := regexp.MustCompile(re)
	var out []string
	for _, l := range lines {
		if m := reStatus.FindStringSubmatch(l); m != nil && r.MatchString(m[1]) {
			out = append(out, l)
		}
	}
	return out
}

// outputLines are the lines of component's output (on the console with
// cairn.debug, as "NAME| line") that contain s.
func outputLines(lines []string, component, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, component+"| ") && strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func lastOf(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l[len(l)-1:]
}

// quoted is lines, indented under a heading, for a failure message.
func quoted(heading string, lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	if heading != "" {
		heading = "; " + heading + ":"
	}
	return heading + "\n\t" + strings.Join(lines, "\n\t")
}

// componentPID is the host PID of n's one process whose command name is
// comm (a component runs as /usr/bin/NAME, a link to cairn-node).
func componentPID(t *testing.T, n *containerNode, comm string) int {
	t.Helper()
	var found []int
	for pid := range descendants(n.cmd.Process.Pid) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(data)) == comm {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s runs %d processes named %s (%v); want one", n.name, len(found), comm, found)
	}
	return found[0]
}

// watchListRetry is watchList tried up to 4 times, 5 s apart, as an
// informer retries; it returns the last error.
func watchListRetry(api *apiClient, server, path string) (int64, error) {
	var err error
	for try := range 4 {
		if try > 0 {
			time.Sleep(5 * time.Second)
		}
		var rv int64
		if rv, err = watchList(api, server, path); err == nil {
			return rv, nil
		}
	}
	return 0, err
}

// watchList runs the consistent watch-list client-go's informers send
// (sendInitialEvents, resourceVersionMatch=NotOlderThan, bookmarks, no
// resourceVersion) for path at server, and returns the resource version of
// its initial-events-end bookmark, or the apiserver's error ("Timeout: Too
// large resource version: …" when its watch cache stays behind).
func watchList(api *apiClient, server, path string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", server+path+
		"?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=10", nil)
	if err != nil {
		return 0, err
	}
	resp, err := api.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	type status struct {
		Message  string `json:"message"`
		Metadata struct {
			ResourceVersion string            `json:"resourceVersion"`
			Annotations     map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		var st status
		if json.Unmarshal(body, &st) == nil && st.Message != "" {
			return 0, fmt.Errorf("%d: %s", resp.StatusCode, st.Message)
		}
		return 0, fmt.Errorf("%d: %.200s", resp.StatusCode, body)
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, 32<<20))
	for {
		var ev struct {
			Type   string `json:"type"`
			Object status `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			return 0, fmt.Errorf("the watch ended before its initial-events-end bookmark: %w", err)
		}
		switch ev.Type {
		case "ERROR":
			return 0, errors.New(ev.Object.Message)
		case "BOOKMARK":
			if ev.Object.Metadata.Annotations["k8s.io/initial-events-end"] == "true" {
				return strconv.ParseInt(ev.Object.Metadata.ResourceVersion, 10, 64)
			}
		}
	}
}
