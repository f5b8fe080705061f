package image

// NodeModules are what a Kubernetes node needs on top of stage 1
// (layout.Stage1Modules): container
// networking (bridge, veth, vxlan for flannel, br_netfilter), and the
// netfilter pieces kube-proxy's iptables mode and CNI portmap use, in both
// the legacy (ip_tables) and the nftables (nft_compat) flavours of iptables
// (xt_recent: a Service's sessionAffinity ClientIP; without it every
// iptables-restore of kube-proxy with such a Service fails, and no rule of
// any Service changes). The system image carries these too.
var NodeModules = []string{
	"bridge", "br_netfilter", "veth", "vxlan", "dummy", "tun",
	"nf_conntrack", "nf_conntrack_netlink", "nf_nat",
	"ip_tables", "iptable_filter", "iptable_nat", "iptable_mangle", "iptable_raw",
	"ip6_tables", "ip6table_filter", "ip6table_nat", "ip6table_mangle", "ip6table_raw",
	"nf_tables", "nft_compat", "nft_chain_nat", "nft_ct", "nft_masq",
	"xt_conntrack", "xt_MASQUERADE", "xt_addrtype", "xt_comment", "xt_mark",
	"xt_multiport", "xt_nat", "xt_statistic", "xt_tcpudp", "xt_physdev",
	"xt_REDIRECT", "xt_limit", "xt_set", "xt_NFLOG", "xt_recent", "ipt_REJECT", "ip6t_REJECT",
	"ip_set", "ip_set_hash_ip", "ip_set_hash_net", "ip_set_bitmap_port",
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh",
	"sch_htb", "sch_ingress", "cls_bpf", "act_mirred",
	"fuse",
}
