package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/cron"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/etcdsnap"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// etcdSnapshots is embedded etcd's recovery and backups on this server
// (init/node/etcdsnap): before etcd starts, the cluster-reset the config
// asks for, once (from a snapshot in the etcd-s3 bucket too); once the
// apiserver is ready, snapshots of this server's member on the schedule
// and on request, copied to the bucket with etcd-s3. Nothing on a server
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
	ro := etcdsnap.ResetOptions{Reset: s.k.ClusterReset, RestorePath: s.k.ClusterResetRestorePath,
		DataDir: s.l.EtcdDir, StateDir: s.l.DataDir, Member: member, PeerURL: render.EtcdPeerURL(node), Printf: s.o.Printf}
	_, noMarker := os.Stat(filepath.Join(s.l.DataDir, etcdsnap.MarkerName))
	if ro.Reset && ro.RestorePath != "" && !filepath.IsAbs(ro.RestorePath) && noMarker != nil {
		// A download to do: the marker would say the reset was done.
		s3, err := snapshotS3(s.k)
		if err != nil {
			return fmt.Errorf("cluster-reset-restore-path %s: %w", ro.RestorePath, err)
		}
		ro.S3 = s3
	}
	if err := etcdsnap.Reset(ctx, ro); err != nil {
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
	if s3, err := snapshotS3(k); err != nil {
		s.o.Printf("etcd-snapshot: snapshots are not copied to S3: %v", err)
	} else {
		o.S3 = s3
	}
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

// snapshotS3 is etcd-s3's bucket with its secret key and CA read from
// their files; nil without etcd-s3.
func snapshotS3(k *config.Kubernetes) (*etcdsnap.S3, error) {
	c := k.SnapshotS3()
	if c == nil {
		return nil, nil
	}
	secret, err := k.S3SecretKey()
	if err != nil {
		return nil, err
	}
	s3 := &etcdsnap.S3{Endpoint: c.Endpoint, Insecure: c.Insecure, SkipVerify: c.SkipSSLVerify, Bucket: c.Bucket,
		Region: c.Region, Folder: c.Folder, AccessKey: c.AccessKey, SecretKey: secret, Timeout: c.Timeout}
	if c.EndpointCA != "" && !c.Insecure {
		if s3.CA, err = files.Read(c.EndpointCA, maxCAFile); err != nil {
			return nil, fmt.Errorf("kubernetes.etcd-s3-endpoint-ca: %w; write it with write_files", err)
		}
	}
	return s3, nil
}

// maxCAFile bounds reading etcd-s3-endpoint-ca: a bundle of every public
// CA is about 200 KiB.
const maxCAFile = 1 << 20
