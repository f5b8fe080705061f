// Package rollout is the client side of a rolling upgrade, used by
// `cairn upgrade`: it reads and checks update bundles, asks the cluster for
// an Upgrade, uploads a bundle's files to the servers, starts the upgrade
// and follows it.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/config/upgrade"
)

// Options are what `cairn upgrade` asks for, as its flags give them.
type Options struct {
	// Kubeconfig is the --kubeconfig given, as the hints printed name it
	// ("" for $KUBECONFIG).
	Kubeconfig string
	// Images are the update bundles, one per board: a build output
	// directory, its update/, or the http(s) URL of the directory holding
	// update.json.
	Images []string
	// Nodes are the nodes to upgrade in this order; none means every node,
	// servers first, each group by name.
	Nodes []string
	// MaxUnavailable is how many nodes may be upgrading at once.
	MaxUnavailable int
	// DrainTimeout and HealthTimeout bound a node's drain, and the time
	// it has to be healthy on the new system.
	DrainTimeout, HealthTimeout time.Duration
	// Deployments (NAMESPACE/NAME) must be available before a node keeps
	// the new system.
	Deployments []string
	// Detach returns once the upgrade runs instead of following it.
	Detach bool
}

// now is the clock names and times come from (tests set it).
var now = time.Now

// Run checks the request against the cluster, creates the Upgrade,
// uploads a directory's files to the servers, starts it and follows it
// (unless o.Detach), with a line on stderr per step and on stdout per node
// and phase. It returns ErrReported when the upgrade fails or following
// it stops, once it has said so.
func Run(ctx context.Context, stdout, stderr io.Writer, k *Kube, o Options) error {
	var bundles []*bundle
	for _, arg := range o.Images {
		b, err := readBundle(ctx, arg)
		if err != nil {
			return err
		}
		for _, prev := range bundles {
			if prev.Board == b.Board {
				return fmt.Errorf("two bundles for board %s: --image %s and --image %s; give one per board", b.Board, prev.arg, b.arg)
			}
		}
		bundles = append(bundles, b)
		fmt.Fprintf(stderr, "cairn upgrade: %s\n", b)
	}
	u, nodes, servers, err := planUpgrade(ctx, k, o, bundles)
	if err != nil {
		return err
	}
	name := u.Metadata.Name
	var created upgrade.Upgrade
	if err := k.api.Do(ctx, http.MethodPost, upgrade.Path(""), u, &created); err != nil {
		return fmt.Errorf("creating upgrade %s: %w", name, err)
	}
	var order []string
	for _, n := range nodes {
		if n.Version != "" {
			order = append(order, n.Name+" (at "+n.Version+")")
		} else {
			order = append(order, n.Name)
		}
	}
	fmt.Fprintf(stderr, "cairn upgrade: created %s for %s\n", name, strings.Join(order, ", "))

	// Until it runs, the Upgrade is removed on a failure: an Upgrade not
	// Done blocks the next one.
	follow := followCommand(o.Kubeconfig, name)
	abandon := func(err error) error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// Started after all (the reply to the start was lost): nodes may
		// be acting on it, so it stays.
		if u, gerr := k.get(dctx, name); gerr == nil && u.Status.Phase != "" {
			return fmt.Errorf("%w; upgrade %s was started all the same and goes on: follow it with %s", err, name, follow)
		}
		if derr := k.api.Do(dctx, http.MethodDelete, upgrade.Path(name), nil, nil); derr != nil {
			return fmt.Errorf("%w; removing upgrade %s failed too (%v): remove it with 'kubectl -n %s delete %s %s'", err, name, derr, upgrade.Namespace, upgrade.Plural, name)
		}
		return fmt.Errorf("%w; upgrade %s removed, no node was touched", err, name)
	}
	if err := upload(ctx, stderr, k, bundles, servers, created.Metadata.UID); err != nil {
		return abandon(err)
	}
	if err := start(ctx, k, name); err != nil {
		return abandon(err)
	}
	if o.Detach {
		fmt.Fprintf(stderr, "cairn upgrade: %s is running in the cluster; follow it with: %s\n", name, follow)
		return nil
	}
	fmt.Fprintf(stderr, "cairn upgrade: %s is running; Ctrl-C stops following it, not the upgrade\n", name)
	return followUpgrade(ctx, stdout, stderr, k, name, follow)
}

