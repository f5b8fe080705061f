package join

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/cairn-os/cairn/config/kube"
)

// A server that joins a cluster on embedded etcd (it has `server:` and no
// datastore-endpoint) reads what it needs from a running server's
// apiserver, as the server token's bootstrap token: the cluster record,
// sealed with a key stretched from the token (it holds the etcd CA the
// members' peer and client traffic is authenticated with), and where the
// voting members take etcd clients. With the etcd CA it makes its own
// certificates and asks a voting member, over etcd's client API, to add it
// as a learner.
const (
	// RecordSecret (namespace kube-system) holds the record under
	// RecordKey and the voting members' client URLs, one a line, under
	// MembersKey. Only the servers' group (ServersGroup) and admins may
	// read it; what it holds opens only with the token.
	RecordSecret = "cairn-cluster-record"
	RecordKey    = "record"
	MembersKey   = "members"
)

// maxRecordReply bounds the Secret read: the record is tens of KiB.
const maxRecordReply = 4 << 20

// maxMembers bounds the client URLs taken from the Secret.
const maxMembers = 64

// ClusterRecord is what a joining server reads from a running one.
type ClusterRecord struct {
	// Cluster is what the client verified with the token first.
	Cluster *Cluster
	// Record is the cluster record's JSON, sealed: it opens only with the
	// token.
	Record []byte
	// Members are the voting members' etcd client URLs.
	Members []string
}

// ClusterRecord verifies the server's CA with the token (Cluster), then
// reads the sealed cluster record and the voting members' client URLs
// over a connection that trusts only that CA, as the server token's
// bootstrap token. It is read from the apiserver's cache
// (resourceVersion=0), so a server whose datastore has lost quorum still
// answers, and the joiner learns the reason from etcd itself.
func (c *Client) ClusterRecord(ctx context.Context) (*ClusterRecord, error) {
	v, api, u, err := c.serverAPI(ctx, "a server joins with the server token (kubernetes.token of the other servers)")
	if err != nil {
		return nil, err
	}
	defer api.CloseIdleConnections()
	var s struct {
		Data map[string][]byte `json:"data"`
	}
	path := "/api/v1/namespaces/kube-system/secrets/" + RecordSecret + "?resourceVersion=0"
	err = api.WithMaxReply(maxRecordReply).Get(ctx, path, &s)
	switch {
	case kube.IsStatus(err, http.StatusUnauthorized):
		return nil, fmt.Errorf("%w: %s does not know the token's bootstrap credential yet (401); try again in a minute", ErrNotReady, u.Host)
	case kube.IsStatus(err, http.StatusNotFound):
		return nil, fmt.Errorf("%w: %s has no kube-system/%s: its cluster is not on embedded etcd (give this server the cluster's datastore-endpoint instead), or it has not finished starting", ErrNotReady, u.Host, RecordSecret)
	case kube.IsStatus(err, http.StatusForbidden):
		return nil, fmt.Errorf("%w: %s does not let the server token read the cluster record yet (403): it is still publishing its join objects, or it runs a cairn whose servers do not join embedded etcd (upgrade it first)", ErrNotReady, u.Host)
	case err != nil:
		return nil, explain(u.Host, "read the cluster record", err)
	}
	out := &ClusterRecord{Cluster: v, Record: s.Data[RecordKey]}
	if len(out.Record) == 0 {
		return nil, fmt.Errorf("%w: %s's %s holds no record yet", ErrNotReady, u.Host, RecordSecret)
	}
	for l := range strings.SplitSeq(string(s.Data[MembersKey]), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "https://") && len(out.Members) < maxMembers {
			out.Members = append(out.Members, l)
		}
	}
	if len(out.Members) == 0 {
		return nil, fmt.Errorf("%w: %s's %s names no voting member yet", ErrNotReady, u.Host, RecordSecret)
	}
	return out, nil
}
