package node

import (
	"archive/tar"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
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
	objs, running, skipped, err := addonObjects(k, dir)
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
	objs, running, skipped, _ = addonObjects(k, dir)
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
	if a, unused := unusedAddon(k, "metrics-server.tar"); !unused || a != "metrics-server" {
		t.Errorf("metrics-server.tar: %q %v; its manifest is not built yet", a, unused)
	}
	if _, unused := unusedAddon(k, "pause.tar"); unused {
		t.Error("pause.tar is unused")
	}
	k.Disable = []string{"coredns"}
	if a, unused := unusedAddon(k, "coredns.tar"); !unused || a != "coredns" {
		t.Errorf("coredns.tar with coredns disabled: %q %v", a, unused)
	}
}
