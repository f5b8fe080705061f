package node

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/init/node/render"
)

// etcdPeerTLS moves embedded etcd's member to its TLS peer URL in the
// cluster's membership: a member an older cairn made advertises an
// http:// URL, where the member now listens with TLS and client
// certificates only.
func (s *server) etcdPeerTLS(ctx context.Context, cfg clientv3.Config) error {
	want := render.EtcdPeerURL(s.l)
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, datastoreAttempt)
	defer cancel()
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("listing embedded etcd's members: %w", err)
	}
	plain := "http://" + strings.TrimPrefix(want, "https://")
	for _, m := range resp.Members {
		if len(m.PeerURLs) != 1 || m.PeerURLs[0] != plain {
			continue
		}
		if _, err := cli.MemberUpdate(ctx, m.ID, []string{want}); err != nil {
			return fmt.Errorf("moving embedded etcd's member %s to %s: %w", m.Name, want, err)
		}
		s.o.Printf("node: embedded etcd's member %s now advertises its peer port with TLS (%s)", m.Name, want)
	}
	return nil
}
