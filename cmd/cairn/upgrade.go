package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/image"
)

func init() { register(newUpgradeCmd) }

// upgradeOptions are the flags of `cairn upgrade`.
type upgradeOptions struct {
	kubeconfig     string
	images         []string
	nodes          []string
	maxUnavailable int
	drainTimeout   time.Duration
	healthTimeout  time.Duration
	deployments    []string
	detach         bool
}

func newUpgradeCmd() *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "upgrade --kubeconfig FILE --image DIR|URL [--image DIR|URL...] [flags]",
		Short: "upgrade a running cluster's nodes one at a time, each kept only when healthy",
		Long: `Starts a rolling upgrade of a running cairn cluster to the update bundle of
'cairn build' (--image: the build's output directory or its update/, or the
URL of a web server holding update.json and its files; one bundle per board),
and follows it with a line per node and step.

The request is an Upgrade object in the cluster (namespace cairn-system), so
it goes on when this command stops: each node in turn (servers first, then
agents, or --nodes in the order given) drains, writes the new system to its
other slot and boots it once; it keeps it only when the node is healthy
within --health-timeout, else it boots its old system again. A failed node
stops the rollout. Files of a bundle directory are uploaded to every server
first, through the apiserver; nodes fetch them from there. 'cairn upgrade
status' shows where an upgrade stands (docs/upgrades.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			k, err := openKube(o.kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runUpgrade(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), k, o)
		},
	}
	f := cmd.Flags()
	cmd.PersistentFlags().StringVar(&o.kubeconfig, "kubeconfig", "", "an admin kubeconfig (default $KUBECONFIG); best one naming the VIP, which stays up while servers reboot")
	f.StringArrayVarP(&o.images, "image", "i", nil, "an update bundle: a build output directory, its update/, or an http(s) URL of the directory holding update.json (repeatable: one per board)")
	f.StringSliceVar(&o.nodes, "nodes", nil, "the nodes to upgrade, in this order, comma-separated (default: every node, servers first, each group by name)")
	f.IntVar(&o.maxUnavailable, "max-unavailable", 1, "how many nodes may be upgrading at once")
	f.DurationVar(&o.drainTimeout, "drain-timeout", upgrade.DefaultDrainTimeout, "a node that cannot be drained within this (a PodDisruptionBudget that never allows an eviction) fails")
	f.DurationVar(&o.healthTimeout, "health-timeout", upgrade.DefaultHealthTimeout, "a node not healthy within this after booting the new system goes back to the old one")
	f.StringArrayVar(&o.deployments, "check-deployment", nil, "a Deployment (NAMESPACE/NAME) that must be available before a node keeps the new system (repeatable)")
	f.BoolVar(&o.detach, "detach", false, "start the upgrade and return; 'cairn upgrade status' follows it")
	cmd.MarkPersistentFlagFilename("kubeconfig")
	cmd.MarkFlagDirname("image")
	cmd.AddCommand(newUpgradeStatusCmd(&o.kubeconfig))
	return cmd
}

func (o *upgradeOptions) check() error {
	if len(o.images) == 0 {
		return usageErrorf("--image is required: a build output directory (cairn build --format update) or a URL")
	}
	if o.maxUnavailable < 1 {
		return usageErrorf("--max-unavailable %d: give 1 or more", o.maxUnavailable)
	}
	if o.drainTimeout <= 0 || o.healthTimeout <= 0 {
		return usageErrorf("--drain-timeout and --health-timeout must be positive durations such as 10m")
	}
	for _, d := range o.deployments {
		ns, name, ok := strings.Cut(d, "/")
		if !ok || !dnsLabel(ns) || !dnsSubdomain(name) {
			return usageErrorf("--check-deployment %q is not NAMESPACE/NAME", d)
		}
	}
	seen := map[string]bool{}
	for _, n := range o.nodes {
		if n == "" || seen[n] {
			return usageErrorf("--nodes names %q twice or is empty", n)
		}
		seen[n] = true
	}
	return nil
}

func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func dnsSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if !dnsLabel(l) {
			return false
		}
	}
	return true
}

// bundle is one --image: its manifest and where its files are, in a
// local directory (uploaded to the servers) or under a base URL.
type bundle struct {
	arg  string
	dir  string
	base string
	upgrade.Bundle
}

func (b *bundle) String() string {
	var size int64
	for _, f := range b.Files {
		size += f.Size
	}
	where := b.dir
	if b.base != "" {
		where = b.base
	}
	return fmt.Sprintf("%s %s (%s) from %s, %d files, %s", b.Board, b.Version, b.Arch, where, len(b.Files), image.HumanSize(size))
}

// readBundle reads the bundle arg names: a directory holding update.json
// or holding update/ with it, or a URL of either. A directory's files are
// checked against update.json here; a URL's are looked at (HEAD).
func readBundle(ctx context.Context, arg string) (*bundle, error) {
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		return fetchBundle(ctx, arg)
	}
	dir := arg
	if _, err := os.Stat(filepath.Join(dir, upgrade.BundleFile)); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, upgrade.BundleDir, upgrade.BundleFile)); err2 != nil {
			return nil, fmt.Errorf("--image %s: no %s in it or in its %s/: %w; build one with cairn build --format update", arg, upgrade.BundleFile, upgrade.BundleDir, unwrapPathErr(err))
		}
		dir = filepath.Join(dir, upgrade.BundleDir)
	}
	f, err := os.Open(filepath.Join(dir, upgrade.BundleFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := parseBundle(f, filepath.Join(dir, upgrade.BundleFile))
	if err != nil {
		return nil, err
	}
	b.arg, b.dir = arg, dir
	for _, bf := range b.Files {
		if err := checkFile(filepath.Join(dir, bf.Name), bf); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// fetchBundle reads URL/update.json, or URL/update/update.json.
func fetchBundle(ctx context.Context, arg string) (*bundle, error) {
	base := strings.TrimSuffix(arg, upgrade.BundleFile)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	c := &http.Client{Timeout: 30 * time.Second}
	get := func(url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, err
		}
		return c.Do(req)
	}
	resp, err := get(base + upgrade.BundleFile)
	if err == nil && resp.StatusCode == http.StatusNotFound && !strings.HasSuffix(arg, upgrade.BundleFile) {
		resp.Body.Close()
		base += upgrade.BundleDir + "/"
		resp, err = get(base + upgrade.BundleFile)
	}
	if err != nil {
		return nil, fmt.Errorf("--image %s: %w", arg, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--image %s: GET %s%s: %s", arg, base, upgrade.BundleFile, resp.Status)
	}
	b, err := parseBundle(resp.Body, base+upgrade.BundleFile)
	if err != nil {
		return nil, err
	}
	b.arg, b.base = arg, base
	for _, f := range b.Files {
		req, err := http.NewRequestWithContext(ctx, "HEAD", base+f.Name, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("--image %s: %w", arg, err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusMethodNotAllowed:
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("--image %s: HEAD %s%s: %s; nodes could not fetch it", arg, base, f.Name, resp.Status)
		case resp.ContentLength >= 0 && resp.ContentLength != f.Size:
			return nil, fmt.Errorf("--image %s: %s%s is %d bytes, update.json says %d", arg, base, f.Name, resp.ContentLength, f.Size)
		}
	}
	return b, nil
}

// parseBundle reads update.json (at most upgrade.MaxManifest bytes) and
// checks it.
func parseBundle(r io.Reader, name string) (*bundle, error) {
	data, err := io.ReadAll(io.LimitReader(r, upgrade.MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > upgrade.MaxManifest {
		return nil, fmt.Errorf("%s is larger than %d bytes; it is not an update.json", name, upgrade.MaxManifest)
	}
	b := &bundle{}
	if err := json.Unmarshal(data, &b.Bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// checkFile compares the file at path with what update.json says of it.
func checkFile(path string, want upgrade.File) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, upgrade.MaxBundleFile+1))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != want.Size || sum != want.SHA256 {
		return fmt.Errorf("%s is %d bytes with sha256 %s; update.json says %d bytes with %s: the bundle is damaged or half copied, build or copy it again", path, n, sum, want.Size, want.SHA256)
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// now is the clock names and times come from (tests set it).
var now = time.Now

// runUpgrade checks the request against the cluster, creates the Upgrade,
// uploads a directory's files to the servers, starts it and follows it.
func runUpgrade(ctx context.Context, stdout, stderr io.Writer, k *kube, o *upgradeOptions) error {
	var bundles []*bundle
	for _, arg := range o.images {
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
	if err := k.call(ctx, "POST", upgrade.Path(""), u, nil, maxObject); err != nil {
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
	follow := fmt.Sprintf("cairn upgrade status --kubeconfig %s --follow %s", kubeconfigArg(o.kubeconfig), name)
	abandon := func(err error) error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		// Started after all (the reply to the start was lost): nodes may
		// be acting on it, so it stays.
		if u, gerr := k.get(dctx, name); gerr == nil && u.Status.Phase != "" {
			return fmt.Errorf("%w; upgrade %s was started all the same and goes on: follow it with %s", err, name, follow)
		}
		if derr := k.call(dctx, "DELETE", upgrade.Path(name), nil, nil, maxObject); derr != nil {
			return fmt.Errorf("%w; removing upgrade %s failed too (%v): remove it with 'kubectl -n %s delete %s %s'", err, name, derr, upgrade.Namespace, upgrade.Plural, name)
		}
		return fmt.Errorf("%w; upgrade %s removed, no node was touched", err, name)
	}
	if err := upload(ctx, stderr, k, bundles, servers); err != nil {
		return abandon(err)
	}
	if err := start(ctx, k, name); err != nil {
		return abandon(err)
	}
	if o.detach {
		fmt.Fprintf(stderr, "cairn upgrade: %s is running in the cluster; follow it with: %s\n", name, follow)
		return nil
	}
	fmt.Fprintf(stderr, "cairn upgrade: %s is running; Ctrl-C stops following it, not the upgrade\n", name)
	return followUpgrade(ctx, stdout, stderr, k, name, follow)
}

// planUpgrade checks the request against the cluster and makes the
// Upgrade: the nodes in their order, and the servers that hold a bundle
// directory's files. It refuses while another upgrade has not ended.
func planUpgrade(ctx context.Context, k *kube, o *upgradeOptions, bundles []*bundle) (*upgrade.Upgrade, []kubeNode, []string, error) {
	all, err := k.nodes(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	nodes, err := pickNodes(all, o.nodes)
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
		return nil, nil, nil, fmt.Errorf("no node is labelled %s to hold the bundle's files; serve them over HTTP and give --image URL", controlPlaneLabel)
	}
	for _, d := range o.deployments {
		ns, name, _ := strings.Cut(d, "/")
		if err := k.call(ctx, "GET", "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, nil, nil, maxList); err != nil {
			if isStatus(err, http.StatusNotFound) {
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
				u.Metadata.Name, state, kubeconfigArg(o.kubeconfig), u.Metadata.Name, upgrade.Namespace, upgrade.Plural, u.Metadata.Name)
		}
	}

	u := &upgrade.Upgrade{
		APIVersion: upgrade.APIVersion, Kind: upgrade.Kind,
		Metadata: upgrade.Metadata{Name: "upgrade-" + now().UTC().Format("20060102-150405"), Namespace: upgrade.Namespace},
		Spec: upgrade.Spec{
			MaxUnavailable: o.maxUnavailable,
			DrainTimeout:   o.drainTimeout.String(),
			HealthTimeout:  o.healthTimeout.String(),
		},
	}
	for _, b := range bundles {
		u.Spec.Images = append(u.Spec.Images, upgrade.Image{Bundle: b.Bundle, Source: b.base})
	}
	for _, n := range nodes {
		u.Spec.Nodes = append(u.Spec.Nodes, n.Name)
	}
	for _, d := range o.deployments {
		u.Spec.Checks = append(u.Spec.Checks, upgrade.Check{Deployment: d})
	}
	return u, nodes, servers, nil
}

// upload puts the files of every bundle directory on every server, a line
// per file and server.
func upload(ctx context.Context, stderr io.Writer, k *kube, bundles []*bundle, servers []string) error {
	for _, b := range bundles {
		if b.dir == "" {
			continue
		}
		for _, f := range b.Files {
			for _, s := range servers {
				t := time.Now()
				if err := k.put(ctx, s, filepath.Join(b.dir, f.Name), f); err != nil {
					return fmt.Errorf("uploading %s to %s: %w", filepath.Join(b.dir, f.Name), s, err)
				}
				fmt.Fprintf(stderr, "cairn upgrade: %s %s (%s) stored on %s (%.1f s)\n", b.Board, f.Name, image.HumanSize(f.Size), s, time.Since(t).Seconds())
			}
		}
	}
	return nil
}

// kubeconfigArg is how the hints name the kubeconfig.
func kubeconfigArg(path string) string {
	if path == "" {
		return "$KUBECONFIG"
	}
	return path
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
func start(ctx context.Context, k *kube, name string) error {
	var err error
	for range 5 {
		var u *upgrade.Upgrade
		if u, err = k.get(ctx, name); err != nil {
			return err
		}
		u.Status.Phase = upgrade.Running
		err = k.call(ctx, "PUT", upgrade.Path(name)+"/status", u, nil, maxObject)
		if !isStatus(err, http.StatusConflict) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("starting upgrade %s: %w", name, err)
	}
	return nil
}
