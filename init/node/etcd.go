package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/members"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// Embedded etcd across servers. The first server (no `server:`, no
// datastore-endpoint) starts a cluster of one and keeps its etcd CA in the
// cluster record, sealed with the token; a server given `server:` and no
// datastore-endpoint never starts a cluster of its own: it reads the
// record from a running server (join.Client.ClusterRecord, as the server
// token's bootstrap token), takes the etcd CA from it, asks a voting
// member to add it as a learner, starts its member, and waits until the
// leader's server promotes it (members.Run). A server that was a member
// starts from its data, unless the cluster says it is no longer one: then
// its data is wiped and it joins as a new member.

// etcdCAEntry is the etcd CA's entry in the sealed pki.Cluster. An
// older cairn ignores entries it does not know.
const etcdCAEntry = "etcd-ca"

// Timings of joining.
var (
	// etcdJoinAttempt bounds one attempt through one server: the CA's
	// proof and the record's key are two Argon2id runs (seconds each
	// under emulation).
	etcdJoinAttempt = 2 * time.Minute
	// etcdCheckAttempt bounds asking one member whether this server is
	// still a member, at boot.
	etcdCheckAttempt = 5 * time.Second
	// learnerPoll is how often a joining server looks whether it votes.
	learnerPoll = 500 * time.Millisecond
	// learnerSay is how long a learner waits before it says it still is.
	learnerSay = 2 * time.Minute
)

// etcdPeersFile keeps the other members' client URLs (members.Run);
// etcdRemovedFile marks a member the cluster removed while it ran.
func (s *server) etcdPeersFile() string   { return filepath.Join(s.l.DataDir, "etcd-peers") }
func (s *server) etcdRemovedFile() string { return filepath.Join(s.l.DataDir, "etcd-removed") }

