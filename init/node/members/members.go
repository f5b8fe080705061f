// Package members keeps embedded etcd's membership in step with the
// cluster's servers: a server joins as a learner through a voting member
// and the leader promotes it once it has caught up; the leader removes
// the member of a server whose Node was deleted; and a server can tell
// whether it is still a member, and whether the cluster has quorum. One
// start (Run, the servers' side) and small calls for the joining side
// (Join, IsMember, CheckHealth).
package members

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config/brief"
)

// Member is one member of the cluster.
type Member struct {
	ID uint64
	// Name is its node name; "" until it has started.
	Name       string
	PeerURLs   []string
	ClientURLs []string
	Learner    bool
}

// String names the member for a console line.
func (m Member) String() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("the unstarted member %x at %s", m.ID, strings.Join(m.PeerURLs, ","))
}

// List lists the members cli reaches; serializable asks the member
// itself, which answers without quorum.
func List(ctx context.Context, cli *clientv3.Client, serializable bool) ([]Member, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := cli.MemberList(ctx, opts...)
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, m := range resp.Members {
		out = append(out, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Learner: m.IsLearner})
	}
	return out, nil
}

// Voters are the members that vote.
func Voters(ms []Member) []Member {
	return slices.DeleteFunc(slices.Clone(ms), func(m Member) bool { return m.Learner })
}

// Joined is a server added to the cluster as a learner.
type Joined struct {
	ID uint64
	// InitialCluster is etcd's --initial-cluster for the new member:
	// every member's name and peer URLs, which etcd checks against the
	// cluster's when the member starts (a member that has not started
	// yet has no name: "=URL", as etcdctl writes it).
	InitialCluster string
	// Replaced is set when a member of this server's name and peer URL
	// (an earlier life of it, whose data is gone) was removed first.
	Replaced bool
	// Reused is set when the learner is one this server added before and
	// that never started.
	Reused bool
	// Voters is how many members vote.
	Voters int
}

