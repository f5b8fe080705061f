package node

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/render"
)

// writeArchive writes an image archive whose index.json is index.
func writeArchive(t *testing.T, path, index string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: "oci-layout", Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.WriteHeader(&tar.Header{Name: "index.json", Mode: 0o644, Size: int64(len(index))})
	tw.Write([]byte(index))
	tw.Close()
	f.Close()
}

func TestAddonObjects(t *testing.T) {
	dir := t.TempDir()
	writeArchive(t, filepath.Join(dir, "coredns.tar"),
		`{"manifests":[{"annotations":{"io.containerd.image.name":"cairn.local/coredns:v1.2.3"}}]}`)
	k := &config.Kubernetes{ClusterDNS: "10.43.0.10", ClusterDomain: "example.internal"}
	objs, running, skipped, err := addonObjects(k, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(running, ",") != "coredns" {
		t.Errorf("running = %v, want coredns", running)
	}
	if len(skipped) != 2 || !strings.HasPrefix(skipped[0], "local-storage (") || !strings.HasPrefix(skipped[1], "metrics-server (") {
		t.Errorf("skipped = %q", skipped)
	}
	// Every object is one kube.Client.Apply knows how to send.
	accept := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer accept.Close()
	api := kube.New(accept.URL, kube.Options{})
	var image, dns, corefile string
	for _, o := range objs {
		if err := api.Apply(context.Background(), o, fieldManager); err != nil {
			t.Errorf("kind %s: %v", o["kind"], err)
		}
		switch o["kind"] {
		case "Deployment":
			c := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			image = c["image"].(string)
		case "Service":
			dns = o["spec"].(map[string]any)["clusterIP"].(string)
		case "ConfigMap":
			corefile = o["data"].(map[string]any)["Corefile"].(string)
		}
	}
	if image != "cairn.local/coredns:v1.2.3" || dns != "10.43.0.10" || !strings.Contains(corefile, "kubernetes example.internal in-addr.arpa") {
		t.Errorf("image %q, clusterIP %q, Corefile:\n%s", image, dns, corefile)
	}

	k.Disable = []string{"coredns"}
	objs, running, skipped, _ = addonObjects(k, dir, nil)
	if len(objs) != 0 || len(running) != 0 || skipped[0] != "coredns (disabled)" {
		t.Errorf("coredns disabled: %d objects, running %v, skipped %v", len(objs), running, skipped)
	}
}

func TestImageRefRefusesHugeIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.tar")
	writeArchive(t, path, `{"manifests":[{"annotations":{"io.containerd.image.name":"`+strings.Repeat("a", maxIndexJSON)+`"}}]}`)
	if _, err := imageRef(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("imageRef of a huge index.json: %v", err)
	}
}

func TestUnusedAddon(t *testing.T) {
	k := &config.Kubernetes{}
	if a, unused := unusedAddon(k, "coredns.tar"); unused {
		t.Errorf("coredns.tar is unused (%s) in a cluster that runs CoreDNS", a)
	}
	if a, unused := unusedAddon(k, "metrics-server.tar"); unused {
		t.Errorf("metrics-server.tar is unused (%s) in a cluster that runs metrics-server", a)
	}
	if _, unused := unusedAddon(k, "pause.tar"); unused {
		t.Error("pause.tar is unused")
	}
	k.Disable = []string{"coredns"}
	if a, unused := unusedAddon(k, "coredns.tar"); !unused || a != "coredns" {
		t.Errorf("coredns.tar with coredns disabled: %q %v", a, unused)
	}
}

