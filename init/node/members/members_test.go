package members

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
)

// The tests run Debian's etcd (make deps installs etcd-server) as real
// members on loopback ports, without TLS: membership does not depend on
// it (init/node's tests cover the certificates).

// member is one etcd process of a test.
type member struct {
	name, dir     string
	client, peer  string
	cmd           *exec.Cmd
	out           *syncBuffer
	done          chan struct{}
	cli           *clientv3.Client
	initial, mode string
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func etcdBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd is not installed (make deps installs etcd-server)")
	}
	return bin
}

func freePorts(t *testing.T, n int) []int {
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// newMember makes a member's addresses and data directory; start runs it.
func newMember(t *testing.T, name string) *member {
	p := freePorts(t, 2)
	return &member{name: name, dir: filepath.Join(t.TempDir(), name),
		client: fmt.Sprintf("http://127.0.0.1:%d", p[0]), peer: fmt.Sprintf("http://127.0.0.1:%d", p[1])}
}

// start runs the member, of a new cluster of one when initial is "", else
// joining the cluster initial names.
func (m *member) start(t *testing.T, initial string) {
	t.Helper()
	m.mode, m.initial = "new", m.name+"="+m.peer
	if initial != "" {
		m.mode, m.initial = "existing", initial
	}
	m.out = &syncBuffer{}
	m.cmd = exec.Command(etcdBin(t), "--name="+m.name, "--data-dir="+m.dir,
		"--listen-client-urls="+m.client, "--advertise-client-urls="+m.client,
		"--listen-peer-urls="+m.peer, "--initial-advertise-peer-urls="+m.peer,
		"--initial-cluster="+m.initial, "--initial-cluster-state="+m.mode,
		"--heartbeat-interval=50", "--election-timeout=500")
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.done = make(chan struct{})
	go func() { m.cmd.Wait(); close(m.done) }()
	t.Cleanup(m.stop)
	if m.cli == nil {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.client}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		m.cli = cli
		t.Cleanup(func() { cli.Close() })
	}
	m.waitStatus(t, func(st *clientv3.StatusResponse) bool { return true })
}

func (m *member) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		<-m.done
	}
}

// waitStatus waits until the member's status satisfies ok.
func (m *member) waitStatus(t *testing.T, ok func(*clientv3.StatusResponse) bool) *clientv3.StatusResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := m.cli.Status(ctx, m.client)
		cancel()
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no status as waited for: %v\n%s", m.name, err, m.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fakeAPI is an apiserver as far as Run goes: Nodes, and the objects it
// applies.
type fakeAPI struct {
	*httptest.Server
	mu      sync.Mutex
	nodes   []string
	applied map[string]map[string]any
}

func newFakeAPI(t *testing.T, nodes ...string) *fakeAPI {
	f := &fakeAPI{nodes: nodes, applied: map[string]map[string]any{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes":
			var items []map[string]any
			for _, n := range f.nodes {
				items = append(items, map[string]any{"metadata": map[string]string{"name": n}})
			}
			json.NewEncoder(w).Encode(map[string]any{"items": items})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/nodes/"):
			if !slices.Contains(f.nodes, strings.TrimPrefix(r.URL.Path, "/api/v1/nodes/")) {
				w.WriteHeader(http.StatusNotFound)
				json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": 404})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{})
		case r.Method == http.MethodPatch:
			var obj map[string]any
			json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&obj)
			f.applied[obj["kind"].(string)+" "+obj["metadata"].(map[string]any)["name"].(string)] = obj
			json.NewEncoder(w).Encode(obj)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) setNodes(n ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = n
}

// lines collects console lines.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (c *lines) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.l = append(c.l, fmt.Sprintf(format, args...))
}

func (c *lines) all() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.l, "\n")
}

