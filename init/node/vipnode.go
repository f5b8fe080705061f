package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/init/node/pki"
	"github.com/cairn-os/cairn/init/node/vip"
	"github.com/cairn-os/cairn/init/supervise"
)

// startVIP makes this server a candidate for the cluster's VIP, when the
// config has one: the election runs through this server's own apiserver
// (it waits for it to be ready), until ctx ends at shutdown, when the
// address is dropped and the lease given back.
func (s *server) startVIP(ctx context.Context, c pki.Cluster) {
	if s.k.VIP == "" {
		return
	}
	ip, err := netip.ParseAddr(s.k.VIP)
	if err != nil {
		s.o.Printf("vip: kubernetes.vip %q: %v; this server does not hold it", s.k.VIP, err)
		return
	}
	t, err := s.k.VIPTimings()
	if err != nil {
		s.o.Printf("vip: %v; this server does not hold the VIP", err)
		return
	}
	tlsCfg, err := s.adminTLS(c)
	if err != nil {
		s.o.Printf("vip: %v; this server does not hold the VIP", err)
		return
	}
	var boot [4]byte
	rand.Read(boot[:])
	cfg := vip.Config{
		VIP:           ip.Unmap(),
		Identity:      nodeName(s.o) + "_" + hex.EncodeToString(boot[:]),
		LeaseDuration: t.LeaseDuration,
		RenewDeadline: t.RenewDeadline,
		RetryPeriod:   t.RetryPeriod,
		Printf:        s.o.Printf,
	}
	api := vip.NewAPIDial(apiserverLocal, tlsCfg, s.admin.dial)
	addr := vip.NewAddress(cfg.VIP, vipLink(s.o.Config))
	s.o.Printf("vip: %s: a candidate once kube-apiserver is ready (lease %s, renew deadline %s, retry %s)",
		cfg.VIP, t.LeaseDuration, t.RenewDeadline, t.RetryPeriod)
	supervise.Go("vip", func() { vip.Run(ctx, cfg, api, api.Ready, addr) })
}

// vipLink is the link kubernetes.vip-interface names, the way the network
// section finds it: an ethernets entry by its set-name, MAC or name glob;
// any other name (a VLAN, a bond, a plain ethernets key) as the link's
// name. No vip-interface: the link whose subnet holds the VIP.
func vipLink(cfg *config.Config) vip.LinkMatch {
	name := cfg.Kubernetes.VIPInterface
	if name == "" {
		return vip.LinkMatch{}
	}
	if cfg.Network != nil {
		for key, e := range cfg.Network.Ethernets {
			if key != name && e.SetName != name {
				continue
			}
			switch {
			case e.SetName != "":
				return vip.LinkMatch{Name: e.SetName}
			case e.Match != nil && e.Match.MACAddress != "":
				if mac, err := net.ParseMAC(e.Match.MACAddress); err == nil {
					return vip.LinkMatch{MAC: mac}
				}
			case e.Match != nil && e.Match.Name != "":
				return vip.LinkMatch{Glob: e.Match.Name}
			}
		}
	}
	return vip.LinkMatch{Name: name}
}