// TestMetricsServerAddon: metrics-server renders with its image and the
// CA it is given in the ConfigMap its Deployment mounts as
// --kubelet-certificate-authority; nothing anywhere says
// --kubelet-insecure-tls; its APIService points at its Service; the
// metrics are readable by view, edit and admin. With no CA it does not
// run, and says why.
func TestMetricsServerAddon(t *testing.T) {
	dir := t.TempDir()
	writeArchive(t, filepath.Join(dir, "metrics-server.tar"),
		`{"manifests":[{"annotations":{"io.containerd.image.name":"cairn.local/metrics-server:v9.9.9"}}]}`)
	ca, err := pki.NewCA("test-kubelet-serving", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k := &config.Kubernetes{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"}
	objs, running, skipped, err := addonObjects(k, dir, ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(running, "metrics-server") {
		t.Fatalf("running = %v, skipped = %q; want metrics-server running", running, skipped)
	}
	if all, _ := json.Marshal(objs); strings.Contains(string(all), "insecure-tls") {
		t.Errorf("the add-ons skip the kubelets' TLS check (--kubelet-insecure-tls)")
	}

	accept := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer accept.Close()
	api := kube.New(accept.URL, kube.Options{})
	byName := map[string]map[string]any{}
	for _, o := range objs {
		if err := api.Apply(context.Background(), o, fieldManager); err != nil {
			t.Errorf("kind %s: %v", o["kind"], err)
		}
		m := o["metadata"].(map[string]any)
		ns, _ := m["namespace"].(string)
		byName[fmt.Sprintf("%s %s/%s", o["kind"], ns, m["name"])] = o
	}
	get := func(key string) map[string]any {
		t.Helper()
		o, ok := byName[key]
		if !ok {
			t.Fatalf("no %s among the add-ons' objects", key)
		}
		return o
	}
	at := func(v any, path ...string) any {
		for _, p := range path {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		return v
	}

	cm := get("ConfigMap kube-system/metrics-server-kubelet-ca")
	if got := at(cm, "data", "ca.crt"); got != string(ca.Cert) {
		t.Errorf("the kubelet CA ConfigMap holds %q, want the CA given:\n%s", got, ca.Cert)
	}

	// The Deployment reads that ConfigMap's ca.crt where its flag says.
	dep := get("Deployment kube-system/metrics-server")
	pod := at(dep, "spec", "template", "spec").(map[string]any)
	c := pod["containers"].([]any)[0].(map[string]any)
	if c["image"] != "cairn.local/metrics-server:v9.9.9" {
		t.Errorf("image %q", c["image"])
	}
	var caFile string
	var args []string
	for _, a := range c["args"].([]any) {
		args = append(args, a.(string))
		if v, ok := strings.CutPrefix(a.(string), "--kubelet-certificate-authority="); ok {
			caFile = v
		}
	}
	if !slices.Contains(args, "--kubelet-preferred-address-types=InternalIP") {
		t.Errorf("args %q do not reach kubelets at their InternalIP", args)
	}
	volume := ""
	for _, m := range c["volumeMounts"].([]any) {
		m := m.(map[string]any)
		if m["mountPath"] == filepath.Dir(caFile) {
			volume = m["name"].(string)
		}
	}
	mounted := false
	for _, v := range pod["volumes"].([]any) {
		v := v.(map[string]any)
		if v["name"] != volume || at(v, "configMap", "name") != "metrics-server-kubelet-ca" {
			continue
		}
		for _, it := range at(v, "configMap", "items").([]any) {
			it := it.(map[string]any)
			mounted = mounted || (it["key"] == "ca.crt" && it["path"] == filepath.Base(caFile))
		}
	}
	if caFile == "" || !mounted {
		t.Errorf("--kubelet-certificate-authority=%q is not the kubelet CA ConfigMap's ca.crt (args %q)", caFile, args)
	}

	svc := get("APIService /v1beta1.metrics.k8s.io")
	if at(svc, "spec", "service", "name") != "metrics-server" || at(svc, "spec", "service", "namespace") != "kube-system" {
		t.Errorf("the APIService points at %v", at(svc, "spec", "service"))
	}
	get("Service kube-system/metrics-server")
	reader := get("ClusterRole /system:aggregated-metrics-reader")
	for _, to := range []string{"view", "edit", "admin"} {
		if at(reader, "metadata", "labels", "rbac.authorization.k8s.io/aggregate-to-"+to) != "true" {
			t.Errorf("the metrics are not readable with the %s role: labels %v", to, at(reader, "metadata", "labels"))
		}
	}

	_, running, skipped, _ = addonObjects(k, dir, nil)
	if slices.Contains(running, "metrics-server") || !slices.ContainsFunc(skipped, func(s string) bool { return strings.HasPrefix(s, "metrics-server (no CA") }) {
		t.Errorf("with no kubelet CA: running %v, skipped %q", running, skipped)
	}
}

// TestKubeletServingCAIsTheSigner: the CA the add-ons trust for kubelets
// is the one kube-controller-manager signs kubelet serving certificates
// with.
func TestKubeletServingCAIsTheSigner(t *testing.T) {
	l := render.Layout{CertDir: "/pki"}
	cmd, err := render.ControllerManager(&config.Config{Kubernetes: config.Kubernetes{Role: "server"}}, render.Node{Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	signer := ""
	for _, a := range cmd.Args {
		if v, ok := strings.CutPrefix(a, "--cluster-signing-kubelet-serving-cert-file="); ok {
			signer = strings.TrimSuffix(filepath.Base(v), ".crt")
		}
	}
	c := pki.Cluster{}
	for _, name := range []string{pki.ServerCA, pki.ClientCA, pki.FrontProxyCA} {
		c[name] = pki.Pair{Cert: []byte(name + " PEM")}
	}
	if got := kubeletServingCA(c); len(got) == 0 || string(got) != string(c[signer].Cert) {
		t.Errorf("the add-ons trust %q for kubelets; kube-controller-manager signs their serving certificates with %q", got, signer)
	}
}
