package members

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Options are what Run needs, given once.
type Options struct {
	// Etcd is a client of this server's own member, its only endpoint.
	Etcd *clientv3.Client
	// Name is this server's node name, its member's name.
	Name string
	// API is this server's admin client of its own apiserver; Ready is
	// closed once the apiserver serves and the cluster's objects are
	// published. Until then only etcd is looked at.
	API   *kube.Client
	Ready <-chan struct{}
	// RecordKey is the cluster record's key in etcd: the leader publishes
	// it, with the voting members' client URLs, for joining servers
	// (join.RecordSecret).
	RecordKey string
	// PeersFile is where this server keeps the other members' client
	// URLs, one a line: a server whose member was removed rejoins through
	// them.
	PeersFile string
	// Printf writes one console line.
	Printf func(format string, args ...any)
}

// SeenPrefix holds, under each server's node name, the ID of its member
// once its Node has been seen: the leader removes a member only when its
// Node was seen and is gone (a server that is joining has no Node yet).
const SeenPrefix = "/cairn/etcd-members/"

// Timings of Run.
var (
	// every is how often the members are looked at.
	every = 2 * time.Second
	// nodesEvery: every how many rounds the Nodes are read.
	nodesEvery = 5
	// learnerTimeout: a learner that has not started this long after the
	// leader first saw it is removed (a server that gave up joining; it
	// would keep every other server from joining).
	learnerTimeout = 10 * time.Minute
	// probeTimeout bounds one call to another member.
	probeTimeout = 2 * time.Second
	// callTimeout bounds one call to this member or the apiserver.
	callTimeout = 10 * time.Second
)

// maxNodes bounds the Node list read.
const maxNodes = 32 << 20

// Run keeps the membership until ctx ends. On every server it keeps
// PeersFile and, once its Node exists, its seen mark. On the server whose
// member leads etcd (one at a time, with no other lock: a change of
// membership goes through the leader anyway) it promotes learners that
// have caught up, removes learners that never started, removes the
// member of a server whose Node was deleted, and publishes the cluster
// record for joining servers.
func Run(ctx context.Context, o Options) {
	r := &runner{o: o, unstarted: map[uint64]time.Time{}}
	for round := 0; supervise.Sleep(ctx, every); round++ {
		func() {
			defer supervise.Recover("etcd members")
			r.round(ctx, round%nodesEvery == 0)
		}()
	}
}

// runner is the state of one server's Run.
type runner struct {
	o Options
	// unstarted maps learners that have not started to when the leader
	// first saw them.
	unstarted map[uint64]time.Time
	peers     string // PeersFile's content, as last written
	seen      string // the ID this server's seen mark holds
	published []byte // the digest of the Secret last applied
	rbac      bool   // the Secret's Role and RoleBinding are applied
}

func (r *runner) ready() bool {
	select {
	case <-r.o.Ready:
		return r.o.API != nil
	default:
		return false
	}
}

func (r *runner) round(ctx context.Context, nodes bool) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	st, err := ownStatus(ctx, r.o.Etcd)
	if err != nil || st.IsLearner {
		return
	}
	self := st.Header.MemberId
	ms, err := List(ctx, r.o.Etcd, true)
	if err != nil {
		return
	}
	r.keepPeers(ms, self)
	leader := st.Leader == self
	if leader {
		r.promote(ctx, ms)
		r.dropUnstarted(ctx, ms)
	}
	if !r.ready() || !nodes {
		return
	}
	r.markSeen(ctx, self)
	if leader {
		r.removeDeleted(ctx, ms, self)
		if err := r.publish(ctx, ms); err != nil && ctx.Err() == nil {
			r.o.Printf("etcd: publishing the cluster record for joining servers: %s", brief.Err(err))
		}
	}
}

// ownStatus is the status of the member cli is connected to (its only
// endpoint), asked over cli's connection. clientv3's Status dials the
// endpoint it is given anew on every call: every round, a TLS handshake on
// both sides, which was most of what woke the init and much of etcd's
// connection work at rest (docs/performance.md).
func ownStatus(ctx context.Context, cli *clientv3.Client) (*pb.StatusResponse, error) {
	return pb.NewMaintenanceClient(cli.ActiveConnection()).Status(ctx, &pb.StatusRequest{})
}

