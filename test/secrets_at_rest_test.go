//go:build qemu

package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config/join"
)

// TestSecretsAtRest: one server on PostgreSQL, as a user with a database
// backup sees it. A Secret the test creates is stored encrypted (kine's
// row starts with k8s:enc:secretbox:v1:key-1:) and reads back through the
// apiserver; a dump of the database (Debian's pg_dump, as an operator
// takes a backup) holds neither the Secret's value, nor the token, nor
// any "PRIVATE KEY", while it does hold a ConfigMap's value the test
// wrote beside it (so the dump is read as it should be: ConfigMaps are
// not encrypted). Then a new key is asked for on the status ConfigMap
// (kubectl annotate): the console says each step once, the Secret is
// stored again under key-2 and still reads back, and the dump still holds
// none of them. No console shows the token, the password or the value.
func TestSecretsAtRest(t *testing.T) {
	ns := bridgeNS(t)
	pg := startPostgres(t, ns, dsAddr)
	const server = "https://192.168.77.11:6443"
	s1 := startPeer(t, ns, "s1", nodeRoot(t, serverConfig("s1", "192.168.77.11", clusterToken, pg.endpoint())))
	s1.expect(t, controlPlane, reServerReady)
	tok, _ := join.ParseToken(clusterToken)
	kcData, err := (&join.Client{Server: server, Token: tok, DialContext: ns.DialContext}).AdminKubeconfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, kcData, 0o600)
	api := newAPIClient(t, ns, kcData)

	value, canary := "at-rest-"+randomHex(t), "in-clear-"+randomHex(t)
	for _, o := range []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/namespaces/default/secrets", map[string]any{"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": "e2e-at-rest"}, "data": map[string]string{"value": base64.StdEncoding.EncodeToString([]byte(value))}}},
		{"/api/v1/namespaces/default/configmaps", map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "e2e-canary"}, "data": map[string]string{"value": canary}}},
	} {
		if code, body, err := api.do("POST", server+o.path, o.body); code != 201 {
			t.Fatalf("POST %s: %d %v %s", o.path, code, err, body)
		}
	}
	status := func(want string, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			cm, ok := getObject(t, ns, kc, "configmap", "kube-system", "cairn-secrets-encryption")
			if ok && cm.Data["state"] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kube-system/cairn-secrets-encryption says %q after %s; want state %q", cm.Data, d, want)
			}
			time.Sleep(3 * time.Second)
		}
	}
	status("settled: every Secret is written with key-1", 2*time.Minute)
	checkStored(t, pg, api, server, "key-1", value)
	checkDump(t, pg, canary, value)

	// A new key, asked for as docs/security.md says.
	if out, err := kubectl(t, ns, kc, "-n", "kube-system", "annotate", "configmap", "cairn-secrets-encryption", "cairn.dev/rotate=e2e", "--overwrite"); err != nil {
		t.Fatalf("kubectl annotate: %v\n%s", err, out)
	}
	// Each step waits for the apiserver to read its config again (once a
	// minute).
	const step = 4 * time.Minute
	s1.expect(t, step, `node: secrets-encryption: a new key was asked for on kube-system/cairn-secrets-encryption: added key-2; it writes once every apiserver reads it$`)
	s1.expect(t, step, `node: secrets-encryption: every apiserver reads key-2; Secrets are written with it from now on$`)
	m := s1.expect(t, step, `node: secrets-encryption: rewrote (\d+) of (\d+) Secrets with key-2; `)
	if m[1] == "0" {
		t.Errorf("the rotation rewrote no Secret (%s of %s); e2e-at-rest at least was under key-1", m[1], m[2])
	}
	s1.expect(t, step, `node: secrets-encryption: dropped key-1: no Secret is written with it any more$`)
	status("settled: every Secret is written with key-2", time.Minute)
	checkStored(t, pg, api, server, "key-2", value)
	checkDump(t, pg, canary, value)
	for _, re := range []string{`added key-2`, `every apiserver reads key-2`, `rewrote \d+ of \d+ Secrets with key-2`, `dropped key-1`} {
		if k := countLines(s1, `node: secrets-encryption: .*`+re); k != 1 {
			t.Errorf("the console says %q %d times; want once", re, k)
		}
	}
	noSecretOnConsole(t, []*containerNode{s1}, clusterToken, pgPassword, value)
	s1.stop(t)
}

func randomHex(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// checkStored: kine's latest row of the Secret is encrypted with key, and
// the apiserver reads the value back.
func checkStored(t *testing.T, pg *postgres, api *apiClient, server, key, value string) {
	t.Helper()
	out, err := pg.psql("SELECT encode(value, 'escape') FROM kine WHERE name = '/registry/secrets/default/e2e-at-rest' ORDER BY id DESC LIMIT 1")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if want := "k8s:enc:secretbox:v1:" + key + ":"; !strings.HasPrefix(out, want) {
		t.Errorf("kine's row of default/e2e-at-rest starts %.40q; want %q", out, want)
	}
	code, body, err := api.do("GET", server+"/api/v1/namespaces/default/secrets/e2e-at-rest", nil)
	if want := base64.StdEncoding.EncodeToString([]byte(value)); code != 200 || !strings.Contains(string(body), `"value":"`+want+`"`) {
		t.Errorf("reading default/e2e-at-rest back: %d %v %.200s", code, err, body)
	}
}

// checkDump: pg_dump of kine's database holds canary and none of the
// secrets, in clear or in the hex pg_dump writes bytea columns in.
func checkDump(t *testing.T, pg *postgres, canary, value string) {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	pgDump := "pg_dump"
	if len(bins) > 0 {
		pgDump = bins[len(bins)-1]
	}
	cmd := pg.ns.Command(context.Background(), pgDump, "-h", pg.addr, "-U", "postgres", "-d", "kine")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pgPassword)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil || len(dump) == 0 {
		t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	holds := func(s string) bool {
		return bytes.Contains(dump, []byte(s)) || bytes.Contains(dump, []byte(hex.EncodeToString([]byte(s))))
	}
	if !holds(canary) {
		t.Fatalf("the dump (%d bytes) does not hold the ConfigMap's value %q: it is not read as it should be", len(dump), canary)
	}
	for _, s := range []struct{ what, text string }{
		{"the Secret's value", value},
		{"the token", clusterToken},
		{"a private key", "PRIVATE KEY"},
	} {
		if holds(s.text) {
			t.Errorf("the dump of the datastore holds %s in clear", s.what)
		}
	}
}
