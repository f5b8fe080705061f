package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// Rotating a token (`cairn token rotate`): an admin sends the new token
// to every server, straight to its admin port (upgrade.BlobPort) over TLS
// with an admin client certificate (organisation AdminsGroup, as
// `cairn kubeconfig` mints it). Each server checks that it can open the
// cluster record; the first re-seals it with a new server token (a second
// finds it re-sealed and checks that it opens) or records the new agent
// token's bootstrap token in it; each replaces the bootstrap token and
// the CA proof derived from the old token, keeps the new token on its
// STATE, and answers with a RotateReply. Running it again with the same
// token changes nothing and answers the same.

// RotatePath is where a server takes a RotateRequest (POST, JSON).
const RotatePath = "/cairn/v1/token"

// RotateRequest asks a server to rotate one of the cluster's tokens.
type RotateRequest struct {
	// Role is which token: RoleServer or RoleAgent.
	Role Role `json:"role"`
	// Token is the new token, plain or K10.
	Token string `json:"token"`
}

// RotateReply is a server's answer to a rotation it made or found made.
type RotateReply struct {
	// Node is the server's Node name.
	Node string `json:"node"`
	// Sealed is true when this server changed the cluster record (it
	// re-sealed it with the new server token, or recorded the new agent
	// token in it); false when another server had already.
	Sealed bool `json:"sealed"`
	// Bootstrap is the id of the new token's bootstrap token (the id is
	// public; its secret is the second part).
	Bootstrap string `json:"bootstrap"`
	// Removed are the ids of the bootstrap tokens this server deleted:
	// the old token's, unless another server deleted it first.
	Removed []string `json:"removed,omitempty"`
}

// Bounds of a rotation.
const (
	// MaxRotateRequest bounds the request a server reads.
	MaxRotateRequest = 8 << 10
	// maxRotateReply bounds a server's answer the client reads.
	maxRotateReply = 64 << 10
	// RotateTimeout bounds one server's work: up to four Argon2id runs
	// (seconds each under emulation), the record's compare-and-swap, and
	// the join objects applied again.
	RotateTimeout = 3 * time.Minute
)

// CheckNew parses raw as a cluster's new token and refuses a weak one,
// saying how to make one. Errors never contain the token.
func CheckNew(raw string) (Token, error) {
	t, err := ParseToken(raw)
	if err != nil {
		return Token{}, fmt.Errorf("the new token: %w", err)
	}
	if bits := Strength(t.Secret); bits < MinStrength {
		return Token{}, fmt.Errorf("the new token is too weak: about %.0f bits of estimated strength, fewer than %d; make one with `cairn token generate`, or let `cairn token rotate` make it", bits, MinStrength)
	}
	return t, nil
}

// Server is a server as a rotation reaches it.
type Server struct {
	// Name is its Node's name.
	Name string
	// Address is its Node's InternalIP; "" when it reports none.
	Address string
}

// Rotation sends a new token to a cluster's servers with an admin
// kubeconfig's credentials.
type Rotation struct {
	// Admin are the credentials of an admin kubeconfig: its apiserver
	// lists the servers, its client certificate is the one the servers
	// take a rotation from, its CA the one their port proves itself with.
	Admin *kube.Credentials
	// Role is which token: RoleServer or RoleAgent.
	Role Role
	// Token is the new token.
	Token string
	// Timeout bounds each server (RotateTimeout when zero).
	Timeout time.Duration
	// Port is the servers' admin port (upgrade.BlobPort when zero).
	Port int
}

// Servers lists the cluster's servers (the Nodes labelled
// upgrade.ServerLabel), by name, and how many apiservers run (their
// identity Leases, renewed within 90 s): more apiservers than servers
// means a server has no Node yet, and a rotation does not reach it.
func (r *Rotation) Servers(ctx context.Context) (servers []Server, apiservers int, err error) {
	api := r.Admin.Client(kube.Options{Timeout: 30 * time.Second, MaxReply: 16 << 20})
	defer api.CloseIdleConnections()
	var nodes struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				Addresses []struct{ Type, Address string } `json:"addresses"`
			} `json:"status"`
		} `json:"items"`
	}
	sel := "?labelSelector=" + url.QueryEscape(upgrade.ServerLabel)
	if err := api.Get(ctx, "/api/v1/nodes"+sel, &nodes); err != nil {
		return nil, 0, fmt.Errorf("listing the servers: %w", err)
	}
	for _, n := range nodes.Items {
		s := Server{Name: n.Metadata.Name}
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				s.Address = a.Address
				break
			}
		}
		servers = append(servers, s)
	}
	slices.SortFunc(servers, func(a, b Server) int { return strings.Compare(a.Name, b.Name) })
	var leases struct {
		Items []struct {
			Spec struct {
				RenewTime string `json:"renewTime"`
			} `json:"spec"`
		} `json:"items"`
	}
	lsel := "?labelSelector=" + url.QueryEscape("apiserver.kubernetes.io/identity=kube-apiserver")
	if err := api.Get(ctx, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"+lsel, &leases); err != nil {
		return servers, 0, fmt.Errorf("listing the apiservers: %w", err)
	}
	for _, l := range leases.Items {
		if t, err := time.Parse(time.RFC3339Nano, l.Spec.RenewTime); err == nil && time.Since(t) < 90*time.Second {
			apiservers++
		}
	}
	return servers, apiservers, nil
}

// On sends the new token to one server and returns its answer.
func (r *Rotation) On(ctx context.Context, s Server) (*RotateReply, error) {
	if s.Address == "" {
		return nil, errors.New("its Node reports no InternalIP to reach it at")
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = RotateTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := r.Port
	if port == 0 {
		port = upgrade.BlobPort
	}
	tlsCfg := r.Admin.TLS.Clone()
	// The port answers with the apiserver's certificate, which names
	// "kubernetes" on every server.
	tlsCfg.ServerName = "kubernetes"
	tr := &http.Transport{TLSClientConfig: tlsCfg, TLSHandshakeTimeout: 10 * time.Second,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext}
	if r.Admin.DialContext != nil {
		tr.DialContext = r.Admin.DialContext
	}
	defer tr.CloseIdleConnections()
	body, err := json.Marshal(RotateRequest{Role: r.Role, Token: r.Token})
	if err != nil {
		return nil, err
	}
	host := net.JoinHostPort(s.Address, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+RotatePath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s did not answer within %s", host, timeout)
		}
		return nil, fmt.Errorf("reaching %s: %s", host, brief.Err(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRotateReply))
	if err != nil {
		return nil, fmt.Errorf("reading %s's answer: %s", host, brief.Err(err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("%s has no %s: it runs a cairn without token rotation; upgrade it first", host, RotatePath)
	default:
		return nil, fmt.Errorf("%s answered %d: %s", host, resp.StatusCode, brief.FirstLine(data, 400))
	}
	var reply RotateReply
	if err := json.Unmarshal(data, &reply); err != nil {
		return nil, fmt.Errorf("%s's answer is not a rotation's: %v", host, err)
	}
	return &reply, nil
}
