package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/node/pki"
)

// Token rotation (`cairn token rotate`, config/join's RotateRequest on the
// admin port). A server told of a new server token re-seals the cluster
// record with it (a new salt, everything else as it was) under the
// record's compare-and-swap, or finds it re-sealed by another server and
// checks that it opens; told of a new agent token, it records that
// token's bootstrap token in the record's settings (agent-token, which
// every server must match). Either way it keeps the new token on STATE
// (its token file, 0600), applies the bootstrap tokens and the CA proofs
// derived from the tokens it holds now, and deletes the old token's
// bootstrap token: the old token then opens nothing and joins nothing.
// At boot, a config that still names the replaced token is taken for
// stale: the server uses the rotated one it kept, and says so once.

// rotationGrace is how long a server keeps quiet about a record it can
// no longer open with its token: another server re-sealed it, and
// cairn token rotate reaches this one within seconds.
var rotationGrace = time.Minute

// rotation is what a server knows of token rotations.
type rotation struct {
	// stale are the console lines of this boot about a token in the
	// config that a rotation replaced.
	stale []string
	// staleAgent is true when this boot uses the rotated agent token the
	// server kept, not the config's.
	staleAgent bool
	// running is held while a rotation runs on this server.
	running sync.Mutex
}

// secret is the server token's secret.
func (s *server) secret() string {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	return s.tok.Secret
}

// agentToken is the agent token's secret, "" when the cluster has none.
func (s *server) agentToken() string {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	return s.agentSecret
}

// agentTokenPath is where a server keeps the agent token a rotation gave
// it (0600, beside its server token).
func (s *server) agentTokenPath() string { return filepath.Join(s.l.DataDir, "agent-token") }

// agentSetting is the must-match setting of agent token secret ("" for
// none), as the cluster record holds it.
func agentSetting(secret string) string {
	if secret == "" {
		return ""
	}
	return agentTokenSetting(&config.Kubernetes{AgentToken: secret})
}

// claimRotated is claim with this server's token and, when the record is
// sealed with another, with the token this server keeps in its token file:
// the rotated one, when a rotation reached this server and its config
// still names the old one. It uses that token from then on, and the boot
// says the config's is stale.
func (s *server) claimRotated(ctx context.Context, kv clientv3.KV) (*claimResult, error) {
	res, err := claim(ctx, kv, s.tok.Secret, mustMatch(s.k))
	if !errors.Is(err, errWrongToken) {
		return res, err
	}
	raw, rerr := readToken(s.tokenPath())
	kept, perr := join.ParseToken(raw)
	if rerr != nil || perr != nil || kept.Secret == s.tok.Secret {
		return nil, err
	}
	debug.FreeOSMemory()
	res, kerr := openCluster(ctx, kv, kept.Secret)
	if errors.Is(kerr, errWrongToken) {
		return nil, err
	} else if kerr != nil {
		return nil, kerr
	}
	_, source, _ := givenToken(s.k)
	s.tok = kept
	s.rot.stale = []string{fmt.Sprintf("node: the token in %s is stale: the server token was rotated (cairn token rotate); this server opened the cluster with the rotated one it keeps in %s. Put that one in the config", source, s.tokenPath())}
	return res, nil
}

// useRotatedTokens takes the agent token this server kept from a
// rotation when the cluster record names its bootstrap token and the
// config's agent-token is another (or none), and says on the console,
// once, which tokens of the config are stale. A config whose agent-token
// the record names neither way is left to the must-match check.
func (s *server) useRotatedTokens(res *claimResult) {
	defer func() {
		for _, l := range s.rot.stale {
			s.o.Printf("%s", l)
		}
	}()
	want, recorded := res.Settings["agent-token"]
	if !recorded || want == "" || agentTokenSetting(s.k) == want {
		return
	}
	raw, err := readToken(s.agentTokenPath())
	if err != nil {
		return
	}
	kept, err := join.ParseToken(raw)
	if err != nil || agentSetting(kept.Secret) != want {
		return
	}
	s.agentSecret = kept.Secret
	s.rot.staleAgent = true
	line := "node: the agent token in kubernetes.agent-token is stale"
	if _, ok, _ := givenAgentToken(s.k); !ok {
		line = "node: this server's config gives no agent-token, but the cluster has one"
	} else if s.k.AgentToken == "" {
		line = "node: the agent token in " + s.k.AgentTokenFile + " is stale"
	}
	s.rot.stale = append(s.rot.stale, line+fmt.Sprintf(": the agent token was rotated (cairn token rotate --agent); this server uses the rotated one it keeps in %s. Put that one in the config", s.agentTokenPath()))
}

