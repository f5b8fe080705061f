//go:build qemu

package test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/qemu"
)

// manifestLabel is the label init/node/manifests puts on every object it
// applies, naming the manifest.
const manifestLabel = "cairn-os.github.io/manifest"

// demoManifest is kubernetes.manifests' entry demo: the Namespace demo,
// its ConfigMap settings with color, and demo/old when withOld.
func demoManifest(color string, withOld bool) string {
	s := `  manifests:
    - name: demo
      content: |
        apiVersion: v1
        kind: Namespace
        metadata: {name: demo}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings, namespace: demo}
        data: {color: ` + color + `}
`
	if withOld {
		s += `        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: old, namespace: demo}
        data: {stale: "yes"}
`
	}
	return s
}

// brokenManifest is an entry of kubernetes.manifests the config accepts
// and the apiserver refuses in part: a ConfigMap in a namespace that does
// not exist, next to one it takes.
const brokenManifest = `    - name: broken
      content: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: fine, namespace: default}
        data: {ok: "yes"}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: lost, namespace: nowhere}
        data: {ok: "no"}
`

// extraFile writes the manifest file extra: ConfigMap default/extra.
var extraFile = "write_files:\n" + writeFileEntry("/var/lib/cairn/manifests/extra.yaml", "0644", `apiVersion: v1
kind: ConfigMap
metadata: {name: extra}
data: {from: file}
`)

