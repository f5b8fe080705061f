package config

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/files"
)

// Embedded etcd's snapshots copied to S3 (etcd-s3): k3s's keys and
// defaults.
const (
	DefaultEtcdS3Endpoint = "s3.amazonaws.com"
	DefaultEtcdS3Region   = "us-east-1"
	DefaultEtcdS3Timeout  = 5 * time.Minute
)

// Bounds of the etcd-s3 keys.
const (
	minEtcdS3Timeout = time.Second
	maxEtcdS3Timeout = 24 * time.Hour
	maxS3Folder      = 512
	// maxS3SecretFile bounds reading etcd-s3-secret-key-file.
	maxS3SecretFile = 4096
)

// s3Keys are the etcd-s3 keys other than etcd-s3 itself.
var s3Keys = []string{"etcd-s3-endpoint", "etcd-s3-endpoint-ca", "etcd-s3-skip-ssl-verify", "etcd-s3-access-key",
	"etcd-s3-secret-key", "etcd-s3-secret-key-file", "etcd-s3-bucket", "etcd-s3-region", "etcd-s3-folder",
	"etcd-s3-insecure", "etcd-s3-timeout"}

var (
	// s3BucketRe is an S3 bucket name as AWS allows new ones.
	s3BucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// s3RegionRe is a region: AWS's (eu-west-1) and other stores' (auto, garage).
	s3RegionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// SnapshotS3 is where a server copies its snapshots with etcd-s3, the
// defaults filled in. The secret key is not here: S3SecretKey reads it.
type SnapshotS3 struct {
	// Endpoint is host or host:port, without a scheme.
	Endpoint string
	// EndpointCA is a PEM file of the CAs that sign the endpoint's
	// certificate; "" trusts the system's.
	EndpointCA string
	// SkipSSLVerify trusts any certificate; Insecure talks plain HTTP.
	SkipSSLVerify, Insecure bool
	// AccessKey is the credentials' id; "" (with no secret key) takes
	// credentials from the instance's metadata service (an IAM role).
	AccessKey string
	Bucket    string
	Region    string
	// Folder is where in the bucket, without leading or trailing
	// slashes; "" is the bucket's top.
	Folder string
	// Timeout bounds each upload, download and listing with its
	// removals.
	Timeout time.Duration
}

// SnapshotS3 is etcd-s3's target, or nil when etcd-s3 is not true. The
// config must have been validated.
func (k *Kubernetes) SnapshotS3() *SnapshotS3 {
	if !k.EtcdS3 {
		return nil
	}
	s := &SnapshotS3{Endpoint: k.EtcdS3Endpoint, EndpointCA: k.EtcdS3EndpointCA, SkipSSLVerify: k.EtcdS3SkipSSLVerify,
		Insecure: k.EtcdS3Insecure, AccessKey: k.EtcdS3AccessKey, Bucket: k.EtcdS3Bucket, Region: k.EtcdS3Region,
		Folder: strings.Trim(k.EtcdS3Folder, "/"), Timeout: DefaultEtcdS3Timeout}
	if s.Endpoint == "" {
		s.Endpoint = DefaultEtcdS3Endpoint
	}
	if s.Region == "" {
		s.Region = DefaultEtcdS3Region
	}
	if d, err := time.ParseDuration(k.EtcdS3Timeout); err == nil && d > 0 {
		s.Timeout = d
	}
	return s
}

// S3SecretKey is etcd-s3-secret-key, or the content of
// etcd-s3-secret-key-file with surrounding whitespace removed; "" when
// neither is set.
func (k *Kubernetes) S3SecretKey() (string, error) {
	if k.EtcdS3SecretKey != "" || k.EtcdS3SecretKeyFile == "" {
		return k.EtcdS3SecretKey, nil
	}
	b, err := files.Read(k.EtcdS3SecretKeyFile, maxS3SecretFile)
	if err != nil {
		return "", fmt.Errorf("kubernetes.etcd-s3-secret-key-file: reading the secret key: %w; write it with write_files or set kubernetes.etcd-s3-secret-key", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("kubernetes.etcd-s3-secret-key-file %s is empty; put the S3 secret key in it", k.EtcdS3SecretKeyFile)
	}
	return s, nil
}

// etcdS3 checks the etcd-s3 keys.
func (ck *checker) etcdS3() {
	k := &ck.c.Kubernetes
	const kp = "kubernetes."
	var given []string
	for _, key := range s3Keys {
		if ck.set(kp + key) {
			given = append(given, key)
		}
	}
	if !ck.set(kp+"etcd-s3") && len(given) == 0 {
		return
	}
	// Where the keys mean something: servers on embedded etcd.
	if ds, err := k.Datastore(); err == nil && (k.Role == "agent" || ds.Kind != DatastoreEmbedded) {
		for _, key := range append([]string{"etcd-s3"}, given...) {
			switch {
			case !ck.set(kp + key):
			case k.Role == "agent":
				ck.warnf(kp+key, "kubernetes.%s is a server setting (servers on embedded etcd copy their snapshots to S3); agents ignore it", key)
			default:
				ck.warnf(kp+key, "kubernetes.%s does nothing with datastore-endpoint: only servers on embedded etcd take snapshots; back the datastore up with its own tools", key)
			}
		}
		return
	}
	if !k.EtcdS3 {
		for _, key := range given {
			ck.warnf(kp+key, "kubernetes.%s is set, but etcd-s3 is not true: no snapshot is copied to S3 and it is ignored; add etcd-s3: true", key)
		}
		return
	}

	if k.EtcdS3Bucket == "" {
		ck.add(Error, kp+"etcd-s3-bucket", []string{kp + "etcd-s3"}, "kubernetes.etcd-s3 is true, but etcd-s3-bucket is not set: name the bucket the snapshots are copied to")
	} else if !s3BucketRe.MatchString(k.EtcdS3Bucket) {
		ck.errorf(kp+"etcd-s3-bucket", "kubernetes.etcd-s3-bucket %q is not an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit", k.EtcdS3Bucket)
	}
	if ck.set(kp + "etcd-s3-endpoint") {
		if msg := checkS3Endpoint(k.EtcdS3Endpoint); msg != "" {
			ck.errorf(kp+"etcd-s3-endpoint", "kubernetes.etcd-s3-endpoint %q %s", k.EtcdS3Endpoint, msg)
		}
	}
	if ca := k.EtcdS3EndpointCA; ck.set(kp + "etcd-s3-endpoint-ca") {
		switch {
		case !strings.HasPrefix(ca, "/"):
			ck.errorf(kp+"etcd-s3-endpoint-ca", "kubernetes.etcd-s3-endpoint-ca %q is relative; give the absolute path of a PEM file (write it with write_files)", ca)
		case path.Clean(ca) != ca:
			ck.errorf(kp+"etcd-s3-endpoint-ca", "kubernetes.etcd-s3-endpoint-ca %q is not a clean file path; write it as %s", ca, path.Clean(ca))
		case k.EtcdS3Insecure:
			ck.warnf(kp+"etcd-s3-endpoint-ca", "kubernetes.etcd-s3-endpoint-ca does nothing with etcd-s3-insecure: true (plain HTTP has no certificate); it is ignored")
		case k.EtcdS3SkipSSLVerify:
			ck.warnf(kp+"etcd-s3-endpoint-ca", "kubernetes.etcd-s3-endpoint-ca does nothing with etcd-s3-skip-ssl-verify: true; drop etcd-s3-skip-ssl-verify to check the endpoint's certificate against it")
		}
	}
	switch {
	case k.EtcdS3Insecure && k.EtcdS3SkipSSLVerify:
		ck.warnf(kp+"etcd-s3-skip-ssl-verify", "kubernetes.etcd-s3-skip-ssl-verify does nothing with etcd-s3-insecure: true (plain HTTP has no certificate); it is ignored")
	case k.EtcdS3Insecure:
		ck.warnf(kp+"etcd-s3-insecure", "kubernetes.etcd-s3-insecure: the snapshots, which hold every Secret of the cluster, cross the network in plain HTTP; use it only on a network you trust")
	case k.EtcdS3SkipSSLVerify:
		ck.warnf(kp+"etcd-s3-skip-ssl-verify", "kubernetes.etcd-s3-skip-ssl-verify: the endpoint's certificate is not checked, so whoever answers in its place gets the snapshots, which hold every Secret of the cluster; give its CA with etcd-s3-endpoint-ca instead")
	}

	// Credentials: both halves, or neither (an IAM role).
	hasSecret := k.EtcdS3SecretKey != "" || k.EtcdS3SecretKeyFile != ""
	if k.EtcdS3SecretKey != "" && k.EtcdS3SecretKeyFile != "" {
		ck.errorf(kp+"etcd-s3-secret-key-file", "kubernetes.etcd-s3-secret-key and kubernetes.etcd-s3-secret-key-file are both set; keep one")
	}
	if f := k.EtcdS3SecretKeyFile; f != "" {
		switch {
		case !strings.HasPrefix(f, "/"):
			ck.errorf(kp+"etcd-s3-secret-key-file", "kubernetes.etcd-s3-secret-key-file %q is relative; give an absolute path", f)
		case k.Distribution == "k3s":
			ck.errorf(kp+"etcd-s3-secret-key-file", "kubernetes.etcd-s3-secret-key-file is cairn's own; k3s (distribution: k3s) reads etcd-s3-secret-key only: write the key there")
		}
		for i, w := range ck.c.WriteFiles {
			if m, err := w.Mode(); err == nil && w.Path == f && m&0o004 != 0 {
				p := fmt.Sprintf("write_files[%d]", i)
				ck.add(Warning, p+".permissions", []string{p + ".permissions", p + ".path"}, "%s writes the S3 secret key file %s readable by every user (mode %04o); give it permissions: \"0600\"", p, w.Path, m.Perm())
			}
		}
	}
	switch {
	case k.EtcdS3AccessKey != "" && !hasSecret:
		ck.errorf(kp+"etcd-s3-access-key", "kubernetes.etcd-s3-access-key is set without etcd-s3-secret-key (or etcd-s3-secret-key-file); S3 credentials need both, or neither for the instance's IAM role")
	case k.EtcdS3AccessKey == "" && hasSecret:
		key := "etcd-s3-secret-key"
		if k.EtcdS3SecretKey == "" {
			key += "-file"
		}
		ck.errorf(kp+key, "kubernetes.%s is set without etcd-s3-access-key; S3 credentials need both, or neither for the instance's IAM role", key)
	}

	if r := k.EtcdS3Region; ck.set(kp+"etcd-s3-region") && !s3RegionRe.MatchString(r) {
		ck.errorf(kp+"etcd-s3-region", "kubernetes.etcd-s3-region %q is not a region, like %s", r, DefaultEtcdS3Region)
	}
	if ck.set(kp + "etcd-s3-folder") {
		if msg := checkS3Folder(k.EtcdS3Folder); msg != "" {
			ck.errorf(kp+"etcd-s3-folder", "kubernetes.etcd-s3-folder %q %s", k.EtcdS3Folder, msg)
		}
	}
	if t := k.EtcdS3Timeout; ck.set(kp + "etcd-s3-timeout") {
		if d, err := time.ParseDuration(t); err != nil || d < minEtcdS3Timeout || d > maxEtcdS3Timeout {
			ck.errorf(kp+"etcd-s3-timeout", "kubernetes.etcd-s3-timeout %q is not a duration from %s to %s; write it with a unit, like 5m (k3s's default)", t, minEtcdS3Timeout, maxEtcdS3Timeout)
		}
	}
}

// checkS3Endpoint says what is wrong with an etcd-s3-endpoint, or "".
func checkS3Endpoint(e string) string {
	const like = "like s3.amazonaws.com or 192.168.1.10:9000"
	if e == "" {
		return "is empty; leave it out for " + DefaultEtcdS3Endpoint
	}
	if scheme, _, ok := strings.Cut(e, "://"); ok {
		return fmt.Sprintf("has a scheme (%s://); write the host and port alone, %s (etcd-s3-insecure: true talks plain HTTP)", scheme, like)
	}
	if strings.Contains(e, "/") {
		return "has a path; write the host and port alone, " + like + ": the bucket is etcd-s3-bucket, the place in it etcd-s3-folder"
	}
	host := e
	if h, port, err := net.SplitHostPort(e); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("has port %q, which is not a number from 1 to 65535", port)
		}
		host = h
	}
	if !isHost(host) {
		return "is not a host name or IP address with an optional port, " + like
	}
	return ""
}

