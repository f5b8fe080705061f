//go:build qemu

package test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// The private registry of TestPrivateRegistry: Debian's docker-registry on
// the bridge, its CA written to the nodes with write_files.
const (
	registryAddr     = dsAddr + ":5000"
	registryUser     = "puller"
	registryPassword = "registry-pw-s3cret"
	registryCAFile   = "/etc/cairn/registry-ca.pem"
	// mirroredImage is what the pods name; the registry holds it as
	// library/cairn-e2eapp, where a docker.io mirror is asked for it.
	mirroredImage = "docker.io/library/cairn-e2eapp:v1"
)

// TestPrivateRegistry: a registry the test runs on the bridge (Debian's
// docker-registry, TLS from the test's own CA, basic authentication)
// holds test/e2eapp as library/cairn-e2eapp:v1. A server on embedded etcd
// mirrors docker.io to it with the credentials from configs and never
// tries docker.io itself (disable-default-registry-endpoint): a pod naming
// docker.io/library/cairn-e2eapp:v1 runs the pushed image. An agent whose
// configs entry has the CA but no credentials is refused the same image
// (ErrImagePull or ImagePullBackOff, the registry's authorization named).
// No console shows the password or the header made of it.
func TestPrivateRegistry(t *testing.T) {
	ns := bridgeNS(t)
	reg := startRegistry(t, ns, registryAddr, registryUser, registryPassword)
	digest := reg.push(t, appImage(t), "library/cairn-e2eapp", "v1")
	t.Logf("pushed test/e2eapp to https://%s/library/cairn-e2eapp:v1 as %s", registryAddr, digest)

	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, "",
		"  flannel-backend: none", registryKeys(true), registryFiles(reg.caPEM, "10.88.1.0/24"))))
	s1.expect(t, controlPlane, reServerReady)
	a1 := startPeer(t, ns, "a1", nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.11:6443",
		"  flannel-backend: none", registryKeys(false), registryFiles(reg.caPEM, "10.88.2.0/24"))))
	for _, n := range []*containerNode{s1, a1} {
		n.expect(t, nodeReady, `node: (\S+) is Ready`)
	}

	tok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: "https://192.168.77.11:6443", Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, kcData, 0o600)
	manifest := filepath.Join(t.TempDir(), "pods.yaml")
	os.WriteFile(manifest, []byte(mirroredPod("from-mirror", "s1")+"---\n"+mirroredPod("no-credentials", "a1")), 0o644)
	if out, err := kubectl(t, ns, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	// s1 pulls through the mirror with its credentials: the pod runs the
	// manifest the test pushed.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st := podStatus(t, ns, kc, "from-mirror")
		if st.phase == "Running" {
			if !strings.HasSuffix(st.imageID, "@"+digest) {
				t.Errorf("from-mirror runs image %q; want the pushed manifest %s", st.imageID, digest)
			}
			break
		}
		// ImagePullBackOff: a pull failed already; the events say why.
		if st.waiting == "ImagePullBackOff" || time.Now().After(deadline) {
			desc, _ := kubectl(t, ns, kc, "describe", "pod", "from-mirror")
			t.Fatalf("the pod on s1 naming %s is not running (%s %s: %s):\n%s", mirroredImage, st.phase, st.waiting, st.message, desc)
		}
		time.Sleep(3 * time.Second)
	}

	// a1 has the CA but no credentials: the registry refuses it, and the
	// kubelet says so.
	deadline = time.Now().Add(3 * time.Minute)
	var why string
	for why == "" {
		st := podStatus(t, ns, kc, "no-credentials")
		switch {
		case st.phase == "Running":
			t.Fatalf("the pod on a1, which has no credentials for %s, runs %s", registryAddr, st.imageID)
		case st.waiting == "ErrImagePull" || st.waiting == "ImagePullBackOff":
			// The pull's error is in the Failed event (ImagePullBackOff's
			// own message only says it backs off).
			out, _ := kubectl(t, ns, kc, "get", "events", "--field-selector", "involvedObject.name=no-credentials,reason=Failed",
				"-o", `jsonpath={range .items[*]}{.message}{"\n"}{end}`)
			for l := range strings.SplitSeq(out, "\n") {
				if strings.HasPrefix(l, "Failed to pull image") {
					t.Logf("the pod on a1 without credentials: %s: %s", st.waiting, l)
					why = l
					break
				}
			}
		}
		if why == "" && time.Now().After(deadline) {
			desc, _ := kubectl(t, ns, kc, "describe", "pod", "no-credentials")
			t.Fatalf("the pod on a1 is not refused its image after 3m (%s %s: %s):\n%s", st.phase, st.waiting, st.message, desc)
		}
		time.Sleep(3 * time.Second)
	}
	if !regexp.MustCompile(`(?i)authoriz|401|unauthorized`).MatchString(why) || strings.Contains(why, "x509") {
		t.Errorf("a1's pull failed, but not on the registry's authorization:\n%s", why)
	}

	// The registry's access log agrees: s1's pull answered, a1's refused.
	for _, c := range []struct{ node, addr, want string }{{"s1", "192.168.77.11", "200"}, {"a1", "192.168.77.21", "401"}} {
		got := reg.manifestRequests(t, c.addr, "library/cairn-e2eapp", "v1")
		if !slices.Contains(got, c.want) || (c.want != "200" && slices.Contains(got, "200")) {
			t.Errorf("the registry answered %s's requests for the manifest with %v; want %s", c.node, got, c.want)
		}
	}

	header := base64.StdEncoding.EncodeToString([]byte(registryUser + ":" + registryPassword))
	noSecretOnConsole(t, []*containerNode{s1, a1}, clusterToken, registryPassword, header)
}

