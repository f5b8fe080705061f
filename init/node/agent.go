package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime/debug"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/lb"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/supervise"
)

// agent joins a cluster with the token and runs the node's components.
type agent struct {
	o Options
	k *config.Kubernetes
	l render.Layout
}

// Retrying the join: growing delays while the servers cannot be reached;
// a token the servers do not accept is retried slowly (someone may be
// fixing the config) and the kubelet never starts with it.
var (
	joinRetryFirst = 2 * time.Second
	joinRetryMax   = 30 * time.Second
)

func parseServerURL(server string) (*url.URL, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("kubernetes.server %q: give a server's address as https://HOST:6443", server)
	}
	return u, nil
}

func (a *agent) run(ctx context.Context) error {
	a.l = a.o.Layout
	if a.k.Server == "" {
		return errNoServer
	}
	fixed, err := hostPort(a.k.Server)
	if err != nil {
		return err
	}
	tok, err := a.token()
	if err != nil {
		return err
	}
	name := nodeName(a.o)
	a.o.Printf("node: agent %s joins the cluster through %s", name, a.k.Server)
	client := &join.Client{Server: a.k.Server, Token: tok}
	serving, clientCA, until, kept := a.keptCredentials(name)
	if kept {
		a.o.Printf("node: agent %s rejoins with its kubelet's client certificate (valid until %s) and the CAs it verified when it joined; the token is not needed", name, until.UTC().Format(time.DateTime))
	}
	said := ""
	for delay := joinRetryFirst; !kept; delay = min(delay*2, joinRetryMax) {
		serving, clientCA, err = client.CAs(ctx)
		// The proof's key derivation took join.ProofMemory: PID 1 gives it back.
		debug.FreeOSMemory()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return errStopped
		}
		wait := delay
		if errors.Is(err, join.ErrCAMismatch) {
			// Said once: the token stays wrong until someone changes the config.
			wait = wrongTokenRetry
			if err.Error() != said {
				said = err.Error()
				a.o.Printf("node: not joining: %v. This agent has no kubelet certificate to rejoin with, so it needs the cluster's current token: check kubernetes.agent-token (or token), which cairn token rotate may have replaced; it starts no kubelet until then (trying again every %s)", err, wait)
			}
		} else {
			a.o.Printf("node: the cluster at %s: %v; retrying in %s", a.k.Server, err, wait)
		}
		if !supervise.Sleep(ctx, wait) {
			return errStopped
		}
	}
	if !kept {
		a.o.Printf("node: the cluster's CA is verified with the token")
	}

	ln, err := net.Listen("tcp", lb.Addr)
	if err != nil {
		return fmt.Errorf("the control-plane proxy: %w", err)
	}
	balancer := lb.New(fixed, a.o.Printf)
	supervise.Go("node: balancer", func() { balancer.Serve(ctx, ln) })

	w := &worker{o: a.o, k: a.k, l: a.l, apiserver: "https://" + lb.Addr,
		servingCA: serving, clientCA: clientCA, secret: tok.Secret}
	w.node = render.Node{Name: name, IP: a.k.NodeIP, Layout: a.l, Bin: a.o.Bin}
	if w.node.IP == "" {
		if addrs := nodeAddresses(a.o); len(addrs) > 0 {
			w.node.IP = addrs[0].String()
		}
	}
	if err := w.start(ctx); err != nil {
		return err
	}
	tlsCfg, err := w.kubeletTLS()
	if err != nil {
		a.o.Printf("node: %v; the control-plane proxy knows only %s", err, fixed)
		return nil
	}
	api := kube.New("https://"+lb.Addr, kube.Options{TLS: tlsCfg})
	supervise.Go("node: learn servers", func() { balancer.Learn(ctx, api) })
	return nil
}

// keptMargin: a kubelet certificate this close to its end is not
// rejoined with (the kubelet could not renew it in time).
const keptMargin = 10 * time.Minute

// keptCredentials are what an agent kept on STATE from an earlier join:
// the CAs it verified with the token then, and its kubelet's client
// certificate, when that certificate is this node's, issued by the kept
// client CA, and valid for more than keptMargin. An agent that has them
// rejoins without the token, which may have been rotated since; the
// kubelet carries on with its certificate and renews it itself.
func (a *agent) keptCredentials(name string) (serving, clientCA []byte, until time.Time, ok bool) {
	const limit = 1 << 20
	serving, err := files.Read(a.l.Cert("server-ca.crt"), limit)
	if err != nil {
		return nil, nil, time.Time{}, false
	}
	if clientCA, err = files.Read(a.l.Cert("client-ca.crt"), limit); err != nil || len(clientCA) == 0 {
		return nil, nil, time.Time{}, false
	}
	if _, err := kube.Pinned(serving); err != nil {
		return nil, nil, time.Time{}, false
	}
	until, ok = validKubeletCert((&worker{l: a.l}).kubeletCert(), kubeletName(name), clientCA)
	if !ok {
		return nil, nil, time.Time{}, false
	}
	return serving, clientCA, until, true
}

// token is the token the agent joins with: kubernetes.agent-token (or its
// file), else kubernetes.token (or its file). An agent never makes one up.
func (a *agent) token() (join.Token, error) {
	if t, ok, err := givenAgentToken(a.k); ok || err != nil {
		return t, err
	}
	raw, source, err := givenToken(a.k)
	if err != nil {
		return join.Token{}, err
	}
	if raw == "" {
		return join.Token{}, errors.New("an agent needs the cluster's agent token: set kubernetes.agent-token (or agent-token-file), or kubernetes.token when the servers have no agent token")
	}
	t, err := join.ParseToken(raw)
	if err != nil {
		return join.Token{}, fmt.Errorf("%s: %w", source, err)
	}
	return t, nil
}

// hostPort is a server URL's host:port, for the balancer.
func hostPort(server string) (string, error) {
	u, err := parseServerURL(server)
	if err != nil {
		return "", err
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "6443"), nil
	}
	return u.Host, nil
}

var errNoServer = fmt.Errorf("an agent needs kubernetes.server (https://ADDRESS:6443) or kubernetes.vip")
