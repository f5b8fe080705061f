//go:build qemu

package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/qemu"
)

// TestEtcdHA is HA without an external datastore, on the container
// platform: three servers on embedded etcd started at once (the second
// and third given `server:` = the first, which alone creates the
// cluster), an agent joined through the VIP, and ConfigMaps written
// through the VIP all along.
//
//  1. Three started voting members, on TLS peer URLs at the servers'
//     addresses (`etcdctl member list`, the components' own, on s1).
//  2. One server killed: writes go on (the longest gap is printed); the
//     server boots again, its STATE gone, and takes its earlier member's
//     place as a voting member.
//  3. Two servers down at once: the survivor says quorum is lost; when
//     they are back it says quorum is back, and writes succeed again with
//     no one doing anything. The container platform's STATE is a tmpfs,
//     and a killed node comes back empty (two of three members empty can
//     never make a quorum again), so "down" here is a machine that hangs:
//     every process of it stopped (SIGSTOP), then resumed.
//  4. One server's Node deleted: the leader's server removes its member,
//     and the server says its member was removed; booted again it joins
//     as a new member (a new ID) and votes.
//
// Figures: each joining server's time from its config to voting member,
// the longest write gap when a server is killed, the time to write again
// once quorum is back.
func TestEtcdHA(t *testing.T) {
	ctx := context.Background()
	ns := bridgeNS(t)
	// The bridge keeps its MAC when a powered-off server's port goes.
	pinBridgeMAC(t, ns)
	const first = "https://192.168.77.11:6443"
	b := &haBed{t: t, ns: ns}
	for i := range 3 {
		name, addr := fmt.Sprintf("s%d", i+1), fmt.Sprintf("192.168.77.%d", 11+i)
		extra := []string{"  vip: " + vipAddr}
		if i > 0 {
			extra = append(extra, "  server: "+first)
		}
		b.servers = append(b.servers, &haServer{machine{name: name, addr: addr, root: nodeRoot(t, serverConfig(name, addr, clusterToken, "", extra...))}})
	}
	for _, s := range b.servers {
		s.boot(t, ns)
	}
	for _, s := range b.servers {
		m := s.n.expect(t, controlPlane, reServerReady)
		t.Logf("figures: %s: config loaded to kube-apiserver /readyz: %ss (container platform, embedded etcd, three servers started at once)", m[1], m[4])
	}
	for _, s := range b.servers[1:] {
		b.joined(s, 2, 3) // the second to join makes three
	}
	for _, s := range b.servers {
		created := strings.Contains(s.n.console(), "node: created a new cluster")
		if created != (s.name == "s1") {
			t.Errorf("%s says it created a new cluster: %v; only s1, the server without server:, may", s.name, created)
		}
	}

	tok, _ := join.ParseToken(clusterToken)
	kc, err := (&join.Client{Server: "https://" + vipAddr + ":6443", Token: tok, DialContext: ns.DialContext, Timeout: time.Minute}).AdminKubeconfig(ctx)
	if err != nil {
		t.Fatalf("cairn kubeconfig through the VIP: %v", err)
	}
	admin, err := kube.ParseKubeconfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	agent := startPeer(t, ns, "a1", nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://"+vipAddr+":6443")))
	agent.expect(t, nodeReady, `node: a1 is Ready`)
	for _, s := range b.servers {
		s.n.expect(t, nodeReady, `node: `+s.name+` is Ready`)
	}

	// 1. Three started voting members on TLS peer URLs.
	ms := b.members(b.servers[0])
	b.wantVoters(ms, "s1", "s2", "s3")
	w := startWrites(t, ns, admin.TLS)

	// 2. One server killed, and back.
	t.Run("one server down", func(t *testing.T) {
		s2 := b.servers[1]
		s2.powerOff(b.t, ns)
		killed := time.Now()
		w.waitAfter(t, killed.Add(5*time.Second), 2*time.Minute)
		time.Sleep(20 * time.Second)
		t.Logf("figures: one of three servers killed: longest gap between writes through the VIP %.1fs (%d writes failed)", w.longestGap(killed, time.Now()).Seconds(), w.failedBetween(killed, time.Now()))
		s2.boot(b.t, ns) // b.t: the node outlives the subtest
		s2.n.expect(t, controlPlane, `etcd: joining embedded etcd through https://192\.168\.77\.11:6443 as a learner, in place of its earlier member, whose data was gone`)
		b.joined(s2, 3)
		s2.n.expect(t, controlPlane, reServerReady)
		b.wantVoters(b.members(b.servers[0]), "s1", "s2", "s3")
	})

	// 3. Two servers down, and back.
	t.Run("quorum lost and back", func(t *testing.T) {
		s1, s2, s3 := b.servers[0], b.servers[1], b.servers[2]
		s2.freeze(syscall.SIGSTOP)
		s3.freeze(syscall.SIGSTOP)
		stopped := time.Now()
		s1.n.expect(t, 2*time.Minute, `etcd: quorum lost: 1 of 3 voting members answer, 2 needed; writes wait until enough of them are back`)
		t.Logf("the survivor said quorum was lost %.1fs after two servers stopped", time.Since(stopped).Seconds())
		time.Sleep(20 * time.Second)
		if w.succeededBetween(stopped.Add(15*time.Second), time.Now()) > 0 {
			t.Errorf("writes succeeded with two of three members stopped")
		}
		s2.freeze(syscall.SIGCONT)
		s3.freeze(syscall.SIGCONT)
		back := time.Now()
		again := w.waitAfter(t, back, 5*time.Minute)
		s1.n.expect(t, 2*time.Minute, `etcd: quorum is back after \d+s: the cluster writes again`)
		t.Logf("figures: two of three servers stopped %.0fs: writes through the VIP again %.1fs after they resumed", back.Sub(stopped).Seconds(), again.Sub(back).Seconds())
	})

	// 4. A server's Node deleted, and the server booted again.
	t.Run("node deleted, member removed, rejoined", func(t *testing.T) {
		s3 := b.servers[2]
		var oldID json.Number
		for _, m := range b.members(b.servers[0]) {
			if m.Name == "s3" {
				oldID = m.ID
			}
		}
		api := newAPIClient(t, ns, kc)
		if code, body, err := api.do("DELETE", "https://"+vipAddr+":6443/api/v1/nodes/s3", nil); code != 200 {
			t.Fatalf("deleting the Node s3: %d %v %s", code, err, body)
		}
		b.expectAny(t, 2*time.Minute, `etcd: removed the member of s3: its Node was deleted \(2 voting members remain\)`, b.servers[0], b.servers[1])
		s3.n.expect(t, 2*time.Minute, `etcd: this server's member was removed from the cluster \(its Node was deleted\): it rejoins as a new member when it boots again`)
		b.wantVoters(b.members(b.servers[0]), "s1", "s2")
		s3.powerOff(b.t, ns)
		s3.boot(b.t, ns)
		b.joined(s3, 3)
		s3.n.expect(t, controlPlane, reServerReady)
		ms := b.members(b.servers[0])
		b.wantVoters(ms, "s1", "s2", "s3")
		for _, m := range ms {
			if m.Name == "s3" && m.ID == oldID {
				t.Errorf("s3 rejoined as its old member %s; want a new one", oldID)
			}
		}
		w.waitAfter(t, time.Now(), 2*time.Minute)
	})
	w.stop()
	var nodes []*containerNode
	for _, s := range b.servers {
		nodes = append(nodes, s.boots...)
	}
	noSecretOnConsole(t, append(nodes, agent), clusterToken)
}

// haBed is TestEtcdHA's servers.
type haBed struct {
	t       *testing.T
	ns      *qemu.Netns
	servers []*haServer
}

// haServer is one server machine.
type haServer struct {
	machine
}

// freeze sends sig (SIGSTOP, SIGCONT) to every process of s's node, a
// few times over to catch processes started meanwhile.
func (s *haServer) freeze(sig syscall.Signal) {
	for range 3 {
		for pid := range descendants(s.n.cmd.Process.Pid) {
			syscall.Kill(pid, sig)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// joined waits for s's line that it votes, among one of voters voting
// members, and prints its join figures.
func (b *haBed) joined(s *haServer, voters ...int) {
	b.t.Helper()
	m := s.n.expect(b.t, controlPlane, `etcd: this server is a voting member of embedded etcd \((\d+) voting members\): joined in ([\d.]+)s, ([\d.]+)s after the config was loaded`)
	if n, _ := strconv.Atoi(m[1]); !slices.Contains(voters, n) {
		b.t.Errorf("%s votes among %s members; want %v", s.name, m[1], voters)
	}
	b.t.Logf("figures: %s (boot %d): config loaded to voting member of embedded etcd %ss, of which joining (learner added to promoted) %ss", s.name, len(s.boots), m[3], m[2])
}

// expectAny waits for a line matching re on any of servers.
func (b *haBed) expectAny(t *testing.T, d time.Duration, re string, servers ...*haServer) {
	t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			if r.MatchString(s.n.console()) {
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no server printed %q within %s", re, d)
}

// etcdMember is a member as `etcdctl member list -w json` lists it.
type etcdMember struct {
	ID         json.Number `json:"ID"`
	Name       string      `json:"name"`
	PeerURLs   []string    `json:"peerURLs"`
	ClientURLs []string    `json:"clientURLs"`
	IsLearner  bool        `json:"isLearner"`
}

// members lists etcd's members as s's member sees them: the components'
// own etcdctl, run inside s (its root, mounts and network) with no flags,
// as a person on the node would (it defaults to the local member and the
// apiserver's etcd client pair).
func (b *haBed) members(s *haServer) []etcdMember {
	b.t.Helper()
	pid := strconv.Itoa(pid1(b.t, s.n))
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, "nsenter", "--target", pid, "--mount", "--net", "--root", "--wd",
			"/usr/bin/etcdctl", "member", "list", "-w", "json")
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} // no ETCDCTL_* of the host's
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		var list struct {
			Members []etcdMember `json:"members"`
		}
		if err == nil && json.Unmarshal(out, &list) == nil {
			return list.Members
		}
		last = fmt.Sprintf("%v: %s%s", err, out, stderr.String())
	}
	b.t.Fatalf("etcdctl member list on %s: %s", s.name, last)
	return nil
}

// wantVoters checks that ms are exactly the started voting members names,
// each on a TLS peer URL at its server's address.
func (b *haBed) wantVoters(ms []etcdMember, names ...string) {
	b.t.Helper()
	var got []string
	for _, m := range ms {
		got = append(got, m.Name)
		if m.IsLearner || m.Name == "" {
			b.t.Errorf("member %s (%s) is not a started voting member", m.Name, m.ID)
		}
		for _, s := range b.servers {
			if s.name == m.Name && !slices.Equal(m.PeerURLs, []string{"https://" + s.addr + ":2380"}) {
				b.t.Errorf("member %s has peer URLs %q; want https://%s:2380", m.Name, m.PeerURLs, s.addr)
			}
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		b.t.Errorf("etcd's members are %q; want %q", got, names)
	}
}

// pid1 is the PID (on this host) of n's init, PID 1 of its namespaces.
func pid1(t *testing.T, n *containerNode) int {
	t.Helper()
	return initUnder(t, n.name, n.cmd.Process.Pid)
}

// initUnder is the node's init (its PID 1), the first child of its
// launcher, the process with PID launcher.
func initUnder(t *testing.T, node string, launcher int) int {
	t.Helper()
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", launcher, launcher))
	f := strings.Fields(string(kids))
	if err != nil || len(f) == 0 {
		t.Fatalf("%s's launcher has no init: %v", node, err)
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// writes creates a ConfigMap through the VIP every 250 ms, on a new
// connection each time, and records when each succeeded or failed.
type writes struct {
	mu       sync.Mutex
	ok, fail []time.Time
	done     chan struct{}
	wg       sync.WaitGroup
}

func startWrites(t *testing.T, ns *qemu.Netns, tlsCfg *tls.Config) *writes {
	w := &writes{done: make(chan struct{})}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DialContext: ns.DialContext, DisableKeepAlives: true}}
	w.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-w.done:
				return
			case <-time.After(250 * time.Millisecond):
			}
			body, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": fmt.Sprintf("ha-write-%d", i), "namespace": "default"}, "data": map[string]string{"i": strconv.Itoa(i)}})
			resp, err := hc.Post("https://"+vipAddr+":6443/api/v1/namespaces/default/configmaps", "application/json", bytes.NewReader(body))
			now := time.Now()
			ok := err == nil && resp.StatusCode == http.StatusCreated
			if err == nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
			}
			w.mu.Lock()
			if ok {
				w.ok = append(w.ok, now)
			} else {
				w.fail = append(w.fail, now)
			}
			w.mu.Unlock()
		}
	})
	t.Cleanup(w.stop)
	return w
}

func (w *writes) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	w.wg.Wait()
}

// waitAfter waits for a write that succeeded after since, and returns
// when it did.
func (w *writes) waitAfter(t *testing.T, since time.Time, d time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		i, _ := slices.BinarySearchFunc(w.ok, since, func(a, b time.Time) int { return a.Compare(b) })
		var at time.Time
		if i < len(w.ok) {
			at = w.ok[i]
		}
		w.mu.Unlock()
		if !at.IsZero() {
			return at
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no write through the VIP succeeded within %s", d)
	return time.Time{}
}

// longestGap is the longest time between successful writes in [from, to],
// counting from from and to to.
func (w *writes) longestGap(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, gap := from, time.Duration(0)
	for _, at := range w.ok {
		if at.Before(from) || at.After(to) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

func count(ts []time.Time, from, to time.Time) int {
	n := 0
	for _, at := range ts {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

func (w *writes) failedBetween(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return count(w.fail, from, to)
}

func (w *writes) succeededBetween(from, to time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return count(w.ok, from, to)
}
