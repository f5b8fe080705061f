package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/kube"
)

const localPathRef = "cairn.local/local-path-provisioner:v0.0.30"

// storageObjects renders the add-ons of k with only the local-path
// provisioner's image present, and returns the local-storage objects by
// kind/name.
func storageObjects(t *testing.T, k *config.Kubernetes) (map[string]kube.Object, []string, []string) {
	t.Helper()
	dir := t.TempDir()
	writeArchive(t, filepath.Join(dir, "local-path-provisioner.tar"),
		`{"manifests":[{"annotations":{"io.containerd.image.name":"`+localPathRef+`"}}]}`)
	objs, running, skipped, err := addonObjects(k, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Every object is one kube.Client.Apply knows how to send.
	accept := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer accept.Close()
	api := kube.New(accept.URL, kube.Options{})
	byName := map[string]kube.Object{}
	for _, o := range objs {
		if err := api.Apply(context.Background(), o, fieldManager); err != nil {
			t.Errorf("kind %s: %v", o["kind"], err)
		}
		m := o["metadata"].(map[string]any)
		byName[o["kind"].(string)+"/"+m["name"].(string)] = o
	}
	return byName, running, skipped
}

// at walks a decoded object by keys (strings) and list indexes (ints).
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		if o, ok := v.(kube.Object); ok {
			v = map[string]any(o)
		}
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a mapping at %q", path, p)
			}
			v = m[p]
		case int:
			l, ok := v.([]any)
			if !ok || p >= len(l) {
				t.Fatalf("%v: no item %d", path, p)
			}
			v = l[p]
		}
	}
	return v
}

// TestLocalStorageAddon: the local-storage add-on as a user of the
// cluster meets it: the default StorageClass local-path, binding at the
// first consumer, volumes under default-local-storage-path, made by the
// helper in the provisioner's own image.
func TestLocalStorageAddon(t *testing.T) {
	for _, c := range []struct {
		name, key, want string
	}{
		{"default", "", "/var/lib/cairn/storage"},
		{"default-local-storage-path", "/var/lib/cairn/volumes", "/var/lib/cairn/volumes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := &config.Kubernetes{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", DefaultLocalStoragePath: c.key}
			objs, running, _ := storageObjects(t, k)
			if !slices.Contains(running, "local-storage") {
				t.Fatalf("running %v; want local-storage", running)
			}

			sc, ok := objs["StorageClass/local-path"]
			if !ok {
				t.Fatalf("no StorageClass local-path among %d objects", len(objs))
			}
			if got := at(t, sc, "metadata", "annotations", "storageclass.kubernetes.io/is-default-class"); got != "true" {
				t.Errorf("local-path's is-default-class annotation is %v; want \"true\" (a claim without storageClassName gets it)", got)
			}
			for f, want := range map[string]string{"provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"} {
				if sc[f] != want {
					t.Errorf("StorageClass local-path: %s %v, want %s", f, sc[f], want)
				}
			}

			cm, ok := objs["ConfigMap/local-path-config"]
			if !ok {
				t.Fatal("no ConfigMap local-path-config")
			}
			var cfg struct {
				NodePathMap []struct {
					Node  string   `json:"node"`
					Paths []string `json:"paths"`
				} `json:"nodePathMap"`
				SetupCommand    string `json:"setupCommand"`
				TeardownCommand string `json:"teardownCommand"`
			}
			raw, _ := at(t, cm, "data", "config.json").(string)
			if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
				t.Fatalf("config.json is not JSON (%v):\n%s", err, raw)
			}
			if len(cfg.NodePathMap) != 1 || cfg.NodePathMap[0].Node != "DEFAULT_PATH_FOR_NON_LISTED_NODES" ||
				len(cfg.NodePathMap[0].Paths) != 1 || cfg.NodePathMap[0].Paths[0] != c.want {
				t.Errorf("config.json's nodePathMap: %+v; want every node at %s", cfg.NodePathMap, c.want)
			}
			if cfg.SetupCommand != "/usr/bin/local-path-helper" || cfg.TeardownCommand != "/usr/bin/local-path-helper" {
				t.Errorf("setupCommand %q, teardownCommand %q; want the helper in the image, /usr/bin/local-path-helper", cfg.SetupCommand, cfg.TeardownCommand)
			}

			// The helper pod template, as the provisioner reads it: its
			// logs are read from the container named helper-pod.
			var helper map[string]any
			if err := yaml.Unmarshal([]byte(at(t, cm, "data", "helperPod.yaml").(string)), &helper); err != nil {
				t.Fatalf("helperPod.yaml: %v", err)
			}
			hc := at(t, helper, "spec", "containers", 0)
			if at(t, hc, "name") != "helper-pod" || at(t, hc, "image") != localPathRef {
				t.Errorf("the helper container is %v running %v; want helper-pod running %s", at(t, hc, "name"), at(t, hc, "image"), localPathRef)
			}
			if at(t, helper, "spec", "automountServiceAccountToken") != false {
				t.Error("the helper pod gets the provisioner's token; it needs no API access")
			}
			if at(t, hc, "securityContext", "runAsUser") != 0 {
				t.Error("the helper does not run as root; it makes and removes directories in a root-owned one")
			}

			d := objs["Deployment/local-path-provisioner"]
			pc := at(t, d, "spec", "template", "spec", "containers", 0)
			if at(t, pc, "image") != localPathRef {
				t.Errorf("the provisioner runs %v; want %s", at(t, pc, "image"), localPathRef)
			}
			args := fmt.Sprint(at(t, pc, "args"))
			for _, want := range []string{"start", "--config=/etc/config/config.json", "--helper-pod-file=/etc/config/helperPod.yaml",
				"--service-account-name=local-path-provisioner-service-account"} {
				if !strings.Contains(args, want) {
					t.Errorf("the provisioner's args %s lack %s", args, want)
				}
			}
		})
	}
}

