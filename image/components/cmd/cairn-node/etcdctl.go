package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/etcdctl/v3/ctlv3/command"
	"go.etcd.io/etcd/pkg/v3/cobrautl"
)

// etcdPKI is where a server's init keeps the embedded etcd's CA and the
// client pair it issues to kube-apiserver (init/node/render.Layout's
// CertDir).
const etcdPKI = "/var/lib/cairn/pki/"

// etcdctlDefaults are what etcdctl uses on a server when neither a flag nor
// an ETCDCTL_* variable says otherwise: the local member on TLS, with the
// apiserver's client pair, so `etcdctl member list` works as it is.
var etcdctlDefaults = []struct{ flag, env, value string }{
	{"--endpoints", "ETCDCTL_ENDPOINTS", "https://127.0.0.1:2379"},
	{"--cacert", "ETCDCTL_CACERT", etcdPKI + "etcd/ca.crt"},
	{"--cert", "ETCDCTL_CERT", etcdPKI + "apiserver-etcd-client.crt"},
	{"--key", "ETCDCTL_KEY", etcdPKI + "apiserver-etcd-client.key"},
}

// etcdctl is etcd's own client (go.etcd.io/etcd/etcdctl/v3's commands,
// flags and output), for the embedded datastore. Its root is cairn's, not
// ctlv3's, so that three commands can stay out of cairn-node: `check`
// (perf and datascale load generators), `make-mirror` and `completion`,
// 0.13 MB of cairn-node (0.75 MB of a binary of etcdctl alone), whose
// size is bounded (docs/components.md).
func etcdctl() int {
	if _, err := os.Stat(etcdPKI + "etcd/ca.crt"); err == nil {
		for _, d := range etcdctlDefaults {
			if os.Getenv(d.env) == "" && !hasFlag(os.Args[1:], d.flag) {
				os.Setenv(d.env, d.value) //nolint:errcheck
			}
		}
	}
	cobra.EnablePrefixMatching = true // as upstream: `etcdctl mem li`
	if err := etcdctlCommand().Execute(); err != nil {
		return cobrautl.ExitError // cobra has printed the error and the usage
	}
	return 0
}

// etcdctlCommand is etcdctl's root: upstream's global flags (hidden from
// help, as upstream hides them; `etcdctl options` lists them) and commands.
func etcdctlCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "etcdctl",
		Short: "A simple command line client for etcd3 (check, make-mirror and completion are left out of cairn's).",
	}
	var g command.GlobalFlags
	f := root.PersistentFlags()
	f.StringSliceVar(&g.Endpoints, "endpoints", []string{"127.0.0.1:2379"}, "gRPC endpoints")
	f.BoolVar(&g.Debug, "debug", false, "enable client-side debug logging")
	f.StringVarP(&g.OutputFormat, "write-out", "w", "simple", "set the output format (fields, json, protobuf, simple, table)")
	f.BoolVar(&g.IsHex, "hex", false, "print byte strings as hex encoded strings")
	f.DurationVar(&g.DialTimeout, "dial-timeout", 2*time.Second, "dial timeout for client connections")
	f.DurationVar(&g.CommandTimeOut, "command-timeout", 5*time.Second, "timeout for short running command (excluding dial timeout)")
	f.DurationVar(&g.KeepAliveTime, "keepalive-time", 2*time.Second, "keepalive time for client connections")
	f.DurationVar(&g.KeepAliveTimeout, "keepalive-timeout", 6*time.Second, "keepalive timeout for client connections")
	f.IntVar(&g.MaxCallSendMsgSize, "max-request-bytes", 0, "client-side request send limit in bytes (0: 2 MiB)")
	f.IntVar(&g.MaxCallRecvMsgSize, "max-recv-bytes", 0, "client-side response receive limit in bytes (0: math.MaxInt32)")
	f.BoolVar(&g.Insecure, "insecure-transport", true, "disable transport security for client connections")
	f.BoolVar(&g.InsecureDiscovery, "insecure-discovery", true, "accept insecure SRV records describing cluster endpoints")
	f.BoolVar(&g.InsecureSkipVerify, "insecure-skip-tls-verify", false, "skip server certificate verification")
	f.StringVar(&g.TLS.CertFile, "cert", "", "identify secure client using this TLS certificate file")
	f.StringVar(&g.TLS.KeyFile, "key", "", "identify secure client using this TLS key file")
	f.StringVar(&g.TLS.TrustedCAFile, "cacert", "", "verify certificates of TLS-enabled secure servers using this CA bundle")
	f.StringVar(&g.Token, "auth-jwt-token", "", "JWT token used for authentication")
	f.StringVar(&g.User, "user", "", "username[:password] for authentication (prompt if password is not supplied)")
	f.StringVar(&g.Password, "password", "", "password for authentication")
	f.StringVarP(&g.TLS.ServerName, "discovery-srv", "d", "", "domain name to query for SRV records describing cluster endpoints")
	f.StringVarP(&g.DNSClusterServiceName, "discovery-srv-name", "", "", "service name to query when using DNS discovery")
	root.AddGroup(command.NewKVGroup(), command.NewClusterMaintenanceGroup(), command.NewConcurrencyGroup(),
		command.NewAuthenticationGroup(), command.NewUtilityGroup())
	root.AddCommand(
		command.NewGetCommand(), command.NewPutCommand(), command.NewDelCommand(), command.NewTxnCommand(),
		command.NewCompactionCommand(), command.NewAlarmCommand(), command.NewDefragCommand(),
		command.NewEndpointCommand(), command.NewMoveLeaderCommand(), command.NewWatchCommand(),
		command.NewVersionCommand(), command.NewLeaseCommand(), command.NewMemberCommand(),
		command.NewSnapshotCommand(), command.NewLockCommand(), command.NewElectCommand(),
		command.NewAuthCommand(), command.NewUserCommand(), command.NewRoleCommand(),
		command.NewDowngradeCommand(), command.NewOptionsCommand(root),
	)
	command.SetHelpCmdGroup(root)
	help := root.HelpFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) {
		help(c, args)
		fmt.Fprintln(c.OutOrStdout(), `Use "etcdctl options" for a list of global command-line options (applies to all commands).`)
	})
	f.VisitAll(func(fl *pflag.Flag) { f.MarkHidden(fl.Name) }) //nolint:errcheck
	return root
}

// hasFlag says whether args give flag, as "--flag V" or "--flag=V".
func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}
