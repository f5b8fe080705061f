//go:build linux

package main

// Pod start (issue #26): the time from the POST of a pause pod to the
// apiserver to its phase Running and to its Ready condition, as the
// benchmark sees them on a watch of the pod, for a series of pods one
// after another on a node: pinned with spec.nodeName (the scheduler out
// of the measure), then through the scheduler (a node affinity to the
// same node). Each pod is deleted, and gone, before the next.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

const (
	podNamespace = "default"
	// podLabel marks the benchmark's pods: a run removes those an
	// interrupted one left behind.
	podLabel = "cairn.bench/podstart"
	// podDeleteTimeout bounds the wait for a deleted pod to be gone.
	podDeleteTimeout = time.Minute
	// versionsEnv pins the components, the pause image among them.
	versionsEnv = "image/components/versions.env"
)

// podStart is a cluster's pod start figures.
type podStart struct {
	Image              string
	Started            time.Time
	LoadStart, LoadEnd [3]float64
	Series             []podSeries
	// Errors are what kept a series from starting.
	Errors []string `json:",omitempty"`
}

// podSeries is one series of pods on one node.
type podSeries struct {
	Node, Role string
	Scheduler  bool // through the scheduler; else pinned with spec.nodeName
	Wanted     int
	// Running and Ready are the seconds from each pod's POST to its
	// phase Running and its Ready condition, for the pods that got there.
	Running, Ready []float64
	// Failures say which pod did not get there, and why.
	Failures []string `json:",omitempty"`
}

// pauseImageOf is the pause image versions.env pins (PAUSE_IMAGE=...).
func pauseImageOf(env string) (string, error) {
	for l := range strings.SplitSeq(env, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "PAUSE_IMAGE="); ok {
			if v = strings.Trim(strings.TrimSpace(v), `"'`); v != "" {
				return v, nil
			}
		}
	}
	return "", errors.New("no PAUSE_IMAGE=")
}

// podManifest is the pause pod: pinned to node, or through the scheduler
// with an affinity to it. It tolerates every taint (a server may carry
// one) and never pulls: the image is in every node's image.
func podManifest(name, node, image string, scheduler bool) map[string]any {
	spec := map[string]any{
		"containers": []any{map[string]any{
			"name": "pause", "image": image, "imagePullPolicy": "Never",
		}},
		"tolerations": []any{map[string]any{"operator": "Exists"}},
	}
	if scheduler {
		spec["affinity"] = map[string]any{"nodeAffinity": map[string]any{
			"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
				"nodeSelectorTerms": []any{map[string]any{
					"matchFields": []any{map[string]any{"key": "metadata.name", "operator": "In", "values": []string{node}}},
				}},
			},
		}}
	} else {
		spec["nodeName"] = node
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": podNamespace, "labels": map[string]string{podLabel: "1"}},
		"spec":     spec,
	}
}

// podStatus is what the benchmark reads of a Pod.
type podStatus struct {
	RV, UID string
	Phase   string
	Ready   bool
	// Why is the most telling reason it is not (yet) Running and Ready.
	Why string
}