// startEtcd starts this server's member of embedded etcd, as the package
// comment says, and returns how to reach it. It returns once the member
// votes.
func (s *server) startEtcd(ctx context.Context) (clientv3.Config, error) {
	cfg := clientv3.Config{DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	node := s.renderNode()
	peers := s.knownPeers()
	// A server told to reset the cluster (cluster-reset, etcdsnap) is its
	// first member again: it neither asks the others nor joins them.
	joinable := (s.joinURL() != "" || len(peers) > 0) && !s.k.ClusterReset
	data, err := s.keepEtcdData(ctx, node, peers, joinable)
	if err != nil {
		return cfg, err
	}
	var joined *members.Joined
	began := time.Now()
	sources := s.joinSources(peers)
	if !data && !joinable && !s.k.ClusterReset {
		// The first server, with no data: reinstalled, it would start a
		// second cluster beside the running one, unless the VIP says
		// there is one.
		if vip := s.vipCluster(ctx); vip != "" {
			sources, joinable = []string{vip}, true
		}
	}
	if !data && joinable {
		j, err := s.joinEtcd(ctx, node, sources)
		if err != nil {
			return cfg, err
		}
		joined, node.EtcdCluster = j, j.InitialCluster
	}
	c, err := render.Etcd(s.o.Config, node)
	if err != nil {
		return cfg, err
	}
	svc := s.service("etcd", *c)
	svc.Ready = supervise.ReadyTCP(s.l.DatastoreListen)
	svc.StopTimeout = 30 * time.Second
	if err := s.start(svc); err != nil {
		return cfg, err
	}
	if cfg.TLS, err = s.etcdClientTLS(); err != nil {
		return cfg, err
	}
	cfg.Endpoints = []string{"https://" + s.l.DatastoreListen}
	if joined != nil {
		if err := s.waitVoting(ctx, cfg, began); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// keepEtcdData makes this member's certificates and says whether it
// starts from the data it has: not when the cluster removed its member
// while it ran (etcdRemovedFile), nor when a member of the cluster it can
// reach says it has no member of this server's; then the data is wiped,
// and the server joins as a new member.
func (s *server) keepEtcdData(ctx context.Context, node render.Node, peers []string, joinable bool) (bool, error) {
	data := exists(filepath.Join(s.l.EtcdDir, "member"))
	switch {
	case !exists(s.etcdRemovedFile()):
	case !data:
		os.Remove(s.etcdRemovedFile())
	case !joinable:
		return false, errors.New("this server's etcd member was removed from the cluster, and it knows no other server to join again through: set kubernetes.server to another server's address")
	default:
		if err := s.wipeEtcd("its member was removed from the cluster"); err != nil {
			return false, err
		}
		data = false
	}
	if err := s.etcdCerts(); err != nil {
		return false, err
	}
	if data && joinable {
		if member, known, where := s.stillMember(ctx, node, peers); known && !member {
			if err := s.wipeEtcd("the cluster at " + where + " has no member of this server's (its Node was deleted, or the cluster was restored from a snapshot)"); err != nil {
				return false, err
			}
			data = false
		}
	}
	return data, nil
}

// etcdClientTLS trusts the etcd CA and presents the apiserver's etcd
// client certificate: the init's client of its own member and of the
// others.
func (s *server) etcdClientTLS() (*tls.Config, error) {
	return tlsFromFiles(s.l.Cert("etcd/ca.crt"), s.l.Cert("apiserver-etcd-client.crt"), s.l.Cert("apiserver-etcd-client.key"))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// joinURL is kubernetes.server, unless it names this server itself
// (which then starts the cluster, as its first server).
func (s *server) joinURL() string {
	u, err := url.Parse(s.k.Server)
	if s.k.Server == "" || err != nil {
		return ""
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && s.isOwnAddress(a) {
		return ""
	}
	return s.k.Server
}

func (s *server) isOwnAddress(a netip.Addr) bool {
	for _, own := range s.addresses() {
		if own == a.Unmap() {
			return true
		}
	}
	for ip := range strings.SplitSeq(s.k.NodeIP, ",") {
		if own, err := netip.ParseAddr(strings.TrimSpace(ip)); err == nil && own == a.Unmap() {
			return true
		}
	}
	return false
}

// knownPeers are the other members' client URLs this server kept the
// last time it was a member.
func (s *server) knownPeers() []string {
	data, err := files.Read(s.etcdPeersFile(), 64<<10)
	if err != nil {
		return nil
	}
	var out []string
	for l := range strings.SplitSeq(string(data), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "https://") {
			out = append(out, l)
		}
	}
	return out
}

// joinSources are the servers to join through: kubernetes.server, then
// the apiservers of the members this server knew.
func (s *server) joinSources(peers []string) []string {
	var out []string
	if u := s.joinURL(); u != "" {
		out = append(out, u)
	}
	for _, p := range peers {
		if u, err := url.Parse(p); err == nil && u.Hostname() != "" {
			out = append(out, "https://"+net.JoinHostPort(u.Hostname(), fmt.Sprint(config.APIServerPort)))
		}
	}
	return slices.Compact(out)
}

// wipeEtcd removes this server's etcd data, saying why in one line.
func (s *server) wipeEtcd(why string) error {
	if err := os.RemoveAll(s.l.EtcdDir); err != nil {
		return fmt.Errorf("wiping %s: %w", s.l.EtcdDir, err)
	}
	os.Remove(s.etcdRemovedFile())
	s.o.Printf("etcd: wiped this server's etcd data (%s): %s; it joins the cluster as a new member", s.l.EtcdDir, why)
	return nil
}

// stillMember asks the members this server knows, and the one at
// kubernetes.server's address, whether it is still a member; known is
// false when none of them answered with quorum.
func (s *server) stillMember(ctx context.Context, node render.Node, peers []string) (member, known bool, where string) {
	endpoints := slices.Clone(peers)
	if u, err := url.Parse(s.joinURL()); err == nil && u.Hostname() != "" {
		endpoints = append([]string{"https://" + net.JoinHostPort(u.Hostname(), fmt.Sprint(render.EtcdPort))}, endpoints...)
	}
	tlsCfg, err := s.etcdClientTLS()
	if err != nil {
		return false, false, ""
	}
	for _, ep := range slices.Compact(endpoints) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, etcdCheckAttempt)
		member, err := members.IsMember(actx, cli, node.Name, render.EtcdPeerURL(node))
		cancel()
		cli.Close()
		if err == nil {
			return member, true, ep
		}
	}
	return false, false, ""
}

// errMustMatch: this server disagrees with the cluster's must-match
// settings (each said on the console).
var errMustMatch = errors.New("every server of a cluster must agree on these settings; fix this server's config. kube-apiserver is not started, and the cluster is untouched")

// refuseSettings says each setting where this server disagrees with the
// cluster, and returns errMustMatch when there is one.
func (s *server) refuseSettings(cluster map[string]string) error {
	diffs := settingsDiffer(s.mustMatch(), cluster)
	for _, d := range diffs {
		s.o.Printf("node: %s", d)
	}
	if len(diffs) > 0 {
		return errMustMatch
	}
	return nil
}

// vipTimeout bounds asking the VIP whether a cluster runs.
var vipTimeout = 5 * time.Second

// vipCluster is the VIP's apiserver URL when a server answers there and
// proves it knows this server's token; "" otherwise (no VIP, or nobody
// holds it yet: a cluster's first boot).
func (s *server) vipCluster(ctx context.Context) string {
	if s.k.VIP == "" {
		return ""
	}
	u := "https://" + net.JoinHostPort(s.k.VIP, fmt.Sprint(config.APIServerPort))
	ctx, cancel := context.WithTimeout(ctx, vipTimeout)
	defer cancel()
	jc := &join.Client{Server: u, Token: s.tok, Timeout: vipTimeout}
	v, err := jc.Cluster(ctx)
	debug.FreeOSMemory()
	if err != nil || v.Role != join.RoleServer {
		return ""
	}
	s.o.Printf("etcd: a cluster of this token answers at the VIP %s: this server, with no etcd data and no server:, joins it rather than start another", s.k.VIP)
	return u
}

// joinEtcd joins the cluster through one of the servers it can: it reads
// the record, takes the etcd CA and makes this member's certificates with
// it, and is added as a learner. It tries until it is added, saying once
// per reason why it is not; it gives up only on a must-match setting
// that differs, and when the boot ends.
func (s *server) joinEtcd(ctx context.Context, node render.Node, sources []string) (*members.Joined, error) {
	var key, salt []byte // the record's key, derived once per salt
	said := ""
	for delay := joinRetryFirst; ; delay = min(delay*2, joinRetryMax) {
		wait := delay
		for _, src := range sources {
			j, err := s.joinThrough(ctx, src, node, &key, &salt)
			debug.FreeOSMemory() // the key derivations took 64 MiB each
			switch {
			case err == nil:
				return j, nil
			case errors.Is(err, errMustMatch):
				return nil, err
			case ctx.Err() != nil:
				return nil, errStopped
			case errors.Is(err, join.ErrCAMismatch), errors.Is(err, errWrongToken):
				wait = wrongTokenRetry
			}
			if line := fmt.Sprintf("not joining embedded etcd through %s yet: %s", src, joinReason(err)); line != said {
				said = line
				s.o.Printf("etcd: %s; trying again every %s or sooner", line, wait)
			}
		}
		if !supervise.Sleep(ctx, wait) {
			return nil, errStopped
		}
	}
}

// joinReason is the console's reason for a failed join attempt.
func joinReason(err error) string {
	switch {
	case errors.Is(err, join.ErrCAMismatch), errors.Is(err, errWrongToken):
		return "wrong token: " + brief.Err(err) + "; check kubernetes.token (the other servers' server token)"
	case errors.Is(err, join.ErrNotReady):
		return join.NotReadyDetail(err)
	}
	return members.Explain(err)
}

// joinThrough is one attempt at joining through the server at src.
func (s *server) joinThrough(ctx context.Context, src string, node render.Node, key, salt *[]byte) (*members.Joined, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdJoinAttempt)
	defer cancel()
	jc := &join.Client{Server: src, Token: s.tok, Timeout: 30 * time.Second}
	cr, err := jc.ClusterRecord(ctx)
	if err != nil {
		return nil, err
	}
	if len(cr.Record) > maxRecord {
		return nil, fmt.Errorf("%s's cluster record is %d bytes, more than %d", src, len(cr.Record), maxRecord)
	}
	var r record
	if err := json.Unmarshal(cr.Record, &r); err != nil {
		return nil, fmt.Errorf("%s's cluster record is not cairn's: %w", src, err)
	}
	if err := r.checkVersion(); err != nil {
		return nil, err
	}
	if *key == nil || !bytes.Equal(*salt, r.Salt) {
		if *key, err = sealKey(s.tok.Secret, &r); err != nil {
			return nil, err
		}
		*salt = r.Salt
	}
	c, err := r.openWith(*key)
	if err != nil {
		return nil, err
	}
	if err := s.refuseSettings(r.Settings); err != nil {
		return nil, err
	}
	ca, ok := c[etcdCAEntry]
	if !ok {
		return nil, fmt.Errorf("%w: the cluster record holds no etcd CA yet (its first server runs an older cairn, or has not finished starting)", join.ErrNotReady)
	}
	if err := s.writePair("etcd/ca", ca); err != nil {
		return nil, err
	}
	if err := s.etcdCerts(); err != nil {
		return nil, err
	}
	tlsCfg, err := s.etcdClientTLS()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cr.Members, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	j, err := members.Join(ctx, cli, node.Name, render.EtcdPeerURL(node))
	if err != nil {
		return nil, err
	}
	how := "as a learner"
	switch {
	case j.Reused:
		how = "as the learner it was added as before"
	case j.Replaced:
		how = "as a learner, in place of its earlier member, whose data was gone"
	}
	s.o.Printf("etcd: joining embedded etcd through %s %s (%d voting members); peer URL %s", src, how, j.Voters, render.EtcdPeerURL(node))
	return j, nil
}

// waitVoting waits until this server's new member votes, saying what
// keeps it when something does.
func (s *server) waitVoting(ctx context.Context, cfg clientv3.Config, began time.Time) error {
	cli, err := clientv3.New(cfg)
	if err != nil {
		return fmt.Errorf("a client for embedded etcd: %w", err)
	}
	defer cli.Close()
	said, longSaid := "", false
	for supervise.Sleep(ctx, learnerPoll) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cli.Status(sctx, cfg.Endpoints[0])
		cancel()
		if err == nil && !st.IsLearner {
			voters := 0
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if ms, err := members.List(lctx, cli, true); err == nil {
				voters = len(members.Voters(ms))
			}
			cancel()
			since := ""
			if !s.o.ConfigLoaded.IsZero() {
				since = fmt.Sprintf(", %.1fs after the config was loaded", time.Since(s.o.ConfigLoaded).Seconds())
			}
			s.o.Printf("etcd: this server is a voting member of embedded etcd (%d voting members): joined in %.1fs%s", voters, time.Since(began).Seconds(), since)
			return nil
		}
		if reason := s.etcdSays(); reason != "" && reason != said {
			said = reason
			s.o.Printf("etcd: this server's member is not running: %s", reason)
		}
		if !longSaid && time.Since(began) > learnerSay {
			longSaid = true
			s.o.Printf("etcd: this server's member is still a learner after %s: it votes once it has caught up with the leader, whose server promotes it", learnerSay)
		}
	}
	return errStopped
}