// keepPeers writes the other members' client URLs to PeersFile when they
// changed.
func (r *runner) keepPeers(ms []Member, self uint64) {
	if r.o.PeersFile == "" {
		return
	}
	var urls []string
	for _, m := range ms {
		if m.ID != self && m.Name != "" {
			urls = append(urls, m.ClientURLs...)
		}
	}
	slices.Sort(urls)
	text := strings.Join(slices.Compact(urls), "\n")
	if text == r.peers {
		return
	}
	if text != "" {
		text += "\n"
	}
	if err := os.MkdirAll(filepath.Dir(r.o.PeersFile), 0o700); err == nil {
		if files.WriteAtomic(r.o.PeersFile, []byte(text), 0o600, -1, -1) == nil {
			r.peers = strings.TrimSuffix(text, "\n")
		}
	}
}

// promote promotes every learner that has started; etcd refuses one that
// has not caught up, which is tried again next round.
func (r *runner) promote(ctx context.Context, ms []Member) {
	for _, m := range ms {
		if !m.Learner || m.Name == "" {
			continue
		}
		resp, err := r.o.Etcd.MemberPromote(ctx, m.ID)
		if err != nil {
			continue // not caught up yet
		}
		voters := 0
		for _, x := range resp.Members {
			if !x.IsLearner {
				voters++
			}
		}
		r.o.Printf("etcd: promoted %s to a voting member (%d voting members)", m.Name, voters)
	}
}

// dropUnstarted removes learners that have not started within
// learnerTimeout of the leader seeing them.
func (r *runner) dropUnstarted(ctx context.Context, ms []Member) {
	now := time.Now()
	present := map[uint64]bool{}
	for _, m := range ms {
		if !m.Learner || m.Name != "" {
			continue
		}
		present[m.ID] = true
		first, ok := r.unstarted[m.ID]
		if !ok {
			r.unstarted[m.ID] = now
			continue
		}
		if now.Sub(first) < learnerTimeout {
			continue
		}
		if _, err := r.o.Etcd.MemberRemove(ctx, m.ID); err == nil {
			r.o.Printf("etcd: removed %s: a learner that never started within %s (a server that gave up joining; it joins again when it boots)", m, learnerTimeout)
			delete(r.unstarted, m.ID)
		}
	}
	for id := range r.unstarted {
		if !present[id] {
			delete(r.unstarted, id)
		}
	}
}

// markSeen records this server's member under its name once its Node
// exists.
func (r *runner) markSeen(ctx context.Context, self uint64) {
	id := strconv.FormatUint(self, 16)
	if r.seen == id {
		return
	}
	if err := r.o.API.Get(ctx, "/api/v1/nodes/"+r.o.Name, nil); err != nil {
		return
	}
	if _, err := r.o.Etcd.Put(ctx, SeenPrefix+r.o.Name, id); err == nil {
		r.seen = id
	}
}