// runnerOf is Run's state for member m, its apiserver api (ready).
func runnerOf(m *member, api *fakeAPI, out *lines, peersFile string) *runner {
	ready := make(chan struct{})
	close(ready)
	return &runner{o: Options{Etcd: m.cli, Name: m.name, API: kube.New(api.URL, kube.Options{}),
		Ready: ready, RecordKey: "/cairn/bootstrap", PeersFile: peersFile, Printf: out.printf}, unstarted: map[uint64]time.Time{}}
}

// rounds runs the runners' rounds until done says so.
func rounds(t *testing.T, what string, done func() bool, rs ...*runner) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 30s", what)
		}
		for _, r := range rs {
			r.round(context.Background(), true)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// joinRetry is Join, asked again while etcd says a member has only just
// started (it adds one only when every voter has been connected for 5 s).
func joinRetry(t *testing.T, cli *clientv3.Client, name, peer string) *Joined {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := Join(context.Background(), cli, name, peer)
		if err == nil {
			return j
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
			t.Fatalf("joining %s: %v", name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func voters(t *testing.T, cli *clientv3.Client) []Member {
	t.Helper()
	ms, err := List(context.Background(), cli, false)
	if err != nil {
		t.Fatal(err)
	}
	return Voters(ms)
}

// cluster is three voting members, each with its server's runner, on one
// fake apiserver whose Nodes are theirs, all printing to out.
type cluster struct {
	a, b, c *member
	api     *fakeAPI
	out     lines
	rs      []*runner // a's, b's, c's
}

// threeVoters starts a's etcd as a new cluster; b and c join it through a
// in turn, each promoted by the runners' rounds before the next joins.
func threeVoters(t *testing.T) *cluster {
	t.Helper()
	cl := &cluster{a: newMember(t, "a"), b: newMember(t, "b"), c: newMember(t, "c"), api: newFakeAPI(t, "a", "b", "c")}
	cl.a.start(t, "")
	cl.rs = []*runner{runnerOf(cl.a, cl.api, &cl.out, "")}
	for _, m := range []*member{cl.b, cl.c} {
		j := joinRetry(t, cl.a.cli, m.name, m.peer)
		m.start(t, j.InitialCluster)
		cl.rs = append(cl.rs, runnerOf(m, cl.api, &cl.out, ""))
		n := len(cl.rs)
		rounds(t, m.name+"'s promotion", func() bool { return len(voters(t, cl.a.cli)) == n }, cl.rs...)
	}
	return cl
}

// A server joins as a learner through a voting member, is refused while
// another learner is joining, starts with the initial cluster Join gave,
// and the leader's server promotes it once it has caught up, saying so;
// the leader publishes the record and the voting members for the next
// joiner, and every server keeps the others' client URLs.
func TestJoinAsLearnerAndPromote(t *testing.T) {
	ctx := context.Background()
	a := newMember(t, "a")
	a.start(t, "")
	if _, err := a.cli.Put(ctx, "/cairn/bootstrap", "the sealed record"); err != nil {
		t.Fatal(err)
	}
	b, c := newMember(t, "b"), newMember(t, "c")

	j, err := Join(ctx, a.cli, "b", b.peer)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=" + a.peer + ",b=" + b.peer; j.InitialCluster != want || j.Voters != 1 || j.Reused || j.Replaced {
		t.Errorf("joined %+v; want the initial cluster %s and one voter", j, want)
	}
	// Asked again before it started (a joiner that failed after the
	// add): the same learner.
	again, err := Join(ctx, a.cli, "b", b.peer)
	if err != nil || again.ID != j.ID || !again.Reused {
		t.Errorf("joining again before starting: %+v, %v; want learner %x reused", again, err, j.ID)
	}
	// Another server meanwhile: one learner at a time.
	if _, err := Join(ctx, a.cli, "c", c.peer); err == nil || !strings.Contains(Explain(err), "another server is joining as a learner") {
		t.Errorf("a second joiner: %v (%v); want it told another server is joining", err, err)
	}

	b.start(t, j.InitialCluster)
	if st := b.waitStatus(t, func(*clientv3.StatusResponse) bool { return true }); !st.IsLearner {
		t.Errorf("b started as a voting member; want a learner")
	}
	api := newFakeAPI(t, "a", "b")
	var out lines
	peersA := filepath.Join(t.TempDir(), "etcd-peers")
	ra, rb := runnerOf(a, api, &out, peersA), runnerOf(b, api, &out, "")
	rounds(t, "b's promotion", func() bool { return len(voters(t, a.cli)) == 2 }, ra, rb)
	b.waitStatus(t, func(st *clientv3.StatusResponse) bool { return !st.IsLearner })
	if !strings.Contains(out.all(), "etcd: promoted b to a voting member (2 voting members)") {
		t.Errorf("no line says b was promoted:\n%s", out.all())
	}
	var rec, mem []byte
	role := false
	rounds(t, "publishing the record with both voting members", func() bool {
		api.mu.Lock()
		defer api.mu.Unlock()
		s := api.applied["Secret "+join.RecordSecret]
		if s == nil {
			return false
		}
		data := s["data"].(map[string]any)
		rec, _ = base64.StdEncoding.DecodeString(data[join.RecordKey].(string))
		mem, _ = base64.StdEncoding.DecodeString(data[join.MembersKey].(string))
		_, role = api.applied["Role cairn:cluster-record-reader"]
		return strings.Contains(string(mem), b.client)
	}, ra, rb)
	if string(rec) != "the sealed record" || !strings.Contains(string(mem), a.client) || !role {
		t.Errorf("published %q and members %q (Role applied: %v); want the record and both members' client URLs", rec, mem, role)
	}
	if got, _ := os.ReadFile(peersA); strings.TrimSpace(string(got)) != b.client {
		t.Errorf("a keeps %q as its peers; want b's client URL %s", got, b.client)
	}

	// The third joins through either member once b votes.
	jc := joinRetry(t, b.cli, "c", c.peer)
	c.start(t, jc.InitialCluster)
	rc := runnerOf(c, api, &out, "")
	rounds(t, "c's promotion", func() bool { return len(voters(t, a.cli)) == 3 }, ra, rb, rc)
}

// A member whose Node was seen and is deleted is removed by the leader's
// server (handed to another member when it is the leader's own); its
// etcd stops; asked, the cluster says it is not a member; with its data
// wiped it joins again as a new member, in its earlier member's place.
// A member whose Node was never seen (a server still joining) is kept.
func TestRemovedMemberRejoins(t *testing.T) {
	ctx := context.Background()
	cl := threeVoters(t)
	a, b, c, api, out, rs := cl.a, cl.b, cl.c, cl.api, &cl.out, cl.rs
	// Every server marks its member once its Node exists.
	rounds(t, "the seen marks", func() bool {
		resp, err := a.cli.Get(ctx, SeenPrefix, clientv3.WithPrefix())
		return err == nil && len(resp.Kvs) == 3
	}, rs...)
	var oldC uint64
	for _, m := range voters(t, a.cli) {
		if m.Name == "c" {
			oldC = m.ID
		}
	}

	// A learner whose Node was never seen is not removed for it.
	d := newMember(t, "d")
	joinRetry(t, a.cli, "d", d.peer)
	api.setNodes("a", "b") // c's Node deleted; d has none yet
	rounds(t, "c's removal", func() bool {
		ms, err := List(ctx, a.cli, false)
		return err == nil && !slices.ContainsFunc(ms, func(m Member) bool { return m.ID == oldC })
	}, rs...)
	if !strings.Contains(out.all(), "etcd: removed the member of c: its Node was deleted (2 voting members remain)") {
		t.Errorf("no line says c's member was removed:\n%s", out.all())
	}
	ms, _ := List(ctx, a.cli, false)
	if !slices.ContainsFunc(ms, func(m Member) bool { return m.Learner && m.Name == "" }) {
		t.Errorf("the learner d, which has no Node yet, was removed: %+v", ms)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Errorf("c's etcd still runs 30s after its member was removed")
	}
	if !strings.Contains(c.out.String(), "permanently removed") {
		t.Errorf("c's etcd did not say it was removed:\n%s", c.out.String())
	}
	if member, err := IsMember(ctx, a.cli, "c", c.peer); err != nil || member {
		t.Errorf("IsMember(c) after its removal: %v, %v; want false", member, err)
	}
	// d gives up; c, wiped, joins again (the leader removes d's unstarted
	// learner after learnerTimeout).
	defer func(d time.Duration) { learnerTimeout = d }(learnerTimeout)
	learnerTimeout = 0
	rounds(t, "the unstarted learner's removal", func() bool {
		ms, err := List(ctx, a.cli, false)
		return err == nil && len(ms) == 2
	}, rs[:2]...)
	if !strings.Contains(out.all(), "a learner that never started within 0s") {
		t.Errorf("no line says the unstarted learner was removed:\n%s", out.all())
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}
	api.setNodes("a", "b", "c")
	j := joinRetry(t, a.cli, "c", c.peer)
	c.start(t, j.InitialCluster)
	rounds(t, "c's promotion as a new member", func() bool { return len(voters(t, a.cli)) == 3 }, rs...)
	if j.ID == oldC {
		t.Errorf("c rejoined with its old member ID %x", oldC)
	}
	if member, err := IsMember(ctx, b.cli, "c", c.peer); err != nil || !member {
		t.Errorf("IsMember(c) after it rejoined: %v, %v", member, err)
	}
}

// A server whose data is gone (its member of the same name and peer URL
// still listed, down) replaces its earlier member; one whose name or peer
// URL another member has is refused, naming it.
func TestJoinReplacesOrRefuses(t *testing.T) {
	ctx := context.Background()
	cl := threeVoters(t)
	a, b, c := cl.a, cl.b, cl.c
	c.stop()
	os.RemoveAll(c.dir)
	j := joinRetry(t, a.cli, "c", c.peer)
	if !j.Replaced || j.Voters != 2 {
		t.Errorf("c whose data is gone: %+v; want its earlier member replaced (2 voters left)", j)
	}
	if _, err := Join(ctx, a.cli, "b", "http://127.0.0.1:1"); err == nil || !strings.Contains(Explain(err), "member b already has this server's node name") {
		t.Errorf("a second server named b: %v; want it refused naming b", err)
	}
	if _, err := Join(ctx, a.cli, "e", b.peer); err == nil || !strings.Contains(Explain(err), "member b already has this server's peer URL") {
		t.Errorf("a server at b's peer URL: %v; want it refused naming b", err)
	}
}

// Without quorum the survivor says so, counting who answers; a join is
// told quorum is lost.
func TestQuorumLost(t *testing.T) {
	ctx := context.Background()
	cl := threeVoters(t)
	a, b, c := cl.a, cl.b, cl.c
	if h, err := CheckHealth(ctx, a.cli, a.client); err != nil || !h.Quorum {
		t.Fatalf("three members up: %+v, %v; want quorum", h, err)
	}
	b.stop()
	c.stop()
	var h Health
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		h, err = CheckHealth(ctx, a.cli, a.client)
		if err == nil && !h.Quorum {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two of three members down: %+v, %v; want no quorum", h, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if h.Voters != 3 || h.Answering != 1 || h.Needed() != 2 {
		t.Errorf("health %+v (needed %d); want 1 of 3 answering, 2 needed", h, h.Needed())
	}
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := newMember(t, "d")
	if _, err := Join(jctx, a.cli, "d", d.peer); err == nil || Explain(err) != QuorumLost {
		t.Errorf("joining without quorum: %v → %q; want %q", err, explainOrNil(err), QuorumLost)
	}
	b.start(t, b.initial)
	deadline = time.Now().Add(30 * time.Second)
	for {
		if h, err := CheckHealth(ctx, a.cli, a.client); err == nil && h.Quorum {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no quorum again 30s after b came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func explainOrNil(err error) string {
	if err == nil {
		return "<nil>"
	}
	return Explain(err)
}