// etcdOutputs are what embedded etcd's own output says when it cannot
// run, and what the console says for it.
var etcdOutputs = []struct{ match, say string }{
	{"address already in use", "address in use: another program on this machine listens on etcd's ports (2379, 2380)"},
	{"cannot assign requested address", "etcd cannot listen at the node's address: is kubernetes.node-ip an address of this machine?"},
	{"permanently removed", "its member was removed from the cluster (its Node was deleted); it rejoins as a new member when it boots again"},
	{"certificate has expired or is not yet valid", "TLS: a certificate is not valid at this machine's time: check the clock (NTP) here and on the other servers"},
	{"clock difference", "this machine's clock differs from another member's: check the clock (NTP)"},
	{"cluster ID mismatch", "its data belongs to another cluster than its peers' (one restored from a snapshot?)"},
	{"bad certificate", "TLS: a member refused a certificate (another cluster's etcd CA, or a clock that differs by more than an hour)"},
}

// etcdTrouble is etcdSays, and when etcd says its member was removed
// it marks this server to wipe its data and join as a new member at its
// next boot (it cannot restart etcd otherwise while it runs).
func (s *server) etcdTrouble() string {
	reason := s.etcdSays()
	if strings.HasPrefix(reason, "its member was removed") && !exists(s.etcdRemovedFile()) {
		if err := files.WriteAtomic(s.etcdRemovedFile(), []byte("removed\n"), 0o600, -1, -1); err != nil {
			s.o.Printf("etcd: marking this server's removed member: %v", err)
		}
	}
	return reason
}

