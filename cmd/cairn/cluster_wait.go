package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/qemu/container"
)

// nodeProgress is what is known of one node while `up` waits.
type nodeProgress struct {
	ready bool
	what  string // what the node lacks, or "ready"
}

// waitCluster waits until every node is ready (wait "node": its Node
// object Ready; "apiserver": every server's /readyz), printing a line per
// node whenever what it lacks changes, and writes the admin kubeconfig,
// whose path it returns.
func waitCluster(ctx context.Context, stderr io.Writer, dir string, st *clusterState, token, wait string, timeout time.Duration, began time.Time) (string, error) {
	tok, err := join.ParseToken(token)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	last, seen, held := map[string]string{}, map[string]string{}, map[string]int{}
	lastVIP := ""
	var admin *http.Client
	var kcPath string
	for {
		var progress map[string]nodeProgress
		progress, admin, kcPath, err = probeCluster(ctx, dir, st, tok, wait, admin, kcPath)
		if err != nil {
			return "", err
		}
		all := true
		for _, n := range st.Nodes {
			p := progress[n.ID]
			// A state is shown once it held for two probes in a row
			// (a slow apiserver flips between answering and timing
			// out), Ready at once.
			if p.what != seen[n.ID] {
				seen[n.ID], held[n.ID] = p.what, 0
			}
			held[n.ID]++
			if p.what != last[n.ID] && (p.ready || held[n.ID] >= 2) {
				last[n.ID] = p.what
				if p.ready {
					fmt.Fprintf(stderr, "cairn cluster up: node %s: %s (%.0f s)\n", n.Name, p.what, time.Since(began).Seconds())
				} else {
					fmt.Fprintf(stderr, "cairn cluster up: node %s: %s\n", n.Name, p.what)
				}
			}
			all = all && p.ready
		}
		// The kubeconfig names the VIP: some server must answer on it.
		vip := ""
		if st.VIP.IsValid() && admin != nil {
			vip = "answering"
			if code, _, err := get(ctx, admin, "https://"+st.VIP.String()+":6443/readyz"); err != nil {
				vip = "no server answers on it yet: " + shortErr(err)
			} else if code != http.StatusOK {
				vip = fmt.Sprintf("the server holding it is not ready (/readyz %d)", code)
			}
			if vip != lastVIP {
				lastVIP = vip
				fmt.Fprintf(stderr, "cairn cluster up: vip %s: %s\n", st.VIP, vip)
			}
			all = all && vip == "answering"
		}
		if all && kcPath != "" {
			return kcPath, nil
		}
		if time.Now().After(deadline) {
			var lack []string
			for _, n := range st.Nodes {
				if p := progress[n.ID]; !p.ready {
					lack = append(lack, fmt.Sprintf("  %s: %s (console: %s)", n.Name, p.what, n.Log))
				}
			}
			if st.VIP.IsValid() && lastVIP != "answering" {
				lack = append(lack, fmt.Sprintf("  vip %s: %s", st.VIP, lastVIP))
			}
			if kcPath == "" {
				lack = append(lack, "  no server handed out the admin kubeconfig")
			}
			return "", fmt.Errorf("not ready after %s; the cluster is left running for a look ('cairn cluster down --name %s' removes it):\n%s",
				timeout, st.Name, strings.Join(lack, "\n"))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("interrupted; the cluster is left running ('cairn cluster down --name %s' removes it)", st.Name)
		case <-time.After(2 * time.Second):
		}
	}
}