// TestLocalStorageRBAC: the provisioner's grants are what it calls, no
// more: no wildcard, no Secrets or ConfigMaps, pods only in its own
// namespace.
func TestLocalStorageRBAC(t *testing.T) {
	objs, _, _ := storageObjects(t, &config.Kubernetes{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"})
	for _, name := range []string{"ClusterRole/local-path-provisioner-role", "Role/local-path-provisioner-role"} {
		o, ok := objs[name]
		if !ok {
			t.Fatalf("no %s", name)
		}
		for _, r := range at(t, o, "rules").([]any) {
			for _, f := range []string{"apiGroups", "resources", "verbs"} {
				for _, v := range at(t, r, f).([]any) {
					s := v.(string)
					if s == "*" || s == "secrets" || s == "configmaps" || (s == "pods" && o["kind"] == "ClusterRole") {
						t.Errorf("%s grants %s %q", name, f, s)
					}
				}
			}
		}
	}
	if ns := at(t, objs["Role/local-path-provisioner-role"], "metadata", "namespace"); ns != "kube-system" {
		t.Errorf("the helper pods' Role is in %v; want kube-system, where the provisioner runs", ns)
	}
}

// TestLocalStorageDisabled: disable: [local-storage] costs nothing: no
// objects, no image import (the helper is in the provisioner's image), and
// the console line says why.
func TestLocalStorageDisabled(t *testing.T) {
	k := &config.Kubernetes{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local"}
	if a, unused := unusedAddon(k, "local-path-provisioner.tar"); unused {
		t.Errorf("local-path-provisioner.tar is unused (%s) in a cluster that runs local-storage", a)
	}
	k.Disable = []string{"local-storage"}
	objs, running, skipped := storageObjects(t, k)
	if len(objs) != 0 || slices.Contains(running, "local-storage") {
		t.Errorf("local-storage disabled: %d objects, running %v", len(objs), running)
	}
	if !slices.Contains(skipped, "local-storage (disabled)") {
		t.Errorf("skipped %q; want local-storage (disabled)", skipped)
	}
	if a, unused := unusedAddon(k, "local-path-provisioner.tar"); !unused || a != "local-storage" {
		t.Errorf("local-path-provisioner.tar with local-storage disabled: %q %v; want it not imported", a, unused)
	}
}