// etcdQuorum says, when this server's member answers but follows no
// leader, how many voting members answer; "" otherwise.
func (s *server) etcdQuorum(ctx context.Context) string {
	tlsCfg, err := s.etcdClientTLS()
	if err != nil {
		return ""
	}
	endpoint := "https://" + s.l.DatastoreListen
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return ""
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, watchTimeout)
	defer cancel()
	h, err := members.CheckHealth(ctx, cli, endpoint)
	if err != nil || h.Quorum {
		return ""
	}
	return fmt.Sprintf("quorum lost: %d of %d voting members answer, %d needed; it waits for them", h.Answering, h.Voters, h.Needed())
}

// etcdSays is the reason etcd's recent output gives for not running:
// the one said last; "" when none.
func (s *server) etcdSays() string {
	if s.o.Services == nil {
		return ""
	}
	out := s.o.Services.Output("etcd")
	if len(out) > 16<<10 {
		out = out[len(out)-16<<10:]
	}
	best, at := "", -1
	for _, o := range etcdOutputs {
		if i := bytes.LastIndex(out, []byte(o.match)); i > at {
			best, at = o.say, i
		}
	}
	return best
}

// etcdAfterClaim runs once the cluster record is read: the member's
// peer URL follows the node's address, and the etcd CA travels in the
// record (an older cluster's node-local one is moved into it; a record
// that holds another one, after a restore on another machine, is taken
// and etcd restarted with it). It returns how to reach etcd from then on.
func (s *server) etcdAfterClaim(ctx context.Context, cfg clientv3.Config, res *claimResult) (clientv3.Config, error) {
	cli, err := clientv3.New(cfg)
	if err != nil {
		return cfg, fmt.Errorf("a client for embedded etcd: %w", err)
	}
	defer cli.Close()
	if err := s.etcdPeerURL(ctx, cli); err != nil {
		s.o.Printf("etcd: warning: %v", err)
	}
	local := pki.Pair{}
	if local.Cert, err = os.ReadFile(s.l.Cert("etcd/ca.crt")); err == nil {
		local.Key, err = os.ReadFile(s.l.Cert("etcd/ca.key"))
	}
	if err != nil {
		return cfg, fmt.Errorf("reading this server's etcd CA: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	recorded, added, err := s.rest.setEtcdCA(actx, cli, local)
	cancel()
	if err != nil {
		s.o.Printf("etcd: warning: keeping the etcd CA in the cluster record: %v; no server can join this embedded etcd until a boot of this one does it", err)
		return cfg, nil
	}
	res.PKI[etcdCAEntry] = recorded
	if added {
		s.o.Printf("etcd: this server's etcd CA is in the cluster record now (sealed with the token): other servers can join its embedded etcd")
	}
	if bytes.Equal(recorded.Cert, local.Cert) {
		return cfg, nil
	}
	if err := s.writePair("etcd/ca", recorded); err != nil {
		return cfg, err
	}
	if err := s.etcdCerts(); err != nil {
		return cfg, err
	}
	if s.o.Services != nil {
		s.o.Services.Signal("etcd", syscall.SIGTERM) // restarted by its supervisor, with the record's CA
	}
	if cfg.TLS, err = s.etcdClientTLS(); err != nil {
		return cfg, err
	}
	s.o.Printf("etcd: this server's etcd CA was not the cluster record's (a cluster restored on another machine?): it took the record's and restarted etcd with it")
	return cfg, nil
}

// etcdPeerURL moves this server's member to the peer URL it listens at,
// when its member advertises another: an older cairn's member (loopback,
// or http://), or one whose node changed its address.
func (s *server) etcdPeerURL(ctx context.Context, cli *clientv3.Client) error {
	want := render.EtcdPeerURL(s.renderNode())
	ctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	ms, err := members.List(ctx, cli, false)
	if err != nil {
		return fmt.Errorf("listing embedded etcd's members: %w", err)
	}
	for _, m := range ms {
		if m.Name != nodeName(s.o) || slices.Equal(m.PeerURLs, []string{want}) {
			continue
		}
		if _, err := cli.MemberUpdate(ctx, m.ID, []string{want}); err != nil {
			return fmt.Errorf("moving embedded etcd's member %s to %s: %w", m.Name, want, err)
		}
		s.o.Printf("etcd: this server's member %s now advertises its peer port at %s (was %s)", m.Name, want, strings.Join(m.PeerURLs, ","))
	}
	return nil
}

// setEtcdCA puts local into the record as the etcd CA when the record
// holds none, under the record's compare-and-swap, and returns the one the
// record holds; added says whether this call put it.
func (a *atRest) setEtcdCA(ctx context.Context, kv clientv3.KV, local pki.Pair) (recorded pki.Pair, added bool, err error) {
	for range 4 {
		r, rev, c, key, err := a.read(ctx, kv)
		if err != nil {
			return pki.Pair{}, false, err
		}
		if r == nil {
			return pki.Pair{}, false, errors.New("the cluster record is gone from the datastore")
		}
		if p, ok := c[etcdCAEntry]; ok {
			return p, false, nil
		}
		c = maps.Clone(c)
		c[etcdCAEntry] = local
		nr := *r
		if err := nr.seal(key, c); err != nil {
			return pki.Pair{}, false, err
		}
		_, written, err := replaceRecord(ctx, kv, rev, &nr)
		if err != nil {
			return pki.Pair{}, false, fmt.Errorf("writing the cluster record: %w", err)
		}
		if written {
			return local, true, nil
		}
		// Changed meanwhile (a step of Secrets at rest, or another
		// server's CA first): read it again.
	}
	return pki.Pair{}, false, errors.New("the cluster record changed four times while this server put its etcd CA in it")
}

// startEtcdMembers runs members.Run on this server once it votes.
func (s *server) startEtcdMembers(ctx context.Context, cfg clientv3.Config, ready <-chan struct{}) {
	cli, err := clientv3.New(cfg)
	if err != nil {
		s.o.Printf("etcd: a client for embedded etcd: %v; this server takes no part in keeping the membership until its next boot", err)
		return
	}
	api, err := s.admin.client(kube.Options{})
	if err != nil {
		cli.Close()
		s.o.Printf("etcd: %v; this server takes no part in keeping the membership until its next boot", err)
		return
	}
	supervise.Go("etcd: members", func() {
		defer cli.Close()
		members.Run(ctx, members.Options{Etcd: cli, Name: nodeName(s.o), API: api, Ready: ready,
			RecordKey: bootstrapKey, PeersFile: s.etcdPeersFile(), Printf: s.o.Printf})
	})
}

// watchEtcd is watchDatastore for embedded etcd: besides the member not
// answering, it tells quorum lost (one line, and one when it is back) from
// this member down, and marks a member the cluster removed, which then
// rejoins at the next boot.
func (s *server) watchEtcd(ctx context.Context, cli *clientv3.Client) {
	endpoint := "https://" + s.l.DatastoreListen
	var lostAt, quorumAt time.Time
	removed := false
	for supervise.Sleep(ctx, watchEvery) {
		actx, cancel := context.WithTimeout(ctx, watchTimeout)
		_, err := cli.Get(actx, bootstrapKey, clientv3.WithKeysOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if !quorumAt.IsZero() {
				s.o.Printf("etcd: quorum is back after %s: the cluster writes again", time.Since(quorumAt).Round(time.Second))
			}
			if !lostAt.IsZero() {
				s.o.Printf("datastore: embedded etcd answers again after %s", time.Since(lostAt).Round(time.Second))
			}
			lostAt, quorumAt = time.Time{}, time.Time{}
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, watchTimeout)
		h, herr := members.CheckHealth(hctx, cli, endpoint)
		cancel()
		switch {
		case herr == nil && !h.Quorum:
			if quorumAt.IsZero() {
				quorumAt = time.Now()
				s.o.Printf("etcd: quorum lost: %d of %d voting members answer, %d needed; writes wait until enough of them are back, and the apiserver serves only the reads its cache holds", h.Answering, h.Voters, h.Needed())
			}
		default:
			reason := s.etcdTrouble()
			if strings.HasPrefix(reason, "its member was removed") {
				if !removed {
					removed = true
					s.o.Printf("etcd: this server's member was removed from the cluster (its Node was deleted): it rejoins as a new member when it boots again")
				}
				continue
			}
			if reason == "" || herr == nil {
				reason = s.diagnoseText(err, "", watchTimeout)
			}
			if lostAt.IsZero() {
				lostAt = time.Now()
				s.o.Printf("datastore: embedded etcd stopped answering: %s; the control plane waits for it", reason)
			}
		}
	}
}

// etcdCerts issues this member's certificates from the etcd CA on disk
// (made here, node-local, by a server that starts a new cluster; written
// from the cluster record by one that joins): its serving certificate
// (loopback and the node's addresses: the apiserver, the init, and the
// other members' servers reach it), its peer certificate (both ways: the
// other members check that a peer connects from an address it names, so
// every address of the node and the VIP), and the apiserver's client
// certificate, which the init uses too.
func (s *server) etcdCerts() error {
	now := time.Now()
	ca := pki.Pair{}
	var err error
	if ca.Cert, err = os.ReadFile(s.l.Cert("etcd/ca.crt")); err == nil {
		ca.Key, err = os.ReadFile(s.l.Cert("etcd/ca.key"))
	}
	if err != nil || ca.Key == nil {
		if ca, err = pki.NewCA("cairn-etcd-ca", now); err != nil {
			return err
		}
		if err := s.writePair("etcd/ca", ca); err != nil {
			return err
		}
	}
	c := pki.Cluster{etcdCAEntry: ca}
	host, _, _ := strings.Cut(s.l.DatastoreListen, ":")
	ips := []net.IP{net.ParseIP(host), net.IPv4(127, 0, 0, 1)}
	for _, a := range s.addresses() {
		ips = append(ips, a.AsSlice())
	}
	for _, n := range append(strings.Split(s.k.NodeIP, ","), s.k.VIP) {
		if ip := net.ParseIP(strings.TrimSpace(n)); ip != nil {
			ips = append(ips, ip)
		}
	}
	ips = slices.DeleteFunc(ips, func(ip net.IP) bool { return ip == nil })
	srv, err := c.Issue(etcdCAEntry, pki.Leaf{CommonName: "etcd", Server: true, Client: true,
		DNSNames: []string{"localhost"}, IPs: ips}, now)
	if err != nil {
		return err
	}
	if err := s.writePair("etcd/server", srv); err != nil {
		return err
	}
	peer, err := c.Issue(etcdCAEntry, pki.Leaf{CommonName: "etcd-peer", Server: true, Client: true,
		DNSNames: []string{"localhost"}, IPs: ips}, now)
	if err != nil {
		return err
	}
	if err := s.writePair("etcd/peer", peer); err != nil {
		return err
	}
	cli, err := c.Issue(etcdCAEntry, pki.Leaf{CommonName: "kube-apiserver-etcd-client", Client: true}, now)
	if err != nil {
		return err
	}
	return s.writePair("apiserver-etcd-client", cli)
}