// planUpgrade checks the request against the cluster and makes the
// Upgrade: the nodes in their order, and the servers that hold a bundle
// directory's files. It refuses while another upgrade has not ended.
func planUpgrade(ctx context.Context, k *Kube, o Options, bundles []*bundle) (*upgrade.Upgrade, []kubeNode, []string, error) {
	all, err := k.nodes(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	nodes, err := pickNodes(all, o.Nodes)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, n := range nodes {
		if n.Arch != "" && !slices.ContainsFunc(bundles, func(b *bundle) bool { return b.Arch == n.Arch }) {
			return nil, nil, nil, fmt.Errorf("node %s is %s and no --image is for %s", n.Name, n.Arch, n.Arch)
		}
	}
	var servers []string
	for _, n := range all {
		if n.Server {
			servers = append(servers, n.Name)
		}
	}
	if slices.ContainsFunc(bundles, func(b *bundle) bool { return b.dir != "" }) && len(servers) == 0 {
		return nil, nil, nil, fmt.Errorf("no node is labelled %s to hold the bundle's files; serve them over HTTP and give --image URL", upgrade.ServerLabel)
	}
	for _, d := range o.Deployments {
		ns, name, _ := strings.Cut(d, "/")
		if err := k.api.WithMaxReply(maxList).Get(ctx, "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, nil); err != nil {
			if kube.IsStatus(err, http.StatusNotFound) {
				return nil, nil, nil, fmt.Errorf("--check-deployment %s: there is no such Deployment", d)
			}
			return nil, nil, nil, err
		}
	}
	ups, err := k.upgrades(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, u := range ups {
		if !upgrade.Done(u.Status.Phase) {
			state := "is " + u.Status.Phase
			if u.Status.Phase == "" {
				state = "was never started (its client stopped before starting it)"
			}
			return nil, nil, nil, fmt.Errorf("upgrade %s %s; one upgrade at a time: follow it with 'cairn upgrade status --kubeconfig %s --follow %s', or remove it with 'kubectl -n %s delete %s %s'",
				u.Metadata.Name, state, kubeconfigArg(o.Kubeconfig), u.Metadata.Name, upgrade.Namespace, upgrade.Plural, u.Metadata.Name)
		}
	}

	u := &upgrade.Upgrade{
		APIVersion: upgrade.APIVersion, Kind: upgrade.Kind,
		Metadata: upgrade.Metadata{Name: "upgrade-" + now().UTC().Format("20060102-150405"), Namespace: upgrade.Namespace},
		Spec: upgrade.Spec{
			MaxUnavailable: o.MaxUnavailable,
			DrainTimeout:   o.DrainTimeout.String(),
			HealthTimeout:  o.HealthTimeout.String(),
		},
	}
	for _, b := range bundles {
		u.Spec.Images = append(u.Spec.Images, upgrade.Image{Bundle: b.Bundle, Source: b.base})
	}
	for _, n := range nodes {
		u.Spec.Nodes = append(u.Spec.Nodes, n.Name)
	}
	for _, d := range o.Deployments {
		u.Spec.Checks = append(u.Spec.Checks, upgrade.Check{Deployment: d})
	}
	return u, nodes, servers, nil
}

// kubeconfigArg is how the hints name the kubeconfig.
func kubeconfigArg(path string) string {
	if path == "" {
		return "$KUBECONFIG"
	}
	return path
}

// followCommand is the command that follows the upgrade name.
func followCommand(kubeconfig, name string) string {
	return fmt.Sprintf("cairn upgrade status --kubeconfig %s --follow %s", kubeconfigArg(kubeconfig), name)
}

// pickNodes returns the nodes to upgrade: every node as listed (servers
// first), or those named, in the order named.
func pickNodes(all []kubeNode, names []string) ([]kubeNode, error) {
	if len(all) == 0 {
		return nil, errors.New("the cluster has no nodes")
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []kubeNode
	for _, name := range names {
		i := slices.IndexFunc(all, func(n kubeNode) bool { return n.Name == name })
		if i < 0 {
			var known []string
			for _, n := range all {
				known = append(known, n.Name)
			}
			return nil, fmt.Errorf("--nodes: the cluster has no node %s (it has %s)", name, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// start sets the Upgrade's phase to Running: the nodes act on it from
// then on.
func start(ctx context.Context, k *Kube, name string) error {
	var err error
	for range 5 {
		var u *upgrade.Upgrade
		if u, err = k.get(ctx, name); err != nil {
			return err
		}
		u.Status.Phase = upgrade.Running
		err = k.api.Do(ctx, http.MethodPut, upgrade.Path(name)+"/status", u, nil)
		if !kube.IsStatus(err, http.StatusConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("starting upgrade %s: %w", name, err)
	}
	return nil
}
