package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEtcdS3Keys: k3s's etcd-s3 keys as a user sees them from cairn
// validate (FILE:LINE:COL, the key, what to write).
func TestEtcdS3Keys(t *testing.T) {
	const s3 = "kubernetes:\n  etcd-s3: true\n  etcd-s3-bucket: snapshots\n"
	const agent = "  role: agent\n  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  vip: 10.0.0.100\n"
	const pg = "  token: Xq7Lm2Rz9Vk4Tp8Wn3Hs6J\n  datastore-endpoint: postgres://k:p@db:5432/k\n"
	tests := []struct {
		name string
		doc  string
		want string // the one diagnostic, exactly its start; "" for none
	}{
		{"k3s's keys as k3s writes them", "kubernetes:\n  etcd-s3: true\n  etcd-s3-endpoint: minio.example.com:9000\n  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key: wJalrXUtnFEMI/K7MDENG\n  etcd-s3-bucket: etcd-backups\n  etcd-s3-region: eu-west-1\n  etcd-s3-folder: cluster-1/\n  etcd-s3-timeout: 2m\n", ""},
		{"the bucket alone (an IAM role)", s3, ""},
		{"a secret key file", s3 + "  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key-file: /var/lib/cairn/s3-secret\n", ""},
		{"a CA", s3 + "  etcd-s3-endpoint: 10.0.0.5:9000\n  etcd-s3-endpoint-ca: /etc/cairn/s3-ca.pem\n", ""},
		{"a restore from the bucket", s3 + "  cluster-reset: true\n  cluster-reset-restore-path: etcd-snapshot-s1-1765022400.zst\n", ""},
		{"a restore from a file, with etcd-s3", s3 + "  cluster-reset: true\n  cluster-reset-restore-path: /var/lib/cairn/etcd-snapshots/etcd-snapshot-s1-1765022400\n", ""},
		{"no bucket", "kubernetes:\n  etcd-s3: true\n",
			`c:2:12: error: kubernetes.etcd-s3 is true, but etcd-s3-bucket is not set: name the bucket the snapshots are copied to`},
		{"a bucket with capitals", "kubernetes:\n  etcd-s3: true\n  etcd-s3-bucket: My_Backups\n",
			`c:3:19: error: kubernetes.etcd-s3-bucket "My_Backups" is not an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-'`},
		{"an endpoint with a scheme", s3 + "  etcd-s3-endpoint: http://minio:9000\n",
			`c:4:21: error: kubernetes.etcd-s3-endpoint "http://minio:9000" has a scheme (http://); write the host and port alone, like s3.amazonaws.com or 192.168.1.10:9000 (etcd-s3-insecure: true talks plain HTTP)`},
		{"an endpoint with a path", s3 + "  etcd-s3-endpoint: minio:9000/snapshots\n",
			`c:4:21: error: kubernetes.etcd-s3-endpoint "minio:9000/snapshots" has a path; write the host and port alone`},
		{"an endpoint with a bad port", s3 + "  etcd-s3-endpoint: minio:99999\n",
			`c:4:21: error: kubernetes.etcd-s3-endpoint "minio:99999" has port "99999", which is not a number from 1 to 65535`},
		{"a relative CA", s3 + "  etcd-s3-endpoint-ca: ca.pem\n",
			`c:4:24: error: kubernetes.etcd-s3-endpoint-ca "ca.pem" is relative; give the absolute path of a PEM file (write it with write_files)`},
		{"plain HTTP", s3 + "  etcd-s3-insecure: true\n",
			`c:4:21: warning: kubernetes.etcd-s3-insecure: the snapshots, which hold every Secret of the cluster, cross the network in plain HTTP`},
		{"no certificate check", s3 + "  etcd-s3-skip-ssl-verify: true\n",
			`c:4:28: warning: kubernetes.etcd-s3-skip-ssl-verify: the endpoint's certificate is not checked, so whoever answers in its place gets the snapshots`},
		{"an access key alone", s3 + "  etcd-s3-access-key: AKIAEXAMPLE\n",
			`c:4:23: error: kubernetes.etcd-s3-access-key is set without etcd-s3-secret-key (or etcd-s3-secret-key-file); S3 credentials need both, or neither for the instance's IAM role`},
		{"a secret key alone", s3 + "  etcd-s3-secret-key: wJalrXUtnFEMI/K7MDENG\n",
			`c:4:23: error: kubernetes.etcd-s3-secret-key is set without etcd-s3-access-key`},
		{"a secret key twice", s3 + "  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key: wJalrXUtnFEMI/K7MDENG\n  etcd-s3-secret-key-file: /var/lib/cairn/s3-secret\n",
			`c:6:28: error: kubernetes.etcd-s3-secret-key and kubernetes.etcd-s3-secret-key-file are both set; keep one`},
		{"a relative secret key file", s3 + "  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key-file: s3-secret\n",
			`c:5:28: error: kubernetes.etcd-s3-secret-key-file "s3-secret" is relative; give an absolute path`},
		{"a secret key file for k3s", "kubernetes:\n  distribution: k3s\n  etcd-s3: true\n  etcd-s3-bucket: snapshots\n  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key-file: /var/lib/cairn/s3-secret\n",
			`c:6:28: error: kubernetes.etcd-s3-secret-key-file is cairn's own; k3s (distribution: k3s) reads etcd-s3-secret-key only: write the key there`},
		{"a readable secret key file", "write_files:\n- path: /var/lib/cairn/s3-secret\n  content: wJalrXUtnFEMI/K7MDENG\n  permissions: \"0644\"\n" + s3 + "  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key-file: /var/lib/cairn/s3-secret\n",
			`c:4:16: warning: write_files[0] writes the S3 secret key file /var/lib/cairn/s3-secret readable by every user (mode 0644); give it permissions: "0600"`},
		{"a region with a space", s3 + "  etcd-s3-region: eu west\n",
			`c:4:19: error: kubernetes.etcd-s3-region "eu west" is not a region, like us-east-1`},
		{"a folder leaving itself", s3 + "  etcd-s3-folder: backups/../x\n",
			`c:4:19: error: kubernetes.etcd-s3-folder "backups/../x" has a part ..; name the folder from the bucket's top`},
		{"a folder with //", s3 + "  etcd-s3-folder: a//b\n",
			`c:4:19: error: kubernetes.etcd-s3-folder "a//b" has an empty part (//); write it as a/b`},
		{"a timeout without a unit", s3 + "  etcd-s3-timeout: 300\n",
			`c:4:20: error: kubernetes.etcd-s3-timeout "300" is not a duration from 1s to 24h0m0s; write it with a unit, like 5m (k3s's default)`},
		{"a restore name leaving the folder", s3 + "  cluster-reset: true\n  cluster-reset-restore-path: ../other/etcd-snapshot-s1-1\n",
			`c:5:31: error: kubernetes.cluster-reset-restore-path "../other/etcd-snapshot-s1-1" leaves etcd-s3-folder`},
		{"a restore name without etcd-s3", "kubernetes:\n  cluster-reset: true\n  cluster-reset-restore-path: etcd-snapshot-s1-1765022400.zst\n",
			`c:3:31: error: kubernetes.cluster-reset-restore-path "etcd-snapshot-s1-1765022400.zst" is relative; give the snapshot file's absolute path on this server, like /var/lib/cairn/etcd-snapshots/etcd-snapshot-NODE-1700000000 (or, with etcd-s3: true, a snapshot's name in the bucket's etcd-s3-folder)`},
		{"the keys without etcd-s3", "kubernetes:\n  etcd-s3-bucket: snapshots\n",
			`c:2:19: warning: kubernetes.etcd-s3-bucket is set, but etcd-s3 is not true: no snapshot is copied to S3 and it is ignored; add etcd-s3: true`},
		{"on an external datastore", "kubernetes:\n" + pg + "  etcd-s3: true\n",
			`c:4:12: warning: kubernetes.etcd-s3 does nothing with datastore-endpoint: only servers on embedded etcd take snapshots`},
		{"on an agent", "kubernetes:\n" + agent + "  etcd-s3-bucket: snapshots\n",
			`c:5:19: warning: kubernetes.etcd-s3-bucket is a server setting (servers on embedded etcd copy their snapshots to S3); agents ignore it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := Load(src("c", tt.doc))
			got := strings.TrimSuffix(messages(diags), "\n")
			switch {
			case tt.want == "" && got != "":
				t.Errorf("diagnostics:\n%s\nwant none", got)
			case tt.want != "" && (len(diags) != 1 || !strings.HasPrefix(got, tt.want)):
				t.Errorf("diagnostics:\n%s\nwant exactly one, starting:\n%s", got, tt.want)
			}
		})
	}
}

// The target a server uses: k3s's defaults, the folder without its
// slashes; the secret key from the config or its file, and never in
// what cairn validate --print shows.
func TestEtcdS3Target(t *testing.T) {
	cfg, diags := Load(src("c", "kubernetes:\n  etcd-s3: true\n  etcd-s3-bucket: snapshots\n  etcd-s3-folder: /cluster-1/\n"))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	s := cfg.Kubernetes.SnapshotS3()
	want := SnapshotS3{Endpoint: "s3.amazonaws.com", Bucket: "snapshots", Region: "us-east-1", Folder: "cluster-1", Timeout: 5 * time.Minute}
	if s == nil || *s != want {
		t.Errorf("the target: %+v; want %+v", s, want)
	}
	if (&Kubernetes{EtcdS3Bucket: "x"}).SnapshotS3() != nil {
		t.Errorf("a target without etcd-s3: true")
	}

	secret := filepath.Join(t.TempDir(), "s3-secret")
	os.WriteFile(secret, []byte("  wJalrXUtnFEMI/K7MDENG\n"), 0o600)
	k := &Kubernetes{EtcdS3SecretKeyFile: secret}
	if got, err := k.S3SecretKey(); got != "wJalrXUtnFEMI/K7MDENG" || err != nil {
		t.Errorf("the secret key from its file: %q %v", got, err)
	}
	os.WriteFile(secret, []byte("\n"), 0o600)
	if _, err := k.S3SecretKey(); err == nil || !strings.Contains(err.Error(), "kubernetes.etcd-s3-secret-key-file "+secret+" is empty") {
		t.Errorf("an empty secret key file: %v", err)
	}
	k.EtcdS3SecretKeyFile = filepath.Join(t.TempDir(), "none")
	if _, err := k.S3SecretKey(); err == nil || !strings.HasPrefix(err.Error(), "kubernetes.etcd-s3-secret-key-file: reading the secret key: ") {
		t.Errorf("a missing secret key file: %v", err)
	}

	doc := "write_files:\n- path: /var/lib/cairn/s3-secret\n  content: wJalrXUtnFEMI/K7MDENG-file\n  permissions: \"0644\"\n" +
		"kubernetes:\n  etcd-s3: true\n  etcd-s3-bucket: snapshots\n  etcd-s3-access-key: AKIAEXAMPLE\n  etcd-s3-secret-key: wJalrXUtnFEMI/K7MDENG\n"
	cfg, diags = Load(src("c", doc))
	if diags.HasErrors() {
		t.Fatal(messages(diags))
	}
	cfg.Kubernetes.EtcdS3SecretKeyFile = "/var/lib/cairn/s3-secret" // as if both were set: the file's content is redacted too
	out, err := cfg.Redacted().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "wJalrXUtnFEMI") || !strings.Contains(string(out), "etcd-s3-secret-key: <redacted>") || !strings.Contains(string(out), "etcd-s3-access-key: AKIAEXAMPLE") {
		t.Errorf("the printed config:\n%s\nwant the secret key and its file redacted, the access key kept", out)
	}
}
