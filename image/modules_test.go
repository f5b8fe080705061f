package image

import (
	"slices"
	"testing"
)

// The iptables matches and targets kube-proxy (iptables mode), flannel and
// the portmap plugin put in their rules, by the module the kernel loads
// for each. A VM, a Pi or a PC has only what the system image carries: a
// rule whose module is missing fails the whole iptables-restore of its
// table (xt_recent, for sessionAffinity ClientIP, was missing, and the
// conformance run with a VM agent found it).
func TestNodeModulesCoverRules(t *testing.T) {
	for use, mod := range map[string]string{
		"-m comment":                             "xt_comment",
		"-m conntrack --ctstate":                 "xt_conntrack",
		"-m mark, -j MARK":                       "xt_mark",
		"-m statistic (load balancing)":          "xt_statistic",
		"-m recent (sessionAffinity)":            "xt_recent",
		"-m addrtype (NodePorts)":                "xt_addrtype",
		"-m tcp, -m udp":                         "xt_tcpudp",
		"-m multiport (portmap)":                 "xt_multiport",
		"-m physdev":                             "xt_physdev",
		"-j DNAT, -j SNAT":                       "xt_nat",
		"-j MASQUERADE":                          "xt_MASQUERADE",
		"-j REJECT (Services without endpoints)": "ipt_REJECT",
		"iptables-nft's xt matches":              "nft_compat",
	} {
		if !slices.Contains(NodeModules, mod) {
			t.Errorf("%s needs %s, which NodeModules lacks", use, mod)
		}
	}
}
