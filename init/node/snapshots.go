package node

import (
	"context"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/cron"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/etcdsnap"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// etcdSnapshots is embedded etcd's recovery and backups on this server
// (init/node/etcdsnap): before etcd starts, the cluster-reset the config
// asks for, once; once the apiserver is ready, snapshots of this
// server's member on the schedule and on request. Nothing on a server
// with datastore-endpoint.
func (s *server) etcdSnapshots(ctx context.Context) error {
	if s.ds.Kind != config.DatastoreEmbedded {
		return nil
	}
	node := s.renderNode()
	member := node.Name
	if member == "" {
		member = "default" // as render.Etcd names it
	}
	if err := etcdsnap.Reset(etcdsnap.ResetOptions{Reset: s.k.ClusterReset, RestorePath: s.k.ClusterResetRestorePath,
		DataDir: s.l.EtcdDir, StateDir: s.l.DataDir, Member: member, PeerURL: render.EtcdPeerURL(node), Printf: s.o.Printf}); err != nil {
		return err
	}
	if s.o.Services == nil {
		return nil
	}
	supervise.Go("node: etcd snapshots", func() {
		if _, err := s.o.Services.Wait(ctx, "kube-apiserver", func(st supervise.Status) bool { return st.State == supervise.Ready }); err != nil {
			return
		}
		o, err := s.snapshotOptions()
		if err != nil {
			s.o.Printf("etcd-snapshot: no snapshots on this server: %v", err)
			return
		}
		etcdsnap.Run(ctx, o)
	})
	return nil
}

// snapshotOptions are the snapshots' settings from the config, with the
// server's clients of its own member and apiserver.
func (s *server) snapshotOptions() (etcdsnap.Options, error) {
	k := s.k
	o := etcdsnap.Options{Node: nodeName(s.o), Dir: k.EtcdSnapshotDir, Name: k.SnapshotName(),
		Retention: k.SnapshotRetention(), Printf: s.o.Printf}
	if o.Dir == "" {
		o.Dir = filepath.Join(s.l.DataDir, "etcd-snapshots") // config.DefaultEtcdSnapshotDir on a node
	}
	o.Compress, _ = k.SnapshotCompression()
	if !k.EtcdDisableSnapshots {
		sched, err := cron.Parse(k.SnapshotSchedule())
		if err != nil {
			return o, err // config.Load refused it already
		}
		o.Schedule = sched
	}
	tlsCfg, err := s.etcdClientTLS()
	if err != nil {
		return o, err
	}
	o.Etcd = clientv3.Config{Endpoints: []string{"https://" + s.l.DatastoreListen}, TLS: tlsCfg,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if o.API, err = s.admin.client(kube.Options{}); err != nil {
		return o, err
	}
	return o, nil
}