func parsePodStatus(raw []byte) (podStatus, error) {
	type reason struct{ Reason, Message string }
	var p struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
			UID             string `json:"uid"`
		} `json:"metadata"`
		Status struct {
			Phase           string `json:"phase"`
			Reason, Message string
			Conditions      []struct{ Type, Status, Reason, Message string } `json:"conditions"`
			Containers      []struct {
				State struct {
					Waiting    *reason `json:"waiting"`
					Terminated *struct {
						Reason, Message string
						ExitCode        int `json:"exitCode"`
					} `json:"terminated"`
				} `json:"state"`
			} `json:"containerStatuses"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return podStatus{}, fmt.Errorf("a Pod that does not parse: %w", err)
	}
	st := podStatus{RV: p.Metadata.ResourceVersion, UID: p.Metadata.UID, Phase: p.Status.Phase}
	if st.Phase == "" {
		st.Phase = "Pending"
	}
	say := func(r, m string) string {
		if m == "" {
			return r
		}
		return r + ": " + clip(m, 200)
	}
	var why []string
	for _, c := range p.Status.Containers {
		if t := c.State.Terminated; t != nil {
			why = append(why, say(fmt.Sprintf("exited %d, %s", t.ExitCode, t.Reason), t.Message))
		}
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			why = append(why, say(w.Reason, w.Message))
		}
	}
	if p.Status.Reason != "" {
		why = append(why, say(p.Status.Reason, p.Status.Message))
	}
	var notReady string
	for _, c := range p.Status.Conditions {
		switch {
		case c.Type == "Ready" && c.Status == "True":
			st.Ready = true
		case c.Type == "Ready" && c.Reason != "":
			notReady = say(c.Reason, c.Message)
		case c.Type == "PodScheduled" && c.Status == "False":
			why = append(why, say(c.Reason, c.Message))
		}
	}
	if len(why) == 0 && notReady != "" {
		why = append(why, notReady)
	}
	st.Why = strings.Join(why, "; ")
	return st, nil
}

// lastEvent is the newest of a list of Events, "Warning
// FailedCreatePodSandBox: message", or "".
func lastEvent(raw []byte) string {
	var l struct {
		Items []struct {
			Metadata struct {
				CreationTimestamp time.Time `json:"creationTimestamp"`
			} `json:"metadata"`
			Type, Reason, Message string
			LastTimestamp         time.Time `json:"lastTimestamp"`
			EventTime             time.Time `json:"eventTime"`
		} `json:"items"`
	}
	if json.Unmarshal(raw, &l) != nil {
		return ""
	}
	var newest time.Time
	line := ""
	for _, e := range l.Items {
		at := e.LastTimestamp
		for _, t := range []time.Time{e.EventTime, e.Metadata.CreationTimestamp} {
			if t.After(at) {
				at = t
			}
		}
		if line == "" || !at.Before(newest) {
			newest, line = at, strings.TrimSpace(e.Type+" "+e.Reason)+": "+clip(strings.TrimSpace(e.Message), 300)
		}
	}
	return line
}

// podFailure is the line for a pod that did not get to Running and Ready:
// what happened, the phase and why as the apiserver last said, and the
// pod's last event.
func podFailure(pod, node, what string, st podStatus, event string) string {
	s := fmt.Sprintf("pod %s on %s: %s; phase %s", pod, node, what, st.Phase)
	if st.Why != "" {
		s += " (" + st.Why + ")"
	}
	if event == "" {
		event = "none"
	}
	return s + "; last event: " + event
}

// medianMax are the median and the largest of xs (0, 0 for none).
func medianMax(xs []float64) (median, largest float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1]
}

// podNodes are the nodes pod start is measured on: the first server and
// the first agent.
func podNodes(cl *cluster) (out []int) {
	seen := map[string]bool{}
	for i, n := range cl.Nodes {
		if !seen[n.Role] {
			seen[n.Role] = true
			out = append(out, i)
		}
	}
	return out
}

// measurePodStart runs the series on cl: on each node of podNodes,
// pinned, then through the scheduler. A series stops at its first pod
// that does not get to Ready (the next would wait as long, for the same
// reason); an interrupt stops it all, its pod deleted.
func measurePodStart(ctx context.Context, o *options, cl *cluster) *podStart {
	ps := &podStart{Image: o.podImage, Started: time.Now().UTC().Truncate(time.Second), LoadStart: loadavg()}
	defer func() { ps.LoadEnd = loadavg() }()
	kc, err := readPrefix(filepath.Join(cl.dir, "kubeconfig"), 1<<20)
	var creds *kube.Credentials
	if err == nil {
		creds, err = kube.ParseKubeconfig(kc)
	}
	if err != nil {
		ps.Errors = append(ps.Errors, "the admin kubeconfig: "+err.Error())
		return ps
	}
	api := creds.Client(kube.Options{Timeout: 30 * time.Second, Retries: 3})
	defer api.CloseIdleConnections()
	if err := podsReady(ctx, api, o.podTimeout); err != nil {
		ps.Errors = append(ps.Errors, err.Error())
		return ps
	}
	for _, i := range podNodes(cl) {
		for _, sched := range []bool{false, true} {
			n := cl.Nodes[i]
			s := podSeries{Node: n.Name, Role: n.Role, Scheduler: sched, Wanted: o.pods}
			podSeriesOn(ctx, o, api, n.ID, &s)
			ps.Series = append(ps.Series, s)
			if ctx.Err() != nil {
				return ps
			}
		}
	}
	return ps
}

// podsReady waits until the namespace's default ServiceAccount is there
// (a pod is refused before: a fresh cluster's controller makes it) and
// removes the pods an interrupted run left.
func podsReady(ctx context.Context, api *kube.Client, timeout time.Duration) error {
	sa := "/api/v1/namespaces/" + podNamespace + "/serviceaccounts/default"
	deadline := time.Now().Add(timeout)
	for {
		err := api.Get(ctx, sa, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no pod measured: the ServiceAccount %s/default is not there after %s: %v", podNamespace, timeout, err)
		}
		supervise.Sleep(ctx, time.Second)
	}
	var left struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := api.Get(ctx, "/api/v1/namespaces/"+podNamespace+"/pods?labelSelector="+url.QueryEscape(podLabel), &left); err != nil {
		return fmt.Errorf("no pod measured: listing the pods of an earlier run: %w", err)
	}
	for _, p := range left.Items {
		logf("removing pod %s, left by an earlier run", p.Metadata.Name)
		if err := deletePod(api, p.Metadata.Name); err != nil {
			return fmt.Errorf("no pod measured: %w", err)
		}
	}
	return nil
}

// podSeriesOn starts s.Wanted pods on the node, one after another.
func podSeriesOn(ctx context.Context, o *options, api *kube.Client, id string, s *podSeries) {
	mode := "pinned"
	if s.Scheduler {
		mode = "sched"
	}
	for i := 1; i <= s.Wanted && ctx.Err() == nil; i++ {
		name := fmt.Sprintf("podstart-%s-%s-%d", id, mode, i)
		run, ready, fail := startPod(ctx, o, api, name, s.Node, s.Scheduler)
		if run > 0 {
			s.Running = append(s.Running, run.Seconds())
		}
		if ready > 0 {
			s.Ready = append(s.Ready, ready.Seconds())
		}
		if fail == "" {
			logf("%s pod %d/%d on %s: Running after %.2f s, Ready after %.2f s", mode, i, s.Wanted, s.Node, run.Seconds(), ready.Seconds())
		}
		if err := deletePod(api, name); err != nil && fail == "" {
			fail = err.Error()
		}
		if fail != "" {
			if i < s.Wanted {
				fail += fmt.Sprintf(" (the series stopped: %d of %d pods not started)", s.Wanted-i, s.Wanted)
			}
			logf("%s", fail)
			s.Failures = append(s.Failures, fail)
			return
		}
	}
}

// errReady ends a watch once the pod is Running and Ready.
var errReady = errors.New("ready")

// podEnd ends a watch for a pod that will not get there: what happened.
type podEnd string

func (e podEnd) Error() string { return string(e) }

// startPod posts the pod and watches it until it is Running and Ready,
// o.podTimeout at most; it returns the times from the POST to each (0:
// not seen) and, unless both were, the failure's line.
func startPod(ctx context.Context, o *options, api *kube.Client, name, node string, scheduler bool) (running, ready time.Duration, fail string) {
	pods := "/api/v1/namespaces/" + podNamespace + "/pods"
	began := time.Now()
	var created json.RawMessage
	if err := api.Do(ctx, http.MethodPost, pods, podManifest(name, node, o.podImage, scheduler), &created); err != nil {
		return 0, 0, fmt.Sprintf("pod %s on %s: the apiserver did not take it: %v", name, node, err)
	}
	last, err := parsePodStatus(created)
	if err != nil {
		return 0, 0, fmt.Sprintf("pod %s on %s: %v", name, node, err)
	}
	wctx, cancel := context.WithDeadline(ctx, began.Add(o.podTimeout))
	defer cancel()
	path := pods + "?fieldSelector=" + url.QueryEscape("metadata.name="+name)
	rv, ended := last.RV, ""
	var watchErr error // the last watch's failure, if it failed
	for ended == "" {
		err := api.Watch(wctx, path, rv, time.Until(began.Add(o.podTimeout))+time.Second, func(ev kube.WatchEvent) error {
			if ev.Type == "DELETED" {
				return podEnd("deleted by someone else")
			}
			st, err := parsePodStatus(ev.Object)
			if err != nil {
				return err
			}
			rv, last = st.RV, st
			at := time.Since(began)
			if running == 0 && st.Phase == "Running" {
				running = at
			}
			if ready == 0 && st.Ready {
				ready = at
			}
			switch {
			case running > 0 && ready > 0:
				return errReady
			case st.Phase == "Failed" || st.Phase == "Succeeded":
				return podEnd(fmt.Sprintf("ended (phase %s) after %.1f s", st.Phase, at.Seconds()))
			}
			return nil
		})
		var end podEnd
		switch {
		case errors.Is(err, errReady):
			return running, ready, ""
		case ctx.Err() != nil:
			ended = "interrupted"
		case wctx.Err() != nil:
			what := "Running"
			if running > 0 {
				what = "Ready"
			}
			ended = fmt.Sprintf("not %s after %s", what, o.podTimeout)
			if watchErr != nil {
				ended += " (the watch last failed: " + clip(watchErr.Error(), 200) + ")"
			}
		case errors.As(err, &end):
			ended = string(end)
		default:
			// The watch ended (the apiserver's timeout, a dropped
			// connection, a version gone): watch again from now.
			if err != nil {
				rv, watchErr = "", err
			}
			supervise.Sleep(wctx, 100*time.Millisecond)
		}
	}
	return running, ready, podFailure(name, node, ended, last, podEvent(api, last.UID))
}

// podEvent is the newest event of the pod with uid, or why it is unknown.
func podEvent(api *kube.Client, uid string) string {
	if uid == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var raw json.RawMessage
	q := "fieldSelector=" + url.QueryEscape("involvedObject.uid="+uid)
	if err := api.Get(ctx, "/api/v1/namespaces/"+podNamespace+"/events?"+q, &raw); err != nil {
		return "(unread: " + err.Error() + ")"
	}
	return lastEvent(raw)
}

// deletePod deletes the pod with a grace of 1 s and waits until it is
// gone: the kubelet removes it once it has stopped its containers and its
// sandbox (the network's teardown done), so the next pod does not start
// beside that work. Grace 0 would remove the object at once and leave the
// teardown to overlap the next start. A pod not gone after
// podDeleteTimeout is removed with grace 0, and that is an error. It runs
// on after an interrupt: the benchmark leaves no pod behind.
func deletePod(api *kube.Client, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), podDeleteTimeout+30*time.Second)
	defer cancel()
	path := "/api/v1/namespaces/" + podNamespace + "/pods/" + name
	del := func(grace int) error {
		err := api.Do(ctx, http.MethodDelete, path, map[string]any{"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace}, nil)
		if kube.IsStatus(err, http.StatusNotFound) {
			return nil
		}
		return err
	}
	if err := del(1); err != nil {
		return fmt.Errorf("deleting pod %s: %w", name, err)
	}
	deadline := time.Now().Add(podDeleteTimeout)
	for time.Now().Before(deadline) {
		err := api.Get(ctx, path, nil)
		if kube.IsStatus(err, http.StatusNotFound) {
			return nil
		}
		if !supervise.Sleep(ctx, 100*time.Millisecond) {
			break
		}
	}
	if err := del(0); err != nil {
		return fmt.Errorf("pod %s: not gone %s after its deletion, and removing it with grace 0: %w", name, podDeleteTimeout, err)
	}
	return fmt.Errorf("pod %s: not gone %s after its deletion (grace 1 s); removed with grace 0", name, podDeleteTimeout)
}

// measureRunning measures pod start on the running cluster -cluster names.
func measureRunning(ctx context.Context, o *options) (*result, error) {
	cl, err := loadCluster(o.stateDir, o.cluster)
	if err != nil {
		return nil, fmt.Errorf("-cluster %s: %w", o.cluster, err)
	}
	res := &result{Scenario: "podstart", Cluster: cl.Name, Platform: cl.Platform, PodStartOnly: true,
		Title:   fmt.Sprintf("Pod start on the running cluster %s (%s platform, %s datastore)", cl.Name, cl.Platform, cl.Datastore),
		Command: "-cluster " + cl.Name}
	logf("%s: pod start, %d pods a series", cl.Name, o.pods)
	res.PodStart = measurePodStart(ctx, o, cl)
	return res, ctx.Err()
}