// probeCluster looks at every node once. Until a server hands out the
// admin kubeconfig (with the token, the CA verified first), servers are
// asked for it; with it, each server's /readyz and the Node objects.
func probeCluster(ctx context.Context, dir string, st *clusterState, tok join.Token, wait string, admin *http.Client, kcPath string) (map[string]nodeProgress, *http.Client, string, error) {
	out := map[string]nodeProgress{}
	for _, n := range st.Nodes {
		if !n.Proc.Alive() {
			return nil, nil, "", fmt.Errorf("node %s stopped; the end of its console (%s):\n%s", n.Name, n.Log, container.Tail(n.Log, 30))
		}
	}
	if admin == nil {
		for _, n := range st.Nodes {
			if n.Role != "server" {
				continue
			}
			url := "https://" + n.Addr.String() + ":6443"
			c := &join.Client{Server: url, Token: tok, Timeout: 5 * time.Second}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			kc, err := c.AdminKubeconfig(cctx)
			cancel()
			if err != nil {
				what := "apiserver not serving yet: " + shortErr(err)
				if strings.Contains(err.Error(), "403 Forbidden") {
					what = "apiserver serving, the cluster's join objects not published yet"
				}
				out[n.ID] = nodeProgress{what: what}
				continue
			}
			if st.VIP.IsValid() {
				// The kubeconfig names the server it came from; users
				// go through the VIP.
				from := "      server: " + url + "\n"
				if !strings.Contains(string(kc), from) {
					return nil, nil, "", fmt.Errorf("the admin kubeconfig from %s has no line %q", n.Name, strings.TrimSpace(from))
				}
				kc = []byte(strings.Replace(string(kc), from, "      server: https://"+st.VIP.String()+":6443\n", 1))
			}
			a, err := kube.ParseKubeconfig(kc)
			if err != nil {
				return nil, nil, "", err
			}
			path := filepath.Join(dir, "kubeconfig")
			if err := os.WriteFile(path, kc, 0o600); err != nil {
				return nil, nil, "", err
			}
			admin, kcPath = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: a.TLS}}, path
			break
		}
		if admin == nil {
			for _, n := range st.Nodes {
				if _, ok := out[n.ID]; !ok {
					out[n.ID] = nodeProgress{what: "waiting for a server to serve"}
				}
			}
			return out, nil, "", nil
		}
	}

	apiOK := map[string]string{}
	var apiURL string
	for _, n := range st.Nodes {
		if n.Role != "server" {
			continue
		}
		url := "https://" + n.Addr.String() + ":6443"
		if code, body, err := get(ctx, admin, url+"/readyz"); err != nil {
			apiOK[n.ID] = "apiserver not serving yet: " + shortErr(err)
		} else if code != http.StatusOK {
			apiOK[n.ID] = fmt.Sprintf("apiserver not ready (/readyz %d: %s)", code, failedChecks(body))
		} else {
			apiOK[n.ID] = ""
			if apiURL == "" {
				apiURL = url
			}
		}
	}
	var nodes map[string]nodeCondition
	nodesErr := "no server ready to ask for Node objects"
	if apiURL != "" && wait == "node" {
		var err error
		if nodes, err = listNodes(ctx, admin, apiURL); err != nil {
			nodesErr = "Node objects unreadable: " + shortErr(err)
		}
	}
	for _, n := range st.Nodes {
		var p nodeProgress
		lack, isServer := apiOK[n.ID]
		switch {
		case isServer && lack != "":
			p.what = lack
		case wait == "apiserver" && isServer:
			p = nodeProgress{ready: true, what: "apiserver ready"}
		case wait == "apiserver":
			p = nodeProgress{ready: true, what: "started (not waited for: --wait apiserver)"}
		case nodes == nil:
			p.what = nodesErr
		default:
			prefix := ""
			if isServer {
				prefix = "apiserver ready, "
			}
			c, ok := nodes[n.Name]
			switch {
			case !ok:
				p.what = prefix + "no Node object yet"
			case c.Status == "True":
				p = nodeProgress{ready: true, what: "ready"}
			default:
				p.what = fmt.Sprintf("%sNode not Ready (%s: %s)", prefix, c.Reason, c.Message)
			}
		}
		out[n.ID] = p
	}
	return out, admin, kcPath, nil
}

// nodeCondition is a Node's Ready condition.
type nodeCondition struct{ Status, Reason, Message string }

func listNodes(ctx context.Context, c *http.Client, api string) (map[string]nodeCondition, error) {
	code, body, err := get(ctx, c, api+"/api/v1/nodes")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%d: %s", code, firstLine(body))
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Conditions []struct {
					Type, Status, Reason, Message string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	out := map[string]nodeCondition{}
	for _, it := range list.Items {
		c := nodeCondition{Status: "Unknown", Reason: "NoReadyCondition", Message: "the kubelet has not reported"}
		for _, cond := range it.Status.Conditions {
			if cond.Type == "Ready" {
				c = nodeCondition{Status: cond.Status, Reason: cond.Reason, Message: cond.Message}
			}
		}
		out[it.Metadata.Name] = c
	}
	return out, nil
}

func get(ctx context.Context, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, body, err
}

// shortErr is the last part of an error chain: "connection refused".
func shortErr(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil || u.Error() == "" {
			break
		}
		err = u
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	return s
}

// failedChecks are the "[-]name failed" lines of a verbose /readyz.
func failedChecks(b []byte) string {
	var failed []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if name, ok := strings.CutPrefix(l, "[-]"); ok && len(failed) < 5 {
			name, _, _ = strings.Cut(name, " ")
			failed = append(failed, name)
		}
	}
	if len(failed) == 0 {
		return firstLine(b)
	}
	return "failing: " + strings.Join(failed, ", ")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
