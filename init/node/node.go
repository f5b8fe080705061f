// Package node turns a node's loaded config into its supervised
// components: on a server the datastore (kine or embedded etcd), the
// cluster's identity read from or created in it, kube-apiserver,
// kube-controller-manager and kube-scheduler, each with the files it needs
// written first (0600 for secrets), its dependencies, a ready check and a
// restart policy with backoff.
package node

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/files"
	"github.com/cairn-os/cairn/config/join"
	"github.com/cairn-os/cairn/init/node/render"
	"github.com/cairn-os/cairn/init/node/upgrader"
	"github.com/cairn-os/cairn/init/supervise"
)

// Options tell Start about the machine it runs on.
type Options struct {
	Config   *config.Config
	Services *supervise.Supervisor
	// Printf writes one console line.
	Printf func(format string, args ...any)
	// Hostname is the node's host name.
	Hostname string
	// Addresses returns the node's addresses, for its certificates and
	// the console; nil when there is no network.
	Addresses func() []netip.Addr
	// Layout is where state and certificates live; render.DefaultLayout
	// when zero.
	Layout render.Layout
	// Bin is the directory of the component applets (/usr/bin).
	Bin string
	// ConfigLoaded is when the config was loaded, to report the init's
	// own overhead.
	ConfigLoaded time.Time
	// Debug copies the components' output to the console (cairn.debug),
	// except kine's, which may echo the datastore endpoint.
	Debug bool
	// System is the running system, for upgrades.
	System upgrader.System
	// Reboot restarts the machine in order (the init's shutdown path).
	Reboot func(by string)
}

// componentBackoff restarts a failed component quickly at first, and at
// most every 15 s: a datastore back from an outage is used within seconds.
var componentBackoff = supervise.Backoff{Initial: time.Second, Max: 15 * time.Second, Reset: 2 * time.Minute}

// Start starts the node's role and returns once its components are handed
// to the supervisor (a server's identity read from the datastore first),
// or when ctx ends. An error means the node cannot run its role with this
// config; the console has said why.
func Start(ctx context.Context, o Options) error {
	if o.Layout == (render.Layout{}) {
		o.Layout = render.DefaultLayout()
	}
	if o.Bin == "" {
		o.Bin = "/usr/bin"
	}
	k := &o.Config.Kubernetes
	if k.Distribution == "k3s" {
		return startK3s(o)
	}
	switch k.Role {
	case "server", "":
		s := &server{o: o, k: k}
		return s.run(ctx)
	case "agent":
		a := &agent{o: o, k: k}
		return a.run(ctx)
	default:
		return fmt.Errorf("kubernetes.role %q is not server or agent", k.Role)
	}
}

// startK3s runs a user-supplied k3s binary with the config rendered to
// /etc/rancher/k3s/config.yaml.
func startK3s(o Options) error {
	bin := filepath.Join(o.Bin, "k3s")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("kubernetes.distribution is k3s, but the image has no %s; build the image with `cairn build -k3s FILE`", bin)
	}
	cmd, err := render.K3s(o.Config, render.Node{Name: nodeName(o), Layout: o.Layout})
	if err != nil {
		return err
	}
	if err := writeFiles(cmd.Files); err != nil {
		return err
	}
	return o.Services.Start(supervise.Service{
		Name: "k3s", Path: bin, Args: cmd.Args, Env: append(baseEnv(), cmd.Env...),
		Restart: supervise.Always, Backoff: componentBackoff, StopTimeout: 30 * time.Second,
		PrivateOutput: cmd.PrivateOutput,
		// k3s serves the apiserver (servers) or its load balancer (agents) on 6443.
		Ready: supervise.ReadyTCP(fmt.Sprintf("127.0.0.1:%d", config.APIServerPort)),
	})
}

func nodeName(o Options) string {
	if n := o.Config.Kubernetes.NodeName; n != "" {
		return n
	}
	return o.Hostname
}

// componentService is how every component of cairn-node is supervised:
// restarted always, with componentBackoff; its output on the console
// with cairn.debug and its last words in its exit line, unless the
// renderer marked its output private (kine's may echo the datastore
// endpoint).
func componentService(o Options, c render.Command) supervise.Service {
	return supervise.Service{
		Name:          c.Name,
		Path:          filepath.Join(o.Bin, c.Name),
		Args:          c.Args,
		Env:           append(baseEnv(), c.Env...),
		Restart:       supervise.Always,
		Backoff:       componentBackoff,
		StopTimeout:   20 * time.Second,
		Console:       o.Debug && !c.PrivateOutput,
		PrivateOutput: c.PrivateOutput,
	}
}

// baseEnv is the environment every component starts with.
func baseEnv() []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
}

// writeFiles writes each file atomically with its mode, its directory
// created 0700.
func writeFiles(files []render.File) error {
	for _, f := range files {
		if err := writeFile(f.Path, f.Data, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	if err == nil {
		err = files.WriteAtomic(path, data, mode, -1, -1)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// maxTokenFile bounds a token-file read.
const maxTokenFile = 4096

// resolveToken returns the cluster token: kubernetes.token, else the
// token-file, else the one this node generated on an earlier boot, else a
// new one (a single server that was given none).
func resolveToken(k *config.Kubernetes, l render.Layout, printf func(string, ...any)) (join.Token, error) {
	raw, source, err := givenToken(k)
	if err != nil {
		return join.Token{}, err
	}
	generated := filepath.Join(l.DataDir, "token")
	if raw == "" {
		if tok, err := readToken(generated); err == nil {
			raw, source = tok, generated
		}
	}
	if raw == "" {
		secret, err := join.Generate()
		if err != nil {
			return join.Token{}, err
		}
		printf("node: no token was given; this server made one for a new cluster")
		return join.Token{Secret: secret}, nil
	}
	t, err := join.ParseToken(raw)
	if err != nil {
		return join.Token{}, fmt.Errorf("%s: %w", source, err)
	}
	return t, nil
}

// givenToken is the token the config gives, kubernetes.token else the
// token-file, and where it came from; "" when neither gives one.
func givenToken(k *config.Kubernetes) (raw, source string, err error) {
	if k.Token != "" {
		return k.Token, "kubernetes.token", nil
	}
	if k.TokenFile == "" {
		return "", "", nil
	}
	raw, err = readToken(k.TokenFile)
	if err != nil {
		return "", "", fmt.Errorf("kubernetes.token-file: %w", err)
	}
	return raw, k.TokenFile, nil
}

// givenAgentToken is the agent token the config gives, kubernetes.agent-token
// else the agent-token-file, parsed; ok is false when it gives none.
func givenAgentToken(k *config.Kubernetes) (t join.Token, ok bool, err error) {
	raw, source := k.AgentToken, "kubernetes.agent-token"
	if raw == "" && k.AgentTokenFile != "" {
		if raw, err = readToken(k.AgentTokenFile); err != nil {
			return join.Token{}, false, fmt.Errorf("kubernetes.agent-token-file: %w", err)
		}
		source = k.AgentTokenFile
	}
	if raw == "" {
		return join.Token{}, false, nil
	}
	if t, err = join.ParseToken(raw); err != nil {
		return join.Token{}, false, fmt.Errorf("%s: %w", source, err)
	}
	return t, true, nil
}

// readToken reads a token file, at most maxTokenFile bytes, without the
// white space around the token.
func readToken(path string) (string, error) {
	data, err := files.Read(path, maxTokenFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// errStopped is returned when the boot ended (a shutdown began).
var errStopped = errors.New("the boot ended")