// registryKeys are the kubernetes keys of TestPrivateRegistry's nodes:
// docker.io mirrored to the registry, never pulled from docker.io itself,
// the registry's CA, and with auth the credentials.
func registryKeys(auth bool) string {
	creds := ""
	if auth {
		creds = fmt.Sprintf("\n        auth: {username: %s, password: %q}", registryUser, registryPassword)
	}
	return fmt.Sprintf(`  disable-default-registry-endpoint: true
  registries:
    mirrors:
      docker.io:
        endpoint: ["https://%s"]
    configs:
      %q:%s
        tls: {ca_file: %s}`, registryAddr, registryAddr, creds, registryCAFile)
}

// registryFiles is the write_files of TestPrivateRegistry's nodes: the
// registry's CA and a bridge network on subnet.
func registryFiles(caPEM []byte, subnet string) string {
	return "write_files:\n" + writeFileEntry(registryCAFile, "0644", string(caPEM)) + bridgeCNIFile(subnet)
}

// mirroredPod is a pod on node that runs mirroredImage, pulled each time.
func mirroredPod(name, node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  nodeSelector: {kubernetes.io/hostname: %s}
  containers:
    - name: app
      image: %s
      imagePullPolicy: Always
      command: ["/app", "serve"]
`, name, node, mirroredImage)
}

// podState is what the kubelet says of a pod's one container.
type podState struct{ phase, waiting, message, imageID string }

func podStatus(t *testing.T, ns *qemu.Netns, kc, name string) podState {
	t.Helper()
	out, err := kubectl(t, ns, kc, "get", "pod", name, "-o", "json")
	if err != nil {
		return podState{phase: "unknown", message: brief.FirstLine([]byte(out), 200)}
	}
	var p struct {
		Status struct {
			Phase             string
			ContainerStatuses []struct {
				ImageID string
				State   struct {
					Waiting *struct{ Reason, Message string }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("kubectl get pod %s: %v", name, err)
	}
	st := podState{phase: p.Status.Phase}
	if cs := p.Status.ContainerStatuses; len(cs) > 0 {
		st.imageID = cs[0].ImageID
		if w := cs[0].State.Waiting; w != nil {
			st.waiting, st.message = w.Reason, w.Message
		}
	}
	return st
}

// writeFileEntry is one entry of a cloud-config's write_files list.
func writeFileEntry(path, mode, content string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - path: %s\n    permissions: %q\n    content: |\n", path, mode)
	for l := range strings.SplitSeq(strings.TrimSuffix(content, "\n"), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// registry is Debian's docker-registry run by a test inside a bridge
// namespace: TLS with a certificate of the test's own CA for its address,
// basic authentication from an htpasswd file (bcrypt), storage in a
// temporary directory.
type registry struct {
	addr     string // host:port on the bridge
	caPEM    []byte
	user, pw string
	hc       *http.Client
	log      string // its output: the application's log and the access log
}

// startRegistry starts the registry on addr (host:port, an address of
// ns's bridge) for user and password, and waits until it refuses a
// request without them.
func startRegistry(t *testing.T, ns *qemu.Netns, addr, user, password string) *registry {
	t.Helper()
	const bin = "/usr/bin/docker-registry"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("Debian's docker-registry is not installed (%v): run `make deps`", err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := registryCerts(t, net.ParseIP(host))
	// The lowest cost bcrypt takes: the registry checks the password on
	// every request, and this host has two cores.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
  secret: e2e-upload-state
  tls:
    certificate: %s
    key: %s
auth:
  htpasswd:
    realm: cairn-e2e
    path: %s
`, filepath.Join(dir, "storage"), addr, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "htpasswd"))
	for name, data := range map[string][]byte{
		"cert.pem":    certPEM,
		"key.pem":     keyPEM,
		"htpasswd":    []byte(user + ":" + string(hash) + "\n"),
		"config.yaml": []byte(config),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(logDir(t), strings.ReplaceAll(t.Name(), "/", "_")+"-registry.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(context.Background(), bin, "serve", filepath.Join(dir, "config.yaml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		logf.Close()
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	r := &registry{addr: addr, caPEM: caPEM, user: user, pw: password, log: logPath, hc: &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{DialContext: ns.DialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	// Up when it answers; it must refuse a request without credentials.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		resp, err := r.hc.Get("https://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("the registry answers GET /v2/ without credentials with %s (WWW-Authenticate %q); want 401 and a Basic challenge",
					resp.Status, resp.Header.Get("WWW-Authenticate"))
			}
			return r
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry ended: %v\n%s", cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("the registry does not answer on https://%s/v2/ within a minute: %v\n%s", addr, err, log)
		}
	}
}

