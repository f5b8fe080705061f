//go:build linux

package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMedianMax(t *testing.T) {
	for _, c := range []struct {
		xs       []float64
		med, top float64
	}{
		{nil, 0, 0},
		{[]float64{2.5}, 2.5, 2.5},
		{[]float64{3, 1, 2}, 2, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 4},
		{[]float64{1.2, 9.8, 1.1, 1.3, 1.2}, 1.2, 9.8}, // the first, cold pod is the max, not the median
	} {
		in := append([]float64(nil), c.xs...)
		med, top := medianMax(c.xs)
		if med != c.med || top != c.top {
			t.Errorf("medianMax(%v) = %v, %v; want %v, %v", c.xs, med, top, c.med, c.top)
		}
		for i := range in {
			if in[i] != c.xs[i] {
				t.Errorf("medianMax sorted its argument: %v", c.xs)
			}
		}
	}
}

func TestParsePodStatus(t *testing.T) {
	for _, c := range []struct {
		name, pod string
		phase     string
		ready     bool
		why       string
	}{
		{"just created", `{"metadata":{"resourceVersion":"41","uid":"u1"},"status":{}}`, "Pending", false, ""},
		{"creating", `{"metadata":{"resourceVersion":"42"},"status":{"phase":"Pending","conditions":[
			{"type":"PodScheduled","status":"True"},
			{"type":"Ready","status":"False","reason":"ContainersNotReady","message":"containers with unready status: [pause]"}],
			"containerStatuses":[{"state":{"waiting":{"reason":"ContainerCreating"}}}]}}`,
			"Pending", false, "ContainerCreating"},
		{"not pulled", `{"status":{"phase":"Pending","containerStatuses":[{"state":{"waiting":{"reason":"ErrImageNeverPull","message":"Container image \"registry.k8s.io/pause:3.10.2\" is not present with pull policy of Never"}}}]}}`,
			"Pending", false, `ErrImageNeverPull: Container image "registry.k8s.io/pause:3.10.2" is not present with pull policy of Never`},
		{"unschedulable", `{"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/2 nodes are available"}]}}`,
			"Pending", false, "Unschedulable: 0/2 nodes are available"},
		{"not ready", `{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"False","reason":"ContainersNotReady","message":"containers with unready status: [pause]"}]}}`,
			"Running", false, "ContainersNotReady: containers with unready status: [pause]"},
		{"ready", `{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"state":{"running":{}}}]}}`,
			"Running", true, ""},
		{"rejected", `{"status":{"phase":"Failed","reason":"NodeAffinity","message":"Pod was rejected"}}`, "Failed", false, "NodeAffinity: Pod was rejected"},
		{"exited", `{"status":{"phase":"Failed","containerStatuses":[{"state":{"terminated":{"exitCode":2,"reason":"Error"}}}]}}`, "Failed", false, "exited 2, Error"},
	} {
		st, err := parsePodStatus([]byte(c.pod))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if st.Phase != c.phase || st.Ready != c.ready || st.Why != c.why {
			t.Errorf("%s: phase %q, ready %v, why %q; want %q, %v, %q", c.name, st.Phase, st.Ready, st.Why, c.phase, c.ready, c.why)
		}
	}
	st, _ := parsePodStatus([]byte(`{"metadata":{"resourceVersion":"41","uid":"u1"}}`))
	if st.RV != "41" || st.UID != "u1" {
		t.Errorf("parsePodStatus: version %q, uid %q; want 41, u1", st.RV, st.UID)
	}
	if _, err := parsePodStatus([]byte(`{"status":`)); err == nil {
		t.Error("parsePodStatus took a cut reply")
	}
}