// TestManifests: one server on PostgreSQL (the container platform's
// STATE is a tmpfs, so embedded etcd would not survive the restarts)
// booted three times with changed manifests, as a user sees them through
// kubectl and on the console.
//
//  1. kubernetes.manifests' demo (Namespace demo, ConfigMaps demo/settings
//     color blue and demo/old) and a file written by write_files to
//     /var/lib/cairn/manifests/extra.yaml (ConfigMap default/extra) are
//     applied, labelled with their manifest's name, each with its
//     `manifests: applied` line; the Lease kube-system/cairn-manifests is
//     given back (no holder). A manifest broken, a ConfigMap in a namespace
//     that does not exist: exactly one console line naming it over two 30 s
//     reads of the directory, its other ConfigMap applied.
//  2. Restarted with color green and demo/old dropped, and broken gone:
//     demo/settings says green, demo/old is deleted, and so is broken's
//     default/fine, each said on the console.
//  3. Restarted with demo gone from the config and `disable: [extra]`: the
//     Namespace demo and its ConfigMap, and default/extra, are deleted,
//     and the console says so.
//
// No console shows the token or the datastore's password.
func TestManifests(t *testing.T) {
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	const server = "https://192.168.77.11:6443"
	var nodes []*containerNode
	boot := func(extra ...string) *containerNode {
		t.Helper()
		n := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, pg.endpoint(), extra...)))
		nodes = append(nodes, n)
		n.expect(t, controlPlane, reServerReady)
		return n
	}

	// Boot 1.
	s1 := boot(demoManifest("blue", true)+brokenManifest, extraFile)
	tok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: server, Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, kcData, 0o600)

	const applyWait = 3 * time.Minute
	s1.expect(t, applyWait, `manifests: applied manifests\[demo\]: 3 objects$`)
	s1.expect(t, applyWait, `manifests: applied /var/lib/cairn/manifests/extra\.yaml: 1 object$`)
	s1.expect(t, applyWait, `manifests: manifests\[broken\]: ConfigMap nowhere/lost: .*nowhere.*; the rest of it is applied, and it is tried again every 30s$`)
	brokenSeen := time.Now()
	manifestFigures(t, s1, "boot 1", `manifests: applied manifests\[demo\]`, `manifests: applied /var/lib/cairn/manifests/extra\.yaml`)

	for _, o := range []struct{ ns, name, manifest, key, want string }{
		{"demo", "settings", "demo", "color", "blue"},
		{"demo", "old", "demo", "stale", "yes"},
		{"default", "extra", "extra", "from", "file"},
		{"default", "fine", "broken", "ok", "yes"},
	} {
		cm := waitObject(t, ns, kc, time.Minute, "configmap", o.ns, o.name)
		if cm.Metadata.Labels[manifestLabel] != o.manifest {
			t.Errorf("ConfigMap %s/%s has the label %s=%q; want %q", o.ns, o.name, manifestLabel, cm.Metadata.Labels[manifestLabel], o.manifest)
		}
		if cm.Data[o.key] != o.want {
			t.Errorf("ConfigMap %s/%s has %s=%q; want %q", o.ns, o.name, o.key, cm.Data[o.key], o.want)
		}
	}
	if nsObj := waitObject(t, ns, kc, time.Minute, "namespace", "", "demo"); nsObj.Metadata.Labels[manifestLabel] != "demo" {
		t.Errorf("Namespace demo has the label %s=%q; want demo", manifestLabel, nsObj.Metadata.Labels[manifestLabel])
	}
	if _, ok := getObject(t, ns, kc, "configmap", "nowhere", "lost"); ok {
		t.Errorf("ConfigMap nowhere/lost exists; its namespace does not")
	}

	// The Lease is given back after each round (holderIdentity empty): a
	// user sees no server holding it once the manifests are applied. The
	// broken manifest is tried every 30 s, taking it for a moment.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l, ok := getObject(t, ns, kc, "lease", "kube-system", "cairn-manifests")
		if !ok {
			t.Fatalf("no Lease kube-system/cairn-manifests after the manifests were applied")
		}
		if l.Spec.HolderIdentity == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Lease kube-system/cairn-manifests is still held by %q 2 minutes after the manifests were applied", l.Spec.HolderIdentity)
		}
		time.Sleep(2 * time.Second)
	}

	// The broken manifest: one line over at least two more reads.
	if d := 65*time.Second - time.Since(brokenSeen); d > 0 {
		time.Sleep(d)
	}
	if k := countLines(s1, `manifests: manifests\[broken\]`); k != 1 {
		t.Errorf("%d console lines about manifests[broken] over 65 s; want exactly 1:\n%s", k, s1.tail(40))
	}
	s1.stop(t)

	// Boot 2: green, demo/old dropped, broken gone from the config.
	s1 = boot(demoManifest("green", false), extraFile)
	s1.expect(t, applyWait, `manifests: applied manifests\[demo\]: 2 objects; deleted 1 it no longer holds: ConfigMap demo/old$`)
	s1.expect(t, applyWait, `manifests: manifests\[broken\] is gone from every server: deleted its 1 object: ConfigMap default/fine$`)
	manifestFigures(t, s1, "boot 2", `manifests: applied manifests\[demo\]`)
	if cm := waitObject(t, ns, kc, time.Minute, "configmap", "demo", "settings"); cm.Data["color"] != "green" {
		t.Errorf("ConfigMap demo/settings has color=%q after the restart; want green", cm.Data["color"])
	}
	waitGone(t, ns, kc, time.Minute, "configmap", "demo", "old")
	waitGone(t, ns, kc, time.Minute, "configmap", "default", "fine")
	if _, ok := getObject(t, ns, kc, "configmap", "default", "extra"); !ok {
		t.Errorf("ConfigMap default/extra is gone after a restart that still writes its file")
	}
	s1.stop(t)

	// Boot 3: demo gone from the config; extra disabled (on a disk the
	// file stays on STATE; here STATE is a tmpfs and the file is gone too).
	s1 = boot("  disable: [extra]")
	s1.expect(t, applyWait, `manifests: manifests\[demo\] is gone from every server: deleted its 2 objects: ConfigMap demo/settings, Namespace demo$`)
	s1.expect(t, applyWait, `manifests: /var/lib/cairn/manifests/extra\.yaml is disabled: deleted its 1 object: ConfigMap default/extra$`)
	waitGone(t, ns, kc, time.Minute, "configmap", "demo", "settings")
	waitGone(t, ns, kc, time.Minute, "configmap", "default", "extra")
	// The namespace controller ends the Namespace once its contents are
	// gone; an aggregated API that does not answer (metrics-server with
	// no pod network) can keep it Terminating, which is deleted for a
	// user all the same.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		o, ok := getObject(t, ns, kc, "namespace", "", "demo")
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			if o.Metadata.DeletionTimestamp == "" {
				t.Errorf("Namespace demo is not being deleted 2 minutes after its manifest was removed")
			} else {
				t.Logf("Namespace demo is still Terminating after 2 minutes: %s", o.Status.Conditions)
			}
			break
		}
		time.Sleep(2 * time.Second)
	}
	s1.stop(t)

	noSecretOnConsole(t, nodes, clusterToken, pgPassword)
}

