//go:build qemu

package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
)

// keepApp is a StatefulSet of one pod, data-0, whose claim state-data-0
// names no StorageClass (the default's to give): test/e2eapp writes a line
// to /data/file, or says it found one there, then waits.
const keepApp = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: data, namespace: default}
spec:
  serviceName: data
  replicas: 1
  selector: {matchLabels: {app: data}}
  template:
    metadata: {labels: {app: data}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: app
          image: ` + appRef + `
          imagePullPolicy: Never
          command: ["/app", "keep", "/data/file"]
          volumeMounts: [{name: state, mountPath: /data}]
  volumeClaimTemplates:
    - metadata: {name: state}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 64Mi}}
`

// storageWait bounds each step of TestLocalStorage (a claim bound, a pod
// running, a volume removed) on a loaded 2-core machine: the provisioner
// starts, then a helper pod per volume.
const storageWait = 5 * time.Minute

// reKeep is e2eapp keep's line.
var reKeep = regexp.MustCompile(`(?m)^(wrote|found) /data/file: (written by \S+ at \d+)$`)

// inRoot is path inside the node's root file system, as the host reaches
// it: through its PID 1 (the launcher's child).
func (n *containerNode) inRoot(t *testing.T, path string) string {
	t.Helper()
	pid := n.cmd.Process.Pid
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(kids))
	if err != nil || len(f) == 0 {
		t.Fatalf("%s: no PID 1 under the launcher %d: %v", n.name, pid, err)
	}
	return filepath.Join("/proc", f[0], "root", path)
}

// TestLocalStorage: k3s's local-path storage, as a user meets it. One
// server on embedded etcd and one agent, flannel between them; the server
// runs the local-storage add-on and local-path is the only default
// StorageClass (WaitForFirstConsumer, Delete). A StatefulSet whose claim
// names no class gets a volume from it, a directory under
// /var/lib/cairn/storage on the pod's node (the file the pod wrote is
// there), made by the helper in the provisioner's image; the pod is
// deleted and its replacement, on the same node, reads the same line.
// Deleting the claim removes the volume and its directory. Prints the
// time from both nodes Ready to the claim Bound.
func TestLocalStorage(t *testing.T) {
	ns := bridgeNS(t)
	img := appImage(t)
	s1 := startPeer(t, ns, "s1", withImage(t, nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, "")), img))
	s1.expect(t, controlPlane, reServerReady)
	a1 := startPeer(t, ns, "a1", withImage(t, nodeRoot(t, agentConfig("a1", "192.168.77.21", clusterToken, "https://192.168.77.11:6443")), img))
	nodes := map[string]*containerNode{"s1": s1, "a1": a1}
	for _, n := range nodes {
		n.expect(t, nodeReady, `node: (\S+) is Ready`)
	}
	ready := time.Now()
	if m := s1.expect(t, time.Minute, `node: add-ons: ([^;]*)`); !slices.Contains(strings.Split(m[1], ", "), "local-storage") {
		t.Fatalf("s1 does not run local-storage: %s", m[0])
	}

	tok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: "https://192.168.77.11:6443", Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, kcData, 0o600)
	get := func(args ...string) string {
		t.Helper()
		out, err := kubectl(t, ns, kc, append([]string{"get"}, args...)...)
		if err != nil {
			t.Fatalf("kubectl get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	// poll is get for a loop that waits: a failed call is an empty answer.
	poll := func(args ...string) string {
		t.Helper()
		out, err := kubectl(t, ns, kc, append([]string{"get"}, args...)...)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}

	// local-path is the one default class, binding at the first consumer.
	classes := get("storageclass", "-o", `jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.storageclass\.kubernetes\.io/is-default-class} {.provisioner} {.volumeBindingMode} {.reclaimPolicy}{"\n"}{end}`)
	if classes != "local-path true rancher.io/local-path WaitForFirstConsumer Delete" {
		t.Errorf("the StorageClasses are:\n%s\nwant only local-path, the default, rancher.io/local-path, WaitForFirstConsumer, Delete", classes)
	}

	manifest := filepath.Join(t.TempDir(), "data.yaml")
	os.WriteFile(manifest, []byte(keepApp), 0o644)
	applied := time.Now()
	if out, err := kubectl(t, ns, kc, "apply", "-f", manifest); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	var claim []string // class, phase, volume
	for deadline := time.Now().Add(storageWait); ; time.Sleep(time.Second) {
		claim = strings.Fields(poll("pvc", "state-data-0", "--ignore-not-found", "-o", `jsonpath={.spec.storageClassName} {.status.phase} {.spec.volumeName}`))
		if len(claim) == 3 && claim[1] == "Bound" {
			break
		}
		if time.Now().After(deadline) {
			desc, _ := kubectl(t, ns, kc, "describe", "pvc", "state-data-0")
			logs, _ := kubectl(t, ns, kc, "-n", "kube-system", "logs", "deployment/local-path-provisioner", "--tail", "30")
			t.Fatalf("the claim state-data-0 is not Bound %s after the StatefulSet was applied: %q\n%s\nthe provisioner's log:\n%s", storageWait, claim, desc, logs)
		}
	}
	bound := time.Now()
	if claim[0] != "local-path" {
		t.Errorf("the claim that names no class got %q; want the default, local-path", claim[0])
	}

	// The pod, its node, what it wrote.
	pod := func(notUID string) (uid, node, line string) {
		t.Helper()
		for deadline := time.Now().Add(storageWait); ; time.Sleep(2 * time.Second) {
			f := strings.Fields(poll("pod", "data-0", "--ignore-not-found", "-o", `jsonpath={.metadata.uid} {.spec.nodeName} {.status.phase}`))
			if len(f) == 3 && f[0] != notUID && f[2] == "Running" {
				if out, err := kubectl(t, ns, kc, "logs", "data-0"); err == nil {
					if m := reKeep.FindStringSubmatch(out); m != nil {
						return f[0], f[1], m[1] + " " + m[2]
					}
				}
			}
			if time.Now().After(deadline) {
				desc, _ := kubectl(t, ns, kc, "describe", "pod", "data-0")
				t.Fatalf("no pod data-0 running and saying what it found in /data/file after %s (%q):\n%s", storageWait, f, desc)
			}
		}
	}
	uid, node, first := pod("")
	running := time.Now()
	written, ok := strings.CutPrefix(first, "wrote ")
	if !ok {
		t.Fatalf("the first pod says %q; want it to write /data/file on a new volume", first)
	}

	// The volume is a directory under /var/lib/cairn/storage on the
	// pod's node, holding the file.
	pv := strings.Fields(get("pv", claim[2], "-o", `jsonpath={.spec.hostPath.path} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}`))
	if len(pv) != 2 || !strings.HasPrefix(pv[0], "/var/lib/cairn/storage/") || pv[1] != node {
		t.Fatalf("the volume %s is %q; want a directory under /var/lib/cairn/storage on %s, the pod's node", claim[2], pv, node)
	}
	n, ok := nodes[node]
	if !ok {
		t.Fatalf("the pod runs on %q, neither s1 nor a1", node)
	}
	dir := n.inRoot(t, pv[0])
	if data, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || strings.TrimSpace(string(data)) != written {
		t.Errorf("%s:%s/file holds %q (%v); want the pod's line %q", node, pv[0], data, err, written)
	}

	// The pod deleted: its replacement reads the line.
	if out, err := kubectl(t, ns, kc, "delete", "pod", "data-0", "--wait=true"); err != nil {
		t.Fatalf("kubectl delete pod data-0: %v\n%s", err, out)
	}
	deleted := time.Now()
	_, node2, second := pod(uid)
	if second != "found "+written || node2 != node {
		t.Errorf("the replacement on %s says %q; want it on %s, finding %q", node2, second, node, written)
	}
	t.Logf("figures: local-path storage: both nodes Ready to the claim Bound %s (the StatefulSet applied %s after Ready; applied to Bound %s, to the pod running with its file %s); pod deleted to its replacement reading the file %s (container platform, embedded etcd)",
		secs(bound.Sub(ready)), secs(applied.Sub(ready)), secs(bound.Sub(applied)), secs(running.Sub(applied)), secs(time.Since(deleted)))

	// reclaimPolicy Delete: the claim gone, the helper removes the directory.
	for _, args := range [][]string{{"delete", "statefulset", "data", "--wait=true"}, {"delete", "pvc", "state-data-0", "--wait=true"}} {
		if out, err := kubectl(t, ns, kc, args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for deadline := time.Now().Add(storageWait); ; time.Sleep(2 * time.Second) {
		if out, err := kubectl(t, ns, kc, "get", "pv", claim[2], "--ignore-not-found", "-o", "name"); err == nil && strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			logs, _ := kubectl(t, ns, kc, "-n", "kube-system", "logs", "deployment/local-path-provisioner", "--tail", "30")
			t.Fatalf("the volume %s is still there %s after its claim was deleted; the provisioner's log:\n%s", claim[2], storageWait, logs)
		}
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s:%s is still there after its volume was deleted (%v)", node, pv[0], err)
	}

	noSecretOnConsole(t, []*containerNode{s1, a1}, clusterToken)
}
