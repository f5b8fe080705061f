// Command coredns is CoreDNS with the plugins a k3s Corefile uses (errors,
// health, ready, kubernetes, hosts, prometheus, forward, cache, loop, reload,
// loadbalance, log; import is CoreDNS's own). It is not an applet of
// cairn-node: pods run it from the image build.sh makes,
// usr/share/cairn/images/coredns.tar, as `/coredns -conf /etc/coredns/Corefile`.
package main

import (
	"github.com/coredns/coredns/coremain"

	// The plugins, each registering its directive; CoreDNS orders them by
	// its own directive list, not by this one.
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() { coremain.Run() }