// checkS3Folder says what is wrong with an etcd-s3-folder, or "".
func checkS3Folder(f string) string {
	if len(f) > maxS3Folder {
		return fmt.Sprintf("is %d bytes long; at most %d", len(f), maxS3Folder)
	}
	t := strings.Trim(f, "/")
	if t == "" {
		return ""
	}
	for _, seg := range strings.Split(t, "/") {
		switch {
		case seg == "":
			return "has an empty part (//); write it as " + path.Clean(t)
		case seg == "." || seg == "..":
			return "has a part " + seg + "; name the folder from the bucket's top, like etcd/cluster-1"
		case strings.ContainsAny(seg, "\\{}^%`[]<>~#|\"") || strings.ContainsFunc(seg, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return "has characters S3 advises against in a key (control characters, \\, {, }, ^, %, `, [, ], <, >, ~, #, |, \"); use letters, digits, '-', '_', '.' and '/'"
		}
	}
	return ""
}

// checkS3ObjectName says what is wrong with cluster-reset-restore-path as
// a snapshot's name in etcd-s3-folder, or "".
func checkS3ObjectName(p string) string {
	switch {
	case path.Clean(p) != p:
		return "is not a clean name; write it as " + path.Clean(p)
	case p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return "leaves etcd-s3-folder; give a snapshot's name in it, like etcd-snapshot-s1-1765022400.zst"
	}
	return checkS3Folder(p)
}