func TestLastEvent(t *testing.T) {
	events := `{"items":[
		{"metadata":{"creationTimestamp":"2026-12-07T10:00:00Z"},"type":"Normal","reason":"Scheduled","message":"Successfully assigned","eventTime":"2026-12-07T10:00:00.100000Z"},
		{"metadata":{"creationTimestamp":"2026-12-07T10:00:01Z"},"type":"Warning","reason":"FailedCreatePodSandBox","message":"failed to setup network for sandbox\n","lastTimestamp":"2026-12-07T10:02:00Z"},
		{"metadata":{"creationTimestamp":"2026-12-07T10:00:02Z"},"type":"Normal","reason":"SandboxChanged","lastTimestamp":"2026-12-07T10:00:02Z"}]}`
	if got, want := lastEvent([]byte(events)), "Warning FailedCreatePodSandBox: failed to setup network for sandbox"; got != want {
		t.Errorf("lastEvent: %q; want %q", got, want)
	}
	for _, none := range []string{`{"items":[]}`, `not json`} {
		if got := lastEvent([]byte(none)); got != "" {
			t.Errorf("lastEvent(%q) = %q; want nothing", none, got)
		}
	}
}

func TestPodFailure(t *testing.T) {
	st := podStatus{Phase: "Pending", Why: "ContainerCreating"}
	got := podFailure("podstart-a1-pinned-3", "pg-a1", "not Running after 3m0s", st, "Warning FailedCreatePodSandBox: no CNI config")
	want := "pod podstart-a1-pinned-3 on pg-a1: not Running after 3m0s; phase Pending (ContainerCreating); last event: Warning FailedCreatePodSandBox: no CNI config"
	if got != want {
		t.Errorf("podFailure:\n got %q\nwant %q", got, want)
	}
	got = podFailure("p", "n", "interrupted", podStatus{Phase: "Pending"}, "")
	if want := "pod p on n: interrupted; phase Pending; last event: none"; got != want {
		t.Errorf("podFailure without a reason or an event: %q; want %q", got, want)
	}
}

func TestPauseImageOf(t *testing.T) {
	// The nodes' own pin: the pause image in every node's image.
	env, err := os.ReadFile("../../" + versionsEnv)
	if err != nil {
		t.Fatal(err)
	}
	img, err := pauseImageOf(string(env))
	if err != nil || !strings.HasPrefix(img, "registry.k8s.io/pause:") {
		t.Errorf("pauseImageOf(versions.env) = %q, %v; want registry.k8s.io/pause:…", img, err)
	}
	if img, err := pauseImageOf("# x\n  PAUSE_IMAGE=\"example/pause:1\"\n"); err != nil || img != "example/pause:1" {
		t.Errorf("pauseImageOf: %q, %v", img, err)
	}
	if _, err := pauseImageOf("PAUSE_IMAGE=\nCOREDNS=x\n"); err == nil {
		t.Error("pauseImageOf took an empty pin")
	}
}

func TestPodManifest(t *testing.T) {
	read := func(sched bool) string {
		b, err := json.Marshal(podManifest("p1", "pg-s1", "registry.k8s.io/pause:3.10.2", sched))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	pinned, sched := read(false), read(true)
	for _, want := range []string{`"nodeName":"pg-s1"`, `"imagePullPolicy":"Never"`, `"image":"registry.k8s.io/pause:3.10.2"`, `"operator":"Exists"`, `"cairn.bench/podstart":"1"`} {
		if !strings.Contains(pinned, want) {
			t.Errorf("the pinned pod lacks %s: %s", want, pinned)
		}
	}
	if strings.Contains(sched, "nodeName") || !strings.Contains(sched, `"matchFields":[{"key":"metadata.name","operator":"In","values":["pg-s1"]}]`) {
		t.Errorf("the scheduler's pod is not left to it, with an affinity to pg-s1: %s", sched)
	}
}

func TestPodNodes(t *testing.T) {
	cl := &cluster{}
	for _, r := range [][2]string{{"pg-s1", "server"}, {"pg-s2", "server"}, {"pg-a1", "agent"}} {
		cl.Nodes = append(cl.Nodes, struct {
			ID   string  `json:"id"`
			Name string  `json:"name"`
			Role string  `json:"role"`
			Addr string  `json:"addr"`
			Proc procRef `json:"proc"`
		}{Name: r[0], Role: r[1]})
	}
	if got := podNodes(cl); len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Errorf("podNodes: %v; want the first server and the first agent, [0 2]", got)
	}
}