// kubeObject is what TestManifests reads of an object.
type kubeObject struct {
	Metadata struct {
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp string            `json:"deletionTimestamp"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
	Spec struct {
		HolderIdentity string `json:"holderIdentity"`
	} `json:"spec"`
	Status struct {
		Conditions json.RawMessage `json:"conditions"`
	} `json:"status"`
}

// getObject reads one object with kubectl; false when there is none.
func getObject(t *testing.T, ns *qemu.Netns, kc, kind, namespace, name string) (kubeObject, bool) {
	t.Helper()
	args := []string{"get", kind, name, "-o", "json", "--ignore-not-found"}
	if namespace != "" {
		args = append(args, "-n", namespace)
	}
	var o kubeObject
	for try := 0; ; try++ {
		out, err := kubectl(t, ns, kc, args...)
		if err == nil {
			if strings.TrimSpace(out) == "" {
				return o, false
			}
			if err := json.Unmarshal([]byte(out), &o); err != nil {
				t.Fatalf("kubectl get %s %s/%s: %v\n%s", kind, namespace, name, err, out)
			}
			return o, true
		}
		// The apiserver may be busy on this 2-core machine: a few tries.
		if try == 4 {
			t.Fatalf("kubectl get %s %s/%s: %v\n%s", kind, namespace, name, err, out)
		}
		time.Sleep(3 * time.Second)
	}
}

// waitObject polls until the object exists.
func waitObject(t *testing.T, ns *qemu.Netns, kc string, d time.Duration, kind, namespace, name string) kubeObject {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if o, ok := getObject(t, ns, kc, kind, namespace, name); ok {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s %s/%s within %s", kind, namespace, name, d)
		}
		time.Sleep(2 * time.Second)
	}
}

// waitGone polls until the object is gone.
func waitGone(t *testing.T, ns *qemu.Netns, kc string, d time.Duration, kind, namespace, name string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, ok := getObject(t, ns, kc, kind, namespace, name); !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s %s/%s is still there %s after its manifest stopped holding it", kind, namespace, name, d)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// reStamp is a console line's time, after the init's "cairn: " prefix.
var reStamp = regexp.MustCompile(`^cairn: \[\s*(\d+\.\d+)\] (.*)$`)

// stamp is the console time of the first line matching re, and whether
// there is one.
func stamp(n *containerNode, re string) (float64, bool) {
	r := regexp.MustCompile(re)
	n.mu.Lock()
	lines := n.lines
	n.mu.Unlock()
	for _, l := range lines {
		if m := reStamp.FindStringSubmatch(l); m != nil && r.MatchString(m[2]) {
			s, err := strconv.ParseFloat(m[1], 64)
			return s, err == nil
		}
	}
	return 0, false
}

// countLines counts the console lines matching re.
func countLines(n *containerNode, re string) int {
	r := regexp.MustCompile(re)
	n.mu.Lock()
	lines := n.lines
	n.mu.Unlock()
	k := 0
	for _, l := range lines {
		if m := reStamp.FindStringSubmatch(l); m != nil && r.MatchString(m[2]) {
			k++
		}
	}
	return k
}

// manifestFigures prints the time from the config loaded to each applied
// line, by the console's clock.
func manifestFigures(t *testing.T, n *containerNode, what string, applied ...string) {
	t.Helper()
	loaded, ok := stamp(n, `^config: loaded from`)
	if !ok {
		t.Logf("figures: %s: no `config: loaded` line to measure from", what)
		return
	}
	for _, re := range applied {
		if at, ok := stamp(n, re); ok {
			t.Logf("figures: %s: config loaded to %s: %.1fs (container platform, PostgreSQL)", what, strings.NewReplacer(`\`, "").Replace(strings.TrimPrefix(re, "manifests: ")), at-loaded)
		}
	}
}