// mustMatch are this server's must-match settings, its agent token the
// rotated one when it uses that.
func (s *server) mustMatch() map[string]string {
	m := mustMatch(s.k)
	if s.rot.staleAgent {
		m["agent-token"] = agentSetting(s.agentToken())
	}
	return m
}

// joinObjects are the objects this server publishes for the holders of
// the tokens it holds now.
func (s *server) joinObjects(c pki.Cluster) []kube.Object {
	ca := c[pki.ServerCA].Cert
	return published(s.secret(), s.agentToken(), join.NewKDF(ca), ca, c[pki.ClientCA].Cert)
}

// adminRoutes are this server's routes on its admin port (the upgrade
// file port), which serves them to admin certificates only.
func (s *server) adminRoutes(c pki.Cluster) map[string]http.Handler {
	return map[string]http.Handler{
		http.MethodPost + " " + join.RotatePath: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveRotate(w, r, c) }),
	}
}

// rotateError is a rotation's failure and the HTTP status it answers.
type rotateError struct {
	code int
	err  error
}

func (e *rotateError) Error() string { return e.err.Error() }
func (e *rotateError) Unwrap() error { return e.err }

func refuse(code int, format string, a ...any) error {
	return &rotateError{code: code, err: fmt.Errorf(format, a...)}
}

// serveRotate answers a RotateRequest from an admin's certificate (the
// port checked it), one at a time, with one console line either way.
func (s *server) serveRotate(w http.ResponseWriter, r *http.Request, c pki.Cluster) {
	var leaf *x509.Certificate
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		leaf = r.TLS.VerifiedChains[0][0]
	}
	if leaf == nil {
		http.Error(w, "only an admin may rotate a token", http.StatusForbidden)
		return
	}
	var req join.RotateRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, join.MaxRotateRequest)).Decode(&req); err != nil {
		http.Error(w, "the request is not a token rotation's JSON (at most "+fmt.Sprint(join.MaxRotateRequest)+" bytes)", http.StatusBadRequest)
		return
	}
	if !s.rot.running.TryLock() {
		http.Error(w, "another token rotation is under way on this server; try again once it ends", http.StatusConflict)
		return
	}
	defer s.rot.running.Unlock()
	// Begun, a rotation runs to its end (or its bound) even if the client
	// goes: the connection's read deadline, which net/http's background
	// read meets while the handler works, would otherwise cancel it.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(join.RotateTimeout + time.Minute))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), join.RotateTimeout)
	defer cancel()
	reply, line, err := s.rotate(ctx, c, leaf, req)
	debug.FreeOSMemory() // the key derivations took 64 MiB each
	if err != nil {
		code := http.StatusServiceUnavailable
		var re *rotateError
		if errors.As(err, &re) {
			code = re.code
		}
		verb := "refused"
		if code >= 500 {
			verb = "could not finish"
		}
		s.o.Printf("node: %s a rotation of the %s token asked by %s: %v", verb, req.Role, leaf.Subject.CommonName, err)
		http.Error(w, err.Error(), code)
		return
	}
	s.o.Printf("%s", line)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(reply)
}