// Join adds the server name, whose peer URL is peerURL, to the cluster
// cli reaches (a client of its voting members) as a learner. A member
// that never started at peerURL is this server's from an attempt that
// did not finish, and is used again; a started one of the same name at
// peerURL is this server's earlier life, whose data is gone, and is
// removed first. A member that has peerURL under another name, or name at
// another peer URL, is refused (ErrInUse).
func Join(ctx context.Context, cli *clientv3.Client, name, peerURL string) (*Joined, error) {
	ms, err := List(ctx, cli, false)
	if err != nil {
		return nil, err
	}
	replaced := false
	for _, m := range ms {
		ours := slices.Contains(m.PeerURLs, peerURL)
		switch {
		case ours && m.Name == "":
			return &Joined{ID: m.ID, InitialCluster: initialCluster(ms, m.ID, name), Reused: true, Voters: len(Voters(ms))}, nil
		case ours && m.Name == name:
			if _, err := cli.MemberRemove(ctx, m.ID); err != nil {
				return nil, fmt.Errorf("removing this server's earlier member %x, whose data is gone: %w", m.ID, withoutQuorum(ctx, cli, err))
			}
			replaced = true
		case ours:
			return nil, &InUseError{Member: m.Name, What: "this server's peer URL " + peerURL}
		case m.Name == name:
			return nil, &InUseError{Member: m.Name, What: "this server's node name, at the peer URL " + strings.Join(m.PeerURLs, ",")}
		}
	}
	resp, err := cli.MemberAddAsLearner(ctx, []string{peerURL})
	if err != nil {
		return nil, withoutQuorum(ctx, cli, err)
	}
	var after []Member
	for _, m := range resp.Members {
		after = append(after, Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
	}
	return &Joined{ID: resp.Member.ID, InitialCluster: initialCluster(after, resp.Member.ID, name), Replaced: replaced, Voters: len(Voters(after))}, nil
}

// initialCluster is etcd's --initial-cluster for the member id, named
// name, in a stable order.
func initialCluster(ms []Member, id uint64, name string) string {
	var parts []string
	for _, m := range ms {
		n := m.Name
		if m.ID == id {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// InUseError: a member already has what a joining server would take.
type InUseError struct {
	// Member is the other member's name.
	Member string
	// What it has: "this server's peer URL …", "this server's node name …".
	What string
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("address or name in use: member %s already has %s (another server with this address or name, or this server before its address or name changed): delete the Node %s, which removes its member, if it is gone", e.Member, e.What, e.Member)
}

// IsMember says whether the cluster cli reaches (asked with quorum) has
// a member named name or at peerURL.
func IsMember(ctx context.Context, cli *clientv3.Client, name, peerURL string) (bool, error) {
	ms, err := List(ctx, cli, false)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(ms, func(m Member) bool {
		return (name != "" && m.Name == name) || slices.Contains(m.PeerURLs, peerURL)
	}), nil
}

// Health is what a member knows of the cluster's quorum.
type Health struct {
	// Quorum: the member follows a leader (or is it).
	Quorum bool
	// Voters and Answering count the voting members and those whose
	// client port answers (this one included), when there is no quorum.
	Voters, Answering int
}

// Needed is how many voting members a quorum takes.
func (h Health) Needed() int { return h.Voters/2 + 1 }

// CheckHealth asks the member at endpoint (through cli) whether it
// follows a leader and, when it does not, how many voting members
// answer. An error means the member itself does not answer.
func CheckHealth(ctx context.Context, cli *clientv3.Client, endpoint string) (Health, error) {
	st, err := cli.Status(ctx, endpoint)
	if err != nil {
		return Health{}, err
	}
	if st.Leader != 0 {
		return Health{Quorum: true}, nil
	}
	ms, err := List(ctx, cli, true)
	if err != nil {
		return Health{}, err
	}
	h := Health{}
	for _, m := range Voters(ms) {
		h.Voters++
		if m.ID == st.Header.MemberId {
			h.Answering++
			continue
		}
		for _, u := range m.ClientURLs {
			sctx, cancel := context.WithTimeout(ctx, probeTimeout)
			_, err := cli.Status(sctx, u)
			cancel()
			if err == nil {
				h.Answering++
				break
			}
		}
	}
	return h, nil
}

// Explain says in a user's words why etcd refused or failed a membership
// call, or why a member could not be reached.
func Explain(err error) string {
	var inUse *InUseError
	if errors.As(err, &inUse) {
		return inUse.Error()
	}
	msg := err.Error()
	for _, r := range reasons {
		if strings.Contains(msg, r.match) {
			return r.say
		}
	}
	if errors.Is(err, ErrQuorumLost) || errors.Is(err, context.DeadlineExceeded) {
		return QuorumLost
	}
	return brief.Err(err)
}

// QuorumLost is the reason for a membership change the cluster cannot
// make without quorum.
const QuorumLost = "the cluster has lost quorum (a majority of its voting members is down): it takes no new member, and writes nothing, until enough of them are back"

// ErrQuorumLost: no member cli reaches follows a leader.
var ErrQuorumLost = errors.New(QuorumLost)

// withoutQuorum is ErrQuorumLost when etcd refused a change as unhealthy
// and no member cli reaches follows a leader (etcd checks its members'
// connections before it would find out); err otherwise.
func withoutQuorum(ctx context.Context, cli *clientv3.Client, err error) error {
	if !strings.Contains(err.Error(), "unhealthy cluster") {
		return err
	}
	for _, ep := range cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, probeTimeout)
		st, serr := cli.Status(sctx, ep)
		cancel()
		if serr == nil && st.Leader != 0 {
			return err
		}
	}
	return ErrQuorumLost
}

// reasons are etcd's and the network's words, and what a person is told.
var reasons = []struct{ match, say string }{
	{"too many learner members", "another server is joining as a learner (etcd adds one at a time): waiting for it to be promoted"},
	{"unhealthy cluster", "a voting member is down or has only just started (etcd adds a member only once every voting member has been connected for 5 s): waiting for it, or delete a gone server's Node to remove its member"},
	{"not enough started members", QuorumLost},
	{"no leader", QuorumLost},
	{"request timed out", QuorumLost},
	{"Peer URLs already exists", "address in use: another member already has this server's peer URL"},
	{"certificate has expired or is not yet valid", "TLS: a certificate is not valid at this machine's time: check the clock (NTP) here and on the servers"},
	{"certificate signed by unknown authority", "TLS: the member's certificate is not of the cluster's etcd CA (another cluster, or one restored from a snapshot)"},
	{"bad certificate", "TLS: the member refused this server's certificate (another cluster's etcd CA, or a clock that differs by more than an hour)"},
	{"connection refused", "connection refused: is etcd running there?"},
	{"no route to host", "no route to host: check the address and this node's network"},
	{"i/o timeout", "timed out: is the address reachable from this node?"},
}
