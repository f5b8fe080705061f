package main

import (
	"bytes"
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ginkgoParallelOutput is ginkgo's output in a phase's e2e.log (ginkgo
// v2.28.1 --procs 4 --no-color, e2e.test of Kubernetes v1.36.3, this
// machine, 2026-12-07): the real header, lines of marks (runs of "S"
// shortened) and three failure blocks (their timelines shortened), then a
// passed spec's block with output of its own and the end of the run in
// ginkgo's format (reporters/default_reporter.go).
const ginkgoParallelOutput = `Running Suite: Kubernetes e2e suite - /work/main/out/conformance/bin
====================================================================
Random Seed: 1796643614 - will randomize all specs

Will run 416 of 7579 specs
Running in parallel across 4 processes
SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSS•SSSSSSSS•SS•SSSSS•SSSSSSSS•SSSSSS•SSSSSSS•SSSS•SSSSSSSS•SSS•SSSSSSSS•SSSSSSSS•SSSSSSSS••SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•S•SSSSSSSS•SSSSSSS•S•SSSSSSSS•SSSSS•SSSSSSSS•S•SSSSSS•SSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSS•SSSSSSSS•S•SSSSSSSS•SSSSSSSS•SSSSSSSS••SS•S•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS••SSSSSSSS•SSSSSSS•SSSSSSSS•SSSSSSSS•S•SSSSSSSS•SS•SS•SSSSSSSS•SSS•SSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•S•SSS•SSSSSS•SSSSSS•SSSSSS•SSSSSSSS••SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSS•SSSSSSSS•SSSSS•SSSS••SSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•S•S•SSS•SSSSSS•SSSSS••SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSS•SSSSSSSS••SSSSSSSS•SSSSSSSS•SSSSSSS•SSSSSSS•SSS•SSS•SSSSSSSS•SSSSSSSS•SS••SSSSSSSS•SSS•SSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSS•SSSSSSSS••SSSSS•SSSSSSSS•SS•S
------------------------------
• [FAILED] [6.460 seconds]
[sig-node] Secrets [It] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]
k8s.io/kubernetes@v1.36.3/test/e2e/common/node/secrets.go:98

  Timeline >>
  STEP: Creating a kubernetes client @ 12/07/26 11:52:06.051
  I1207 11:52:06.051419   28616 util.go:414] >>> kubeConfig: /var/lib/cairn-cluster/conformance/kubeconfig
  STEP: Building a namespace api object, basename secrets @ 12/07/26 11:52:06.052
  I1207 11:52:06.074894   28616 reflector.go:507] "Caches populated" type="*v1.ServiceAccount" reflector="k8s.io/client-go@v0.36.3/tools/cache/reflector.go:343"
  STEP: Waiting for a default service account to be provisioned in namespace @ 12/07/26 11:52:06.075
  I1207 11:52:06.079087   28616 reflector.go:507] "Caches populated" type="*v1.ServiceAccount" reflector="k8s.io/client-go@v0.36.3/tools/cache/reflector.go:343"
  Latency metrics for node conformance-s2
  STEP: Destroying namespace "secrets-4836" for this suite. @ 12/07/26 11:52:12.502
  << Timeline

  [FAILED] expected "data-1=value-1" in container output: Expected
      <string>: KUBERNETES_SERVICE_PORT=443
      KUBERNETES_PORT=tcp://10.43.0.1:443
      HOSTNAME=pod-configmaps-83d6d1de-2642-4c50-8073-d4f94d51306c
      SHLVL=1
      HOME=/root
      KUBERNETES_PORT_443_TCP_ADDR=10.43.0.1
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      KUBERNETES_PORT_443_TCP_PORT=443
      KUBERNETES_PORT_443_TCP_PROTO=tcp
      KUBERNETES_SERVICE_PORT_HTTPS=443
      KUBERNETES_PORT_443_TCP=tcp://10.43.0.1:443
      KUBERNETES_SERVICE_HOST=10.43.0.1
      PWD=/
      
  to contain substring
      <string>: data-1=value-1
  In [It] at: k8s.io/kubernetes@v1.36.3/test/e2e/framework/pod/output/output.go:263 @ 12/07/26 11:52:12.196
------------------------------
•SS•S•SSSSSSSS•SSSSSSSS•SSSSSSSS••SSS•SSSSSSSS••SSSSSSSS•SSSSSSSS•SSSSSSSS
------------------------------
• [FAILED] [4.959 seconds]
[sig-node] ConfigMap [It] should be consumable as environment variable names with various prefixes [Conformance] [sig-node, Conformance]
k8s.io/kubernetes@v1.36.3/test/e2e/common/node/configmap.go:261

  Timeline >>
  STEP: Creating a kubernetes client @ 12/07/26 11:52:42.271
  I1207 11:52:42.271815   28618 util.go:414] >>> kubeConfig: /var/lib/cairn-cluster/conformance/kubeconfig
  STEP: Building a namespace api object, basename configmap @ 12/07/26 11:52:42.272
  I1207 11:52:42.348843   28618 reflector.go:507] "Caches populated" type="*v1.ServiceAccount" reflector="k8s.io/client-go@v0.36.3/tools/cache/reflector.go:343"
  STEP: Waiting for a default service account to be provisioned in namespace @ 12/07/26 11:52:42.349
  I1207 11:52:42.353096   28618 reflector.go:507] "Caches populated" type="*v1.ServiceAccount" reflector="k8s.io/client-go@v0.36.3/tools/cache/reflector.go:343"
  Latency metrics for node conformance-s2
  STEP: Destroying namespace "configmap-8494" for this suite. @ 12/07/26 11:52:47.222
  << Timeline

  [FAILED] expected "data-1=value-1" in container output: Expected
      <string>: KUBERNETES_SERVICE_PORT=443
      KUBERNETES_PORT=tcp://10.43.0.1:443
      HOSTNAME=pod-configmaps-8eabe196-1872-4f05-a3cf-6a53a0713b39
      SHLVL=1
      HOME=/root
      KUBERNETES_PORT_443_TCP_ADDR=10.43.0.1
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      KUBERNETES_PORT_443_TCP_PORT=443
      KUBERNETES_PORT_443_TCP_PROTO=tcp
      KUBERNETES_SERVICE_PORT_HTTPS=443
      KUBERNETES_PORT_443_TCP=tcp://10.43.0.1:443
      KUBERNETES_SERVICE_HOST=10.43.0.1
      PWD=/
      
  to contain substring
      <string>: data-1=value-1
  In [It] at: k8s.io/kubernetes@v1.36.3/test/e2e/framework/pod/output/output.go:263 @ 12/07/26 11:52:46.434
------------------------------
SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSSSSSS•SSSS•SSSSSSSS•SSSSSSSS•SSSS•SSSSSSS••SSSSSSSS•SSSSSSS•S•SSSSSSSS•SSSSSSSS•SSS•SSSSSSS•SS••SSSSSSS•SS•S•SSSSSSSS•SSSSSSSS••SSSS•SS•SSSSSSSS•SSSSSS••SSSSS•SSSS•SSSSSSSS•SSS••SSSSSSSS•SSSSSSSS••SSSSSSSS•SSSSSSSS••SSSSSSSS•SSSSSSSS
------------------------------
• [FAILED] [6.859 seconds]
[sig-node] ConfigMap [It] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]
k8s.io/kubernetes@v1.36.3/test/e2e/common/node/configmap.go:96

  Timeline >>
  STEP: Creating a kubernetes client @ 12/07/26 11:55:15.778
  I1207 11:55:15.778471   28618 util.go:414] >>> kubeConfig: /var/lib/cairn-cluster/conformance/kubeconfig
  STEP: Building a namespace api object, basename configmap @ 12/07/26 11:55:15.781
  I1207 11:55:15.890196   28618 reflector.go:507] "Caches populated" type="*v1.ServiceAccount" reflector="k8s.io/client-go@v0.36.3/tools/cache/reflector.go:343"
  STEP: Waiting for a default service account to be provisioned in namespace @ 12/07/26 11:55:15.89
  I1207 11:55:15.910640   28618 reflector.go:507] "Caches populated" type="*v1.ServiceAccount" reflector="k8s.io/client-go@v0.36.3/tools/cache/reflector.go:343"
  Latency metrics for node conformance-s2
  STEP: Destroying namespace "configmap-8254" for this suite. @ 12/07/26 11:55:22.629
  << Timeline

  [FAILED] expected "data-1=value-1" in container output: Expected
      <string>: KUBERNETES_SERVICE_PORT=443
      KUBERNETES_PORT=tcp://10.43.0.1:443
      HOSTNAME=pod-configmaps-5b8fbc90-843e-4ae2-ba8e-9f92536255bf
      SHLVL=1
      HOME=/root
      KUBERNETES_PORT_443_TCP_ADDR=10.43.0.1
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
      KUBERNETES_PORT_443_TCP_PORT=443
      KUBERNETES_PORT_443_TCP_PROTO=tcp
      KUBERNETES_SERVICE_PORT_HTTPS=443
      KUBERNETES_PORT_443_TCP=tcp://10.43.0.1:443
      KUBERNETES_SERVICE_HOST=10.43.0.1
      PWD=/
      
  to contain substring
      <string>: data-1=value-1
  In [It] at: k8s.io/kubernetes@v1.36.3/test/e2e/framework/pod/output/output.go:263 @ 12/07/26 11:55:22.117
------------------------------
SSSSSSSS•SSSSSSSS•••SSSSSSSS•SSSSSSSS•SSSSSSSS••S•SSSSSSSS••SSSS•SSSSSSSS•SSSSSSSS•SSSSS••SSSSS•SSSSSSSS•SSSSSSS•SSSSSSSS•SSSSSSSS•SSSSS•SSS•SSSSSSSS•S
------------------------------
• [0.460 seconds]
[sig-api-machinery] Discovery should validate PreferredVersion for each APIGroup [Conformance] [sig-api-machinery, Conformance]
k8s.io/kubernetes@v1.36.3/test/e2e/apimachinery/discovery.go:126

  Captured StdOut/StdErr Output >>
  a line the spec printed
  << Captured StdOut/StdErr Output
------------------------------
••S


Summarizing 3 Failures:
  [FAIL] [sig-node] Secrets [It] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]
  k8s.io/kubernetes@v1.36.3/test/e2e/framework/pod/output/output.go:263
  [FAIL] [sig-node] ConfigMap [It] should be consumable as environment variable names with various prefixes [Conformance] [sig-node, Conformance]
  k8s.io/kubernetes@v1.36.3/test/e2e/framework/pod/output/output.go:263
  [FAIL] [sig-node] ConfigMap [It] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]
  k8s.io/kubernetes@v1.36.3/test/e2e/framework/pod/output/output.go:263

Ran 205 of 7579 Specs in 1228.114 seconds
FAIL! -- 202 Passed | 3 Failed | 0 Pending | 7374 Skipped


Ginkgo ran 1 suite in 20m34.512931408s

Test Suite Failed
`

var (
	secretsEnv   = "[sig-node] Secrets should be consumable via the environment [NodeConformance] [Conformance]"
	prefixesEnv  = "[sig-node] ConfigMap should be consumable as environment variable names with various prefixes [Conformance]"
	configMapEnv = "[sig-node] ConfigMap should be consumable via the environment [NodeConformance] [Conformance]"
	discovery    = "[sig-api-machinery] Discovery should validate PreferredVersion for each APIGroup [Conformance]"
)

// reElapsed is the time since the start in a progress line.
var reElapsed = regexp.MustCompile(`, \d+:\d\d:\d\d\]`)

func progressLines(out *bytes.Buffer) []string {
	return strings.Split(strings.TrimSpace(reElapsed.ReplaceAllString(out.String(), ", T]")), "\n")
}

// What the console shows while a phase's output streams by, however the
// pipe cuts it: each failure at once with its done/total and name, a
// passed spec that printed a block with its name, and the counts at the
// end of the phase; and the log gets every byte.
func TestProgressFromGinkgoOutput(t *testing.T) {
	want := []string{
		"conformance: [parallel, T] 5 tests, 4 at a time",
		"conformance: [parallel 121/445, T] failed " + secretsEnv,
		"conformance: [parallel 134/445, T] failed " + prefixesEnv,
		"conformance: [parallel 178/445, T] failed " + configMapEnv,
		"conformance: [parallel 203/445, T] passed " + discovery,
		"conformance: [parallel 205/445, T] 202 passed, 3 failed",
	}
	rng := rand.New(rand.NewSource(1))
	for _, tc := range []struct {
		name  string
		chunk func() int
	}{
		{"one write", func() int { return len(ginkgoParallelOutput) }},
		{"a byte a write", func() int { return 1 }},
		{"random cuts", func() int { return 1 + rng.Intn(64) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, log bytes.Buffer
			p := newProgress(445, &out)
			p.startPhase(phase{Name: "parallel", Procs: 4, Tests: []string{secretsEnv, prefixesEnv, configMapEnv, discovery, "[sig-x] one that does not run [Conformance]"}})
			w := p.output(&log)
			for rest := []byte(ginkgoParallelOutput); len(rest) > 0; {
				n := min(tc.chunk(), len(rest))
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			p.endPhase()
			if log.String() != ginkgoParallelOutput {
				t.Errorf("the log got %d bytes of %d, or other ones", log.Len(), len(ginkgoParallelOutput))
			}
			got := progressLines(&out)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			res := p.results([]string{secretsEnv, discovery, "[sig-x] one that does not run [Conformance]"})
			if len(res) != 2 || res[secretsEnv].State != "failed" || res[discovery].State != "passed" {
				t.Errorf("results = %+v", res)
			}
		})
	}
}

// A block's name line names the spec with the failed node's type put in
// and the labels appended; this reads the test's name back.
func TestSpecName(t *testing.T) {
	want := map[string]bool{secretsEnv: true, "[sig-x] Foo bar [Conformance]": true}
	for _, tc := range []struct{ line, name string }{
		{"[sig-node] Secrets [It] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]", secretsEnv},
		{"[sig-node] Secrets should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]", secretsEnv},
		{"[sig-node] Secrets [BeforeEach] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]", secretsEnv},
		{"[sig-node] Secrets [DeferCleanup (Each)] should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]", secretsEnv},
		{"TOP-LEVEL [BeforeEach] [sig-node] Secrets should be consumable via the environment [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]", secretsEnv},
		{"[sig-x] Foo [It] bar [Conformance] [Conformance]", "[sig-x] Foo bar [Conformance]"},
		{"[sig-x] Foo [It] bar [Conformance]", "[sig-x] Foo bar [Conformance]"},
		{"[sig-node] Secrets [It] should not be ours [Conformance] [sig-node, Conformance]", ""},
		{"[SynchronizedBeforeSuite]", ""},
	} {
		if got := specName(tc.line, want); got != tc.name {
			t.Errorf("specName(%q) = %q, want %q", tc.line, got, tc.name)
		}
	}
}

// A suite node's failure is printed (all the specs are skipped after a
// BeforeSuite fails) but not counted as a test; a line without an end
// keeps only its first bytes.
func TestProgressSuiteNodeAndLongLines(t *testing.T) {
	var out, log bytes.Buffer
	p := newProgress(2, &out)
	p.startPhase(phase{Name: "serial", Procs: 1, Tests: []string{secretsEnv}})
	w := p.output(&log)
	w.Write([]byte("------------------------------\n[SynchronizedBeforeSuite] [FAILED] [0.051 seconds]\n[SynchronizedBeforeSuite] \nk8s.io/kubernetes@v1.36.3/test/e2e/e2e.go:69\n"))
	w.Write(bytes.Repeat([]byte("x"), 1<<20))
	if g := w.(*ginkgoOutput); len(g.line) > maxOutputLine {
		t.Errorf("kept %d bytes of a line", len(g.line))
	}
	p.endPhase()
	want := []string{
		"conformance: [serial, T] 1 tests, 1 at a time",
		"conformance: [serial 0/2, T] failed [SynchronizedBeforeSuite] (see e2e.log)",
	}
	if got := progressLines(&out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("printed %q, want %q", got, want)
	}
}

// Every 30 s: the counts when they changed (a "•" that opens a line and
// ends what ginkgo wrote so far included); after 2 minutes without a
// finished test, that the run goes on, every 2 minutes.
func TestProgressTick(t *testing.T) {
	var out, log bytes.Buffer
	p := newProgress(445, &out)
	p.startPhase(phase{Name: "parallel", Procs: 4, Tests: []string{secretsEnv}})
	p.output(&log).Write([]byte("S••S\n------------------------------\n•"))
	now := p.last
	p.tick(now.Add(30 * time.Second))
	p.tick(now.Add(60 * time.Second))
	p.tick(now.Add(150 * time.Second))
	p.tick(now.Add(180 * time.Second))
	p.tick(now.Add(270 * time.Second))
	p.endPhase()
	want := []string{
		"conformance: [parallel, T] 1 tests, 4 at a time",
		"conformance: [parallel 3/445, T] 3 passed, 0 failed",
		"conformance: [parallel 3/445, T] running; the last test finished 2m30s ago",
		"conformance: [parallel 3/445, T] running; the last test finished 4m30s ago",
	}
	if got := progressLines(&out); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
