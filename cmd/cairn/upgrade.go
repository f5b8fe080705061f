package main

import (
	"errors"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-os/cairn/cmd/cairn/internal/rollout"
	"github.com/cairn-os/cairn/config/upgrade"
)

func init() { register(newUpgradeCmd) }

func newUpgradeCmd() *cobra.Command {
	o := &rollout.Options{}
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
first (to its blob port, else through the apiserver); nodes fetch them from
there. 'cairn upgrade
status' shows where an upgrade stands (docs/upgrades.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkUpgradeFlags(o); err != nil {
				return err
			}
			k, err := openKube(o.Kubeconfig)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return reported(rollout.Run(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), k, *o))
		},
	}
	f := cmd.Flags()
	cmd.PersistentFlags().StringVar(&o.Kubeconfig, "kubeconfig", "", "an admin kubeconfig (default $KUBECONFIG); best one naming the VIP, which stays up while servers reboot")
	f.StringArrayVarP(&o.Images, "image", "i", nil, "an update bundle: a build output directory, its update/, or an http(s) URL of the directory holding update.json (repeatable: one per board)")
	f.StringSliceVar(&o.Nodes, "nodes", nil, "the nodes to upgrade, in this order, comma-separated (default: every node, servers first, each group by name)")
	f.IntVar(&o.MaxUnavailable, "max-unavailable", 1, "how many nodes may be upgrading at once")
	f.DurationVar(&o.DrainTimeout, "drain-timeout", upgrade.DefaultDrainTimeout, "a node that cannot be drained within this (a PodDisruptionBudget that never allows an eviction) fails")
	f.DurationVar(&o.HealthTimeout, "health-timeout", upgrade.DefaultHealthTimeout, "a node not healthy within this after booting the new system goes back to the old one")
	f.StringArrayVar(&o.Deployments, "check-deployment", nil, "a Deployment (NAMESPACE/NAME) that must be available before a node keeps the new system (repeatable)")
	f.BoolVar(&o.Detach, "detach", false, "start the upgrade and return; 'cairn upgrade status' follows it")
	cmd.MarkPersistentFlagFilename("kubeconfig")
	cmd.MarkFlagDirname("image")
	cmd.AddCommand(newUpgradeStatusCmd(&o.Kubeconfig))
	return cmd
}

// checkUpgradeFlags refuses flags that make no upgrade (exit status 2).
func checkUpgradeFlags(o *rollout.Options) error {
	if len(o.Images) == 0 {
		return usageErrorf("--image is required: a build output directory (cairn build --format update) or a URL")
	}
	if o.MaxUnavailable < 1 {
		return usageErrorf("--max-unavailable %d: give 1 or more", o.MaxUnavailable)
	}
	if o.DrainTimeout <= 0 || o.HealthTimeout <= 0 {
		return usageErrorf("--drain-timeout and --health-timeout must be positive durations such as 10m")
	}
	for _, d := range o.Deployments {
		ns, name, ok := strings.Cut(d, "/")
		if !ok || !dnsLabel(ns) || !dnsSubdomain(name) {
			return usageErrorf("--check-deployment %q is not NAMESPACE/NAME", d)
		}
	}
	seen := map[string]bool{}
	for _, n := range o.Nodes {
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

// openKube opens the admin kubeconfig --kubeconfig names, or $KUBECONFIG.
func openKube(kubeconfig string) (*rollout.Kube, error) {
	admin, err := adminKubeconfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return rollout.New(admin), nil
}

// reported is err, with rollout's failures it has printed already as
// errReported (exit status 1, nothing more said).
func reported(err error) error {
	if errors.Is(err, rollout.ErrReported) {
		return errReported
	}
	return err
}