// rotate replaces the server token or the agent token on this server, as
// the package's comment says; it returns the answer and the console line.
// Nothing it says holds a token.
func (s *server) rotate(ctx context.Context, c pki.Cluster, admin *x509.Certificate, req join.RotateRequest) (*join.RotateReply, string, error) {
	if req.Role != join.RoleServer && req.Role != join.RoleAgent {
		return nil, "", refuse(http.StatusBadRequest, "the request names no token to rotate (role %q; give %q or %q)", req.Role, join.RoleServer, join.RoleAgent)
	}
	tok, err := join.CheckNew(req.Token)
	if err != nil {
		return nil, "", refuse(http.StatusBadRequest, "%v", err)
	}
	if err := join.CheckPin(tok, c[pki.ServerCA].Cert); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "the new K10 token pins another CA than this cluster's: %v", err)
	}
	cur, agent := s.secret(), s.agentToken()
	switch {
	case req.Role == join.RoleServer && tok.Secret == agent:
		return nil, "", refuse(http.StatusBadRequest, "the new server token is the cluster's agent token: the two must differ, since every agent holds the agent token")
	case req.Role == join.RoleAgent && tok.Secret == cur:
		return nil, "", refuse(http.StatusBadRequest, "the new agent token is the server token: the two must differ, since every agent would hold the server's")
	}
	tlsCfg, err := s.adminTLS(c)
	if err != nil {
		return nil, "", err
	}
	api := kube.New(apiserverLocal, kube.Options{TLS: tlsCfg})
	defer api.CloseIdleConnections()
	if err := mayRotate(ctx, api, admin); err != nil {
		return nil, "", err
	}
	cli, err := clientv3.New(s.rest.ds)
	if err != nil {
		return nil, "", fmt.Errorf("a client for the datastore: %w", err)
	}
	defer cli.Close()

	ca := c[pki.ServerCA].Cert
	reply := &join.RotateReply{Node: nodeName(s.o)}
	var kept string
	if req.Role == join.RoleServer {
		kept = s.tokenPath()
		// Kept first: once the record is re-sealed, a reboot finds it.
		if err := writeFile(kept, []byte(join.Full(tok.Secret, ca)+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		reply.Sealed, err = s.rest.reseal(ctx, cli, tok.Secret)
		if err != nil {
			writeFile(kept, []byte(join.Full(cur, ca)+"\n"), 0o600)
			return nil, "", err
		}
		s.tokMu.Lock()
		s.tok = join.Token{Secret: tok.Secret}
		s.tokMu.Unlock()
		reply.Bootstrap, _ = join.ServerBootstrapToken(tok.Secret)
	} else {
		kept = s.agentTokenPath()
		if err := writeFile(kept, []byte(join.Full(tok.Secret, ca)+"\n"), 0o600); err != nil {
			return nil, "", err
		}
		reply.Sealed, err = s.rest.setAgentSetting(ctx, cli, agentSetting(agent), agentSetting(tok.Secret))
		if err != nil {
			return nil, "", err
		}
		s.tokMu.Lock()
		s.agentSecret = tok.Secret
		s.tokMu.Unlock()
		reply.Bootstrap, _ = join.AgentBootstrapToken(tok.Secret)
	}
	// This server's kubelet, should it lose its certificate, asks with
	// the bootstrap token that exists from now on.
	w := &worker{l: s.l, apiserver: apiserverLocal, secret: s.agentJoinSecret()}
	if err := writeFile(s.l.Kubeconfig("bootstrap-kubelet"), w.bootstrapKubeconfig(), 0o600); err != nil {
		return nil, "", err
	}
	objs := s.joinObjects(c)
	if err := publish(ctx, api, objs); err != nil {
		return nil, "", fmt.Errorf("the new token is in place, but publishing its bootstrap token and CA proof failed: %w; run cairn token rotate again", err)
	}
	removed, err := removeStale(ctx, api, objs)
	for _, what := range removed {
		if id, ok := strings.CutPrefix(what, "bootstrap token "); ok {
			reply.Removed = append(reply.Removed, id)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("the new token is in place, but removing the old one's bootstrap token failed: %w; run cairn token rotate again", err)
	}

	which, flag := "server", ""
	if req.Role == join.RoleAgent {
		which, flag = "agent", " --agent"
	}
	line := fmt.Sprintf("node: the %s token was rotated (cairn token rotate%s, by %s): ", which, flag, admin.Subject.CommonName)
	switch {
	case req.Role == join.RoleServer && reply.Sealed:
		line += "this server re-sealed the cluster record with it"
	case req.Role == join.RoleServer:
		line += "the cluster record, re-sealed already, opens with it here"
	case reply.Sealed:
		line += "this server recorded it in the cluster record"
	default:
		line += "the cluster record names it already"
	}
	line += fmt.Sprintf("; bootstrap token %s", reply.Bootstrap)
	if len(reply.Removed) > 0 {
		line += " replaces " + strings.Join(reply.Removed, ", ")
	}
	line += fmt.Sprintf("; the CA proof is published under it; kept in %s", kept)
	return reply, line, nil
}

// mayRotate asks the apiserver whether admin's certificate may still act
// as an admin: deleting kube-system's bootstrap token Secrets is what a
// rotation does. A certificate of the admins' group whose binding was
// deleted is refused here as it is by the apiserver.
func mayRotate(ctx context.Context, api *kube.Client, admin *x509.Certificate) error {
	review := map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
		"spec": map[string]any{
			"user":   admin.Subject.CommonName,
			"groups": append(append([]string(nil), admin.Subject.Organization...), "system:authenticated"),
			"resourceAttributes": map[string]string{
				"namespace": "kube-system", "verb": "delete", "resource": "secrets",
			},
		},
	}
	var out struct {
		Status struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"status"`
	}
	if err := api.Do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/subjectaccessreviews", review, &out); err != nil {
		return fmt.Errorf("asking the apiserver whether %s may rotate a token: %w", admin.Subject.CommonName, err)
	}
	if !out.Status.Allowed {
		return refuse(http.StatusForbidden, "%s (%s) may not delete Secrets in kube-system: not an admin the cluster names (its binding %s deleted?)",
			admin.Subject.CommonName, strings.Join(admin.Subject.Organization, ","), join.AdminsGroup)
	}
	return nil
}

// errNeitherToken: the record opens with neither token a rotation names.
var errNeitherToken = &rotateError{code: http.StatusConflict, err: errors.New("the cluster record opens with neither this server's token nor the new one: another rotation sealed it with a third token; run cairn token rotate with that one")}

// reseal seals the record with newSecret, under a new salt and nonce,
// holding what it held and every clear field as it was, when it still
// opens with this server's token, under the record's compare-and-swap;
// when it opens with newSecret already (another server re-sealed it first,
// or this one on an earlier try) it changes nothing. Either way the
// record is opened with newSecret from then on. sealed says whether this
// call re-sealed it. At most three key derivations (64 MiB each).
func (a *atRest) reseal(ctx context.Context, kv clientv3.KV, newSecret string) (sealed bool, err error) {
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	for range 4 {
		r, rev, err := readRecord(ctx, kv)
		if err != nil {
			return false, err
		}
		if r == nil {
			return false, errors.New("the cluster record is gone from the datastore")
		}
		if err := r.checkVersion(); err != nil {
			return false, err
		}
		// Sealed as this server last opened it, or anew (only a
		// rotation gives a record a new salt).
		var c pki.Cluster
		err = errWrongToken
		if bytes.Equal(r.Salt, a.salt) {
			c, err = r.openWith(a.key)
		}
		switch {
		case err == nil && newSecret == a.secret:
			return false, nil // this server re-sealed it, on an earlier try
		case errors.Is(err, errWrongToken):
			key, err := sealKey(newSecret, r)
			if err != nil {
				return false, err
			}
			if _, err := r.openWith(key); err == nil {
				a.secret, a.key, a.salt = newSecret, key, r.Salt
				return false, nil
			}
			if key, err = sealKey(a.secret, r); err != nil {
				return false, err
			}
			if c, err = r.openWith(key); errors.Is(err, errWrongToken) {
				return false, errNeitherToken
			} else if err != nil {
				return false, err
			}
		case err != nil:
			return false, err
		}
		nr := *r
		nr.Salt = make([]byte, 16)
		if _, err := rand.Read(nr.Salt); err != nil {
			return false, err
		}
		key, err := sealKey(newSecret, &nr)
		if err != nil {
			return false, err
		}
		if err := nr.seal(key, c); err != nil {
			return false, err
		}
		_, written, err := replaceRecord(ctx, kv, rev, &nr)
		if err != nil {
			return false, fmt.Errorf("writing the re-sealed cluster record: %w", err)
		}
		if written {
			a.secret, a.key, a.salt = newSecret, key, nr.Salt
			return true, nil
		}
		// Changed meanwhile (a step of Secrets at rest, or another
		// server's rotation): read it again.
	}
	return false, errors.New("the cluster record changed four times while this server re-sealed it; run cairn token rotate again")
}

// setAgentSetting records to as the cluster's agent-token setting, when
// the record names from (this server's agent token's) or none, under the
// record's compare-and-swap; when it names to already it changes nothing.
// The record must open with this server's token: only a server of the
// cluster changes it. changed says whether this call wrote it.
func (a *atRest) setAgentSetting(ctx context.Context, kv clientv3.KV, from, to string) (changed bool, err error) {
	for range 4 {
		r, rev, _, _, err := a.read(ctx, kv)
		if err != nil {
			return false, err
		}
		if r == nil {
			return false, errors.New("the cluster record is gone from the datastore")
		}
		now, ok := r.Settings["agent-token"]
		switch {
		case ok && now == to:
			return false, nil
		case ok && now != from:
			return false, refuse(http.StatusConflict, "the cluster record names another agent token (%q) than this server's (%q) or the new one: another rotation made it a third token; run cairn token rotate --agent with that one", now, from)
		}
		nr := *r
		nr.Settings = maps.Clone(r.Settings)
		if nr.Settings == nil {
			nr.Settings = map[string]string{}
		}
		nr.Settings["agent-token"] = to
		_, written, err := replaceRecord(ctx, kv, rev, &nr)
		if err != nil {
			return false, fmt.Errorf("writing the cluster record: %w", err)
		}
		if written {
			return true, nil
		}
	}
	return false, errors.New("the cluster record changed four times while this server recorded the agent token; run cairn token rotate --agent again")
}
