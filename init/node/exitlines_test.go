package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
	"github.com/cairn-os/cairn/init/supervise/supervisetest"
)

// TestExitLinesQuoteEveryComponentButPrivateOnes: every component cairn
// supervises quotes its last output line when it exits (the line a user
// reads to know why kube-scheduler restarted), except kine and k3s, whose
// output may hold the datastore endpoint, password included: theirs stays
// off the console, with cairn.debug too.
func TestExitLinesQuoteEveryComponentButPrivateOnes(t *testing.T) {
	const password = "s3cret-pw"
	docs := []string{
		"kubernetes:\n  token: a-long-shared-secret-of-the-node-tests\n  datastore-endpoint: postgres://k3s:" + password + "@192.168.1.5:5432/k3s\n",
		"kubernetes:\n  token: a-long-shared-secret-of-the-node-tests\n",
		"kubernetes:\n  role: agent\n  token: a-long-shared-secret-of-the-node-tests\n  server: https://192.168.1.100:6443\n",
	}
	private := map[string]bool{"kine": true, "k3s": true}
	seen := map[string]bool{}
	bin := t.TempDir()
	var log supervisetest.Lines
	sup := supervise.New(supervise.Options{Log: log.Add, Raw: func(string) {}, Reaper: &supervise.Reaper{}})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		sup.Stop(ctx)
	}()
	for _, doc := range docs {
		cfg, diags := config.Load(config.Source{Name: "test", Data: []byte(doc)})
		if diags.HasErrors() {
			t.Fatalf("test document invalid: %v", diags.Err())
		}
		node := render.Node{Name: "node-1", IP: "192.168.1.11", Token: "a-long-shared-secret-of-the-node-tests", Encryption: &render.Encryption{}}
		cmds, err := render.Components(cfg, node)
		if err != nil {
			t.Fatal(err)
		}
		k3s, err := render.K3s(cfg, node)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range append(cmds, *k3s) {
			if seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			svc := componentService(Options{Bin: bin, Debug: true}, c)
			if svc.PrivateOutput != private[c.Name] || svc.Console == private[c.Name] {
				t.Errorf("%s: PrivateOutput %v, Console %v with cairn.debug; want %v, %v", c.Name, svc.PrivateOutput, svc.Console, private[c.Name], !private[c.Name])
			}
			// The component, as a user would see it die: its last line
			// names the datastore endpoint.
			script := filepath.Join(bin, c.Name)
			os.WriteFile(script, []byte("#!/bin/sh\necho 'E1207 failed to reach postgres://k3s:"+password+"@192.168.1.5:5432/k3s'\nexit 1\n"), 0o755)
			svc.Args, svc.Env, svc.Restart, svc.Console = nil, nil, supervise.Never, false
			if err := sup.Start(svc); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := sup.Wait(ctx, c.Name, func(st supervise.Status) bool { return st.State == supervise.Exited })
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			want := "service " + c.Name + ": exited (status 1): E1207 failed to reach postgres://k3s:" + password + "@192.168.1.5:5432/k3s"
			if private[c.Name] {
				want = "service " + c.Name + ": exited (status 1)"
			}
			if !slices.Contains(log.All(), want) {
				t.Errorf("no console line %q in\n%s", want, strings.Join(log.All(), "\n"))
			}
			for _, l := range log.All() {
				if private[c.Name] && strings.HasPrefix(l, "service "+c.Name+":") && strings.Contains(l, password) {
					t.Errorf("%s's output reached the console: %s", c.Name, l)
				}
			}
		}
	}
	for _, name := range []string{"kine", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy", "flannel", "k3s"} {
		if !seen[name] {
			t.Errorf("%s was not rendered by any case", name)
		}
	}
}