// removeDeleted removes the member of every server whose Node was seen
// and is gone. It acts only while this server's own Node exists; when
// this server's own Node is the one gone, it hands etcd's leadership to
// another voting member, whose server removes this one.
func (r *runner) removeDeleted(ctx context.Context, ms []Member, self uint64) {
	resp, err := r.o.Etcd.Get(ctx, SeenPrefix, clientv3.WithPrefix(), clientv3.WithLimit(1000))
	if err != nil {
		return
	}
	seen := map[string]string{}
	for _, kv := range resp.Kvs {
		seen[strings.TrimPrefix(string(kv.Key), SeenPrefix)] = string(kv.Value)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := r.o.API.WithMaxReply(maxNodes).Get(ctx, "/api/v1/nodes", &list); err != nil {
		return
	}
	nodes := map[string]bool{}
	for _, n := range list.Items {
		nodes[n.Metadata.Name] = true
	}
	gone := func(m Member) bool {
		return m.Name != "" && !nodes[m.Name] && seen[m.Name] == strconv.FormatUint(m.ID, 16)
	}
	if !nodes[r.o.Name] {
		for _, m := range ms {
			if m.ID != self || !gone(m) {
				continue
			}
			for _, v := range Voters(ms) {
				if v.ID == self || v.Name == "" {
					continue
				}
				if _, err := r.o.Etcd.MoveLeader(ctx, v.ID); err == nil {
					r.o.Printf("etcd: this server's own Node was deleted: handed etcd's leadership to %s, whose server removes this member", v.Name)
					return
				}
			}
		}
		return
	}
	for _, m := range ms {
		if m.ID == self || !gone(m) {
			continue
		}
		resp, err := r.o.Etcd.MemberRemove(ctx, m.ID)
		if err != nil {
			r.o.Printf("etcd: the Node %s was deleted, but its member stays: %s", m.Name, Explain(err))
			continue
		}
		r.o.Etcd.Delete(ctx, SeenPrefix+m.Name)
		voters := 0
		for _, x := range resp.Members {
			if !x.IsLearner {
				voters++
			}
		}
		r.o.Printf("etcd: removed the member of %s: its Node was deleted (%d voting members remain); that server rejoins as a new member when it boots again", m.Name, voters)
	}
	// Marks of members that are gone.
	ids := map[string]bool{}
	for _, m := range ms {
		ids[strconv.FormatUint(m.ID, 16)] = true
	}
	for name, id := range seen {
		if !ids[id] {
			r.o.Etcd.Delete(ctx, SeenPrefix+name)
		}
	}
}

// publish applies kube-system/join.RecordSecret, the cluster record and the
// voting members' client URLs, when they changed, and the Role that lets
// the servers' group read it.
func (r *runner) publish(ctx context.Context, ms []Member) error {
	if r.o.RecordKey == "" {
		return nil
	}
	resp, err := r.o.Etcd.Get(ctx, r.o.RecordKey)
	if err != nil || len(resp.Kvs) == 0 {
		return err
	}
	var urls []string
	for _, m := range Voters(ms) {
		if m.Name != "" {
			urls = append(urls, m.ClientURLs...)
		}
	}
	slices.Sort(urls)
	members := strings.Join(slices.Compact(urls), "\n")
	sum := sha256.New()
	sum.Write(resp.Kvs[0].Value)
	sum.Write([]byte{0})
	sum.Write([]byte(members))
	digest := sum.Sum(nil)
	if bytes.Equal(digest, r.published) {
		return nil
	}
	if !r.rbac {
		for _, o := range readerObjects() {
			if err := r.o.API.Apply(ctx, o, fieldManager); err != nil {
				return err
			}
		}
		r.rbac = true
	}
	b64 := base64.StdEncoding.EncodeToString
	secret := kube.Object{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
		"metadata": meta(join.RecordSecret),
		"data":     map[string]string{join.RecordKey: b64(resp.Kvs[0].Value), join.MembersKey: b64([]byte(members))}}
	if err := r.o.API.Apply(ctx, secret, fieldManager); err != nil {
		return err
	}
	r.published = digest
	return nil
}

// fieldManager owns what Run applies (the init's own manager).
const fieldManager = "cairn"

const readerName = "cairn:cluster-record-reader"

func meta(name string) map[string]any {
	return map[string]any{"name": name, "namespace": "kube-system", "labels": map[string]string{"app.kubernetes.io/managed-by": "cairn"}}
}

// readerObjects let the server token's bootstrap token read the record's
// Secret, and nothing else there.
func readerObjects() []kube.Object {
	const rbac = "rbac.authorization.k8s.io/v1"
	return []kube.Object{
		{"apiVersion": rbac, "kind": "Role", "metadata": meta(readerName),
			"rules": []map[string]any{{"apiGroups": []string{""}, "resources": []string{"secrets"},
				"resourceNames": []string{join.RecordSecret}, "verbs": []string{"get"}}}},
		{"apiVersion": rbac, "kind": "RoleBinding", "metadata": meta(readerName),
			"roleRef":  map[string]string{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": readerName},
			"subjects": []map[string]string{{"kind": "Group", "name": join.ServersGroup, "apiGroup": "rbac.authorization.k8s.io"}}},
	}
}
