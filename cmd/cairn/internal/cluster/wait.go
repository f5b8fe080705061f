package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/qemu/container"
)

// probeTimeout bounds each request of a probe.
const probeTimeout = 5 * time.Second

// nodeProgress is what is known of one node while Up waits.
type nodeProgress struct {
	ready bool
	what  string // what the node lacks, or "ready"
}

// admin is how Up reaches the cluster once a server has handed out the
// admin kubeconfig.
type admin struct {
	kubeconfig string                  // its path
	servers    map[string]*kube.Client // each server's apiserver, by node ID
	vip        *kube.Client            // the VIP's; nil without one
}

// waitCluster waits until every node is ready (wait "node": its Node
// object Ready; "apiserver": every server's /readyz), printing a line per
// node whenever what it lacks changes, and writes the admin kubeconfig,
// whose path it returns.
func waitCluster(ctx context.Context, stderr io.Writer, dir string, st *state, token, wait string, timeout time.Duration, began time.Time) (string, error) {
	tok, err := join.ParseToken(token)
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	last, seen, held := map[string]string{}, map[string]string{}, map[string]int{}
	lastVIP := ""
	var adm *admin
	for {
		var progress map[string]nodeProgress
		progress, adm, err = probeCluster(ctx, dir, st, tok, wait, adm)
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
		if adm != nil && adm.vip != nil {
			vip := "answering"
			if code, _, err := adm.vip.Raw(ctx, http.MethodGet, "/readyz"); err != nil {
				vip = "no server answers on it yet: " + brief.Err(err)
			} else if code != http.StatusOK {
				vip = fmt.Sprintf("the server holding it is not ready (/readyz %d)", code)
			}
			if vip != lastVIP {
				lastVIP = vip
				fmt.Fprintf(stderr, "cairn cluster up: vip %s: %s\n", st.VIP, vip)
			}
			all = all && vip == "answering"
		}
		if all && adm != nil {
			return adm.kubeconfig, nil
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
			if adm == nil {
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
func probeCluster(ctx context.Context, dir string, st *state, tok join.Token, wait string, adm *admin) (map[string]nodeProgress, *admin, error) {
	out := map[string]nodeProgress{}
	for _, n := range st.Nodes {
		if !n.Proc.Alive() {
			return nil, nil, fmt.Errorf("node %s stopped; the end of its console (%s):\n%s", n.Name, n.Log, container.Tail(n.Log, 30))
		}
	}
	if adm == nil {
		for _, n := range st.Nodes {
			if n.Role != "server" {
				continue
			}
			// Users go through the VIP: the kubeconfig names it.
			server := apiURL(n.Addr.String())
			if st.VIP.IsValid() {
				server = apiURL(st.VIP.String())
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			kc, err := fetchKubeconfig(cctx, tok, netip.AddrPortFrom(n.Addr, config.APIServerPort).String(), server)
			cancel()
			if err != nil {
				what := "apiserver not serving yet: " + brief.Err(err)
				if errors.Is(err, join.ErrNotReady) {
					what = "apiserver serving, not ready for the token yet: " + brief.FirstLine([]byte(join.NotReadyDetail(err)), 160)
				}
				out[n.ID] = nodeProgress{what: what}
				continue
			}
			if adm, err = openAdmin(dir, st, kc); err != nil {
				return nil, nil, err
			}
			break
		}
		if adm == nil {
			for _, n := range st.Nodes {
				if _, ok := out[n.ID]; !ok {
					out[n.ID] = nodeProgress{what: "waiting for a server to serve"}
				}
			}
			return out, nil, nil
		}
	}

	apiOK := map[string]string{}
	var api *kube.Client // the first ready server's
	for _, n := range st.Nodes {
		c := adm.servers[n.ID]
		if c == nil {
			continue
		}
		if code, body, err := c.Raw(ctx, http.MethodGet, "/readyz"); err != nil {
			apiOK[n.ID] = "apiserver not serving yet: " + brief.Err(err)
		} else if code != http.StatusOK {
			apiOK[n.ID] = fmt.Sprintf("apiserver not ready (/readyz %d: %s)", code, failedChecks(body))
		} else {
			apiOK[n.ID] = ""
			if api == nil {
				api = c
			}
		}
	}
	var nodes map[string]nodeCondition
	nodesErr := "no server ready to ask for Node objects"
	if api != nil && wait == "node" {
		var err error
		if nodes, err = nodeConditions(ctx, api); err != nil {
			nodesErr = "Node objects unreadable: " + brief.Err(err)
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
	return out, adm, nil
}

// fetchKubeconfig asks the server at addr (HOST:PORT) for an admin
// kubeconfig with the token, as the apiserver at server (a URL whose
// certificate the server holds: its own, or the VIP's). The kubeconfig
// names server; its certificate lasts as long as the servers allow, a
// cluster on one's own machine being used for days (`cairn kubeconfig`
// makes another).
func fetchKubeconfig(ctx context.Context, tok join.Token, addr, server string) ([]byte, error) {
	var d net.Dialer
	c := &join.Client{Server: server, Token: tok, Timeout: probeTimeout, Expiry: join.MaxExpiry,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}
	return c.AdminKubeconfig(ctx)
}

// openAdmin writes the admin kubeconfig into the cluster's directory
// (0600: it holds an admin's key) and makes the clients of each server
// and the VIP with its credentials.
func openAdmin(dir string, st *state, kc []byte) (*admin, error) {
	creds, err := kube.ParseKubeconfig(kc)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := files.WriteSecret(path, kc); err != nil {
		return nil, err
	}
	a := &admin{kubeconfig: path, servers: map[string]*kube.Client{}}
	for _, n := range st.Nodes {
		if n.Role == "server" {
			a.servers[n.ID] = kube.New(apiURL(n.Addr.String()), kube.Options{TLS: creds.TLS, Timeout: probeTimeout})
		}
	}
	if st.VIP.IsValid() {
		a.vip = creds.Client(kube.Options{Timeout: probeTimeout})
	}
	return a, nil
}

// nodeCondition is a Node's Ready condition.
type nodeCondition struct{ Status, Reason, Message string }

// nodeConditions are the Ready conditions of the Node objects, by name.
func nodeConditions(ctx context.Context, api *kube.Client) (map[string]nodeCondition, error) {
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
	if err := api.Get(ctx, "/api/v1/nodes", &list); err != nil {
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

// failedChecks are the "[-]name failed" lines of a failing /readyz (it
// lists its checks when one fails), or the reply's first line.
func failedChecks(b []byte) string {
	var failed []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if name, ok := strings.CutPrefix(l, "[-]"); ok && len(failed) < 5 {
			name, _, _ = strings.Cut(name, " ")
			failed = append(failed, name)
		}
	}
	if len(failed) == 0 {
		return brief.FirstLine(b, 200)
	}
	return "failing: " + strings.Join(failed, ", ")
}