func TestParseFlagsPodStart(t *testing.T) {
	o, err := parseFlags([]string{"-only", "podstart"})
	if err != nil || !o.podOnly || strings.Join(o.only, ",") != "podstart" || o.pods != 10 {
		t.Errorf("-only podstart: %+v, %v; want the fresh server and agent, 10 pods", o, err)
	}
	o, err = parseFlags([]string{"-only", "podstart", "-cluster", "dev", "-pods", "3"})
	if err != nil || !o.podOnly || len(o.only) != 0 || o.cluster != "dev" || o.pods != 3 {
		t.Errorf("-only podstart -cluster dev: %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-only", "tcg,podstart"})
	if err != nil || !o.podOnly || strings.Join(o.only, ",") != "tcg" {
		t.Errorf("-only tcg,podstart: %+v, %v; want the TCG server's pod start only", o, err)
	}
	o, err = parseFlags(nil)
	if err != nil || o.podOnly || o.pods != 10 || o.podTimeout != 3*time.Minute || strings.Join(o.only, ",") != "pg,etcd,tcg" {
		t.Errorf("the defaults: %+v, %v; want pg, etcd and tcg's windows, then 10 pods a series", o, err)
	}
	o, err = parseFlags([]string{"-only", "tcg3"})
	if err != nil || strings.Join(o.only, ",") != "tcg3" {
		t.Errorf("-only tcg3: %+v, %v; want the three VMs", o, err)
	}
	for _, bad := range [][]string{
		{"-cluster", "dev"},                         // without -only podstart
		{"-only", "pg,podstart", "-cluster", "dev"}, // a running cluster and one to start
		{"-only", "podstart", "-cluster", "../etc"}, // not a name
		{"-only", "podstart", "-pods", "0"},         // nothing to do
		{"-pods", "1000"}, {"-pod-timeout", "1s"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) took it", bad)
		}
	}
}

func TestPodStartMarkdown(t *testing.T) {
	r := &result{Title: "t", Command: "cairn cluster up x", UpSeconds: 90, PodStartOnly: true, PodStart: &podStart{
		Image: "registry.k8s.io/pause:3.10.2",
		Series: []podSeries{
			{Node: "pg-s1", Role: "server", Wanted: 3, Running: []float64{1.2, 1.0, 3.5}, Ready: []float64{1.25, 1.05, 3.5}},
			{Node: "pg-s1", Role: "server", Scheduler: true, Wanted: 3, Running: []float64{1.4}, Ready: []float64{1.4},
				Failures: []string{"pod podstart-s1-sched-2 on pg-s1: not Running after 3m0s; phase Pending (ContainerCreating); last event: none"}},
			{Node: "pg-a1", Role: "agent", Wanted: 3, Failures: []string{"pod podstart-a1-pinned-1 on pg-a1: …"}},
		},
	}}
	var b strings.Builder
	r.markdown(&b)
	out := b.String()
	for _, want := range []string{
		"- pod start (apply → Running): median 1.20 s, max 3.50 s over 3 pods on pg-s1 (server)\n",
		"- pod start (apply → Ready): median 1.25 s, max 3.50 s over 3 pods on pg-s1 (server)\n",
		"- pod start through the scheduler (apply → Running): median 1.40 s, max 1.40 s over 1 pods on pg-s1 (server, of 3)\n",
		"- pod start (apply → Running): no pod of 3 got there on pg-a1 (agent)\n",
		"- pod podstart-s1-sched-2 on pg-s1: not Running after 3m0s; phase Pending (ContainerCreating); last event: none\n",
		"`registry.k8s.io/pause:3.10.2`",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "| node |") || strings.Contains(out, "⚠") {
		t.Errorf("a pod start only report has a window's table or a load flag:\n%s", out)
	}
	r.PodStart.LoadEnd[0] = 3.1
	b.Reset()
	r.markdown(&b)
	if !strings.Contains(b.String(), "median 1.20 s, max 3.50 s ⚠ over 3 pods") {
		t.Errorf("pod start at load 3.1 is not flagged:\n%s", b.String())
	}
}