// reAccessLog is a line of the registry's access log (combined format).
var reAccessLog = regexp.MustCompile(`^(\S+) \S+ \S+ \[[^]]*\] "(\S+) (\S+) [^"]*" (\d+) `)

// manifestRequests are the statuses the registry answered from's GET and
// HEAD requests for repo:tag's manifest with, in order.
func (r *registry) manifestRequests(t *testing.T, from, repo, tag string) []string {
	t.Helper()
	data, err := os.ReadFile(r.log)
	if err != nil {
		t.Fatal(err)
	}
	path := "/v2/" + repo + "/manifests/" + tag
	var out []string
	for l := range strings.SplitSeq(string(data), "\n") {
		m := reAccessLog.FindStringSubmatch(l)
		if m != nil && m[1] == from && (m[2] == "GET" || m[2] == "HEAD") && (m[3] == path || strings.HasPrefix(m[3], path+"?")) {
			out = append(out, m[4])
		}
	}
	return out
}

// registryCerts makes a CA and a certificate it signs for ip, and returns
// the CA's certificate and the server's certificate and key, in PEM.
func registryCerts(t *testing.T, ip net.IP) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cairn e2e registry CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: ip.String()},
		IPAddresses:  []net.IP{ip},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// push uploads the image of an OCI archive (appImage's) to repo:tag with
// the distribution API: each blob the manifest names in one monolithic
// upload (POST, then PUT with its digest), then the manifest. It returns
// the manifest's digest as the registry gives it.
func (r *registry) push(t *testing.T, archive, repo, tag string) string {
	t.Helper()
	blobs := readArchive(t, archive)
	var index struct {
		Manifests []struct{ MediaType, Digest string }
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("%s: index.json: %v (want one manifest, have %d)", archive, err, len(index.Manifests))
	}
	mDesc := index.Manifests[0]
	man := blobs[blobName(mDesc.Digest)]
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(man, &m); err != nil {
		t.Fatalf("%s: manifest %s: %v", archive, mDesc.Digest, err)
	}
	base := "https://" + r.addr + "/v2/" + repo
	digests := []string{m.Config.Digest}
	for _, l := range m.Layers {
		digests = append(digests, l.Digest)
	}
	for _, d := range digests {
		data, ok := blobs[blobName(d)]
		if !ok {
			t.Fatalf("%s: no blob %s", archive, d)
		}
		resp := r.do(t, "POST", base+"/blobs/uploads/", "", nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("starting the upload of %s: %s", d, resp.Status)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatalf("the upload of %s: Location %q: %v", d, resp.Header.Get("Location"), err)
		}
		u, _ := url.Parse(base)
		u = u.ResolveReference(loc)
		q := u.Query()
		q.Set("digest", d)
		u.RawQuery = q.Encode()
		if resp := r.do(t, "PUT", u.String(), "application/octet-stream", data); resp.StatusCode != http.StatusCreated {
			t.Fatalf("uploading %s: %s", d, resp.Status)
		}
	}
	resp := r.do(t, "PUT", base+"/manifests/"+tag, mDesc.MediaType, man)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("putting the manifest %s:%s: %s", repo, tag, resp.Status)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != mDesc.Digest {
		t.Fatalf("the registry took the manifest as %q; the archive has %s", got, mDesc.Digest)
	}
	return mDesc.Digest
}

// do sends one request with the registry's credentials; the body of the
// answer is read and closed.
func (r *registry) do(t *testing.T, method, u, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(r.user, r.pw)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %s %s", method, u, resp.Status, msg)
	}
	return resp
}

// readArchive is every regular file of a tar, by name.
func readArchive(t *testing.T, archive string) map[string][]byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("reading %s: %v", archive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s in %s: %v", hdr.Name, archive, err)
		}
		files[hdr.Name] = data
	}
}

func blobName(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}
