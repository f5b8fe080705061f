package datasource

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
)

// networkConfig turns a NoCloud network-config file into a Source holding a
// network config. Version 2 passes through unchanged as a NetworkConfig
// source, so diagnostics point into the user's file; version 1 is translated.
// A file saying config: disabled yields nil.
func networkConfig(name string, data []byte) (*config.Source, error) {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if len(top) == 0 {
		return nil, nil
	}
	body := top
	if n, ok := top["network"]; ok {
		m, _ := n.(map[string]any)
		body = m
	}
	if body == nil || fmt.Sprint(body["config"]) == "disabled" {
		return nil, nil
	}
	switch fmt.Sprint(body["version"]) {
	case "2":
		// The config package reads version 2 at the top level or under
		// network: itself, so its diagnostics point into the file as is.
		return &config.Source{Name: name, Kind: config.NetworkConfig, Data: data}, nil
	case "1":
		var v1 struct {
			Network *netV1 `yaml:"network"`
			netV1   `yaml:",inline"`
		}
		if err := yaml.Unmarshal(data, &v1); err != nil {
			return nil, fmt.Errorf("network config version 1: %w", err)
		}
		doc := v1.netV1
		if v1.Network != nil {
			doc = *v1.Network
		}
		n, err := doc.translate()
		if err != nil {
			return nil, err
		}
		out, err := yaml.Marshal(map[string]any{"network": n})
		if err != nil {
			return nil, fmt.Errorf("rendering network config: %w", err)
		}
		return &config.Source{Name: name + " (version 1, translated)", Data: out}, nil
	default:
		return nil, fmt.Errorf("network config version %v is not supported; use version 2 (or 1)", body["version"])
	}
}

// netV1 is cloud-init's network config version 1.
type netV1 struct {
	Version int        `yaml:"version"`
	Config  []netV1Obj `yaml:"config"`
}

type netV1Obj struct {
	Type           string         `yaml:"type"`
	Name           string         `yaml:"name"`
	MACAddress     string         `yaml:"mac_address"`
	MTU            int            `yaml:"mtu"`
	Subnets        []netV1Subnet  `yaml:"subnets"`
	VLANLink       string         `yaml:"vlan_link"`
	VLANID         int            `yaml:"vlan_id"`
	BondInterfaces []string       `yaml:"bond_interfaces"`
	Params         map[string]any `yaml:"params"`
	Address        flexList       `yaml:"address"`
	Search         flexList       `yaml:"search"`
	Destination    string         `yaml:"destination"`
	Network        string         `yaml:"network"`
	Netmask        string         `yaml:"netmask"`
	Gateway        string         `yaml:"gateway"`
	Metric         int            `yaml:"metric"`
}

type netV1Subnet struct {
	Type           string     `yaml:"type"`
	Address        string     `yaml:"address"`
	Netmask        string     `yaml:"netmask"`
	Gateway        string     `yaml:"gateway"`
	DNSNameservers flexList   `yaml:"dns_nameservers"`
	DNSSearch      flexList   `yaml:"dns_search"`
	Routes         []netV1Obj `yaml:"routes"`
}

// flexList accepts a scalar or a list of scalars.
type flexList []string

func (l *flexList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	err := n.Decode(&s)
	*l = s
	return err
}

// prefix joins an address with a dotted netmask when it has no /len.
func prefix(addr, mask string) (string, error) {
	if strings.Contains(addr, "/") || mask == "" {
		if !strings.Contains(addr, "/") {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				return "", err
			}
			return netip.PrefixFrom(a, a.BitLen()).String(), nil
		}
		return addr, nil
	}
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return "", fmt.Errorf("netmask %q is not a dotted IPv4 mask", mask)
	}
	b := m.As4()
	ones := 0
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) != 0 {
				ones++
			}
		}
	}
	return fmt.Sprintf("%s/%d", addr, ones), nil
}

func (o netV1Obj) route() (config.Route, error) {
	dest := o.Destination
	if dest == "" {
		dest = o.Network
	}
	to, err := prefix(dest, o.Netmask)
	if err != nil {
		return config.Route{}, fmt.Errorf("route to %q: %w", dest, err)
	}
	if to == "0.0.0.0/0" {
		to = "default"
	}
	return config.Route{To: to, Via: o.Gateway, Metric: o.Metric}, nil
}

func (s netV1Subnet) apply(i *config.Interface) error {
	switch s.Type {
	case "dhcp", "dhcp4":
		i.DHCP4 = true
	case "static", "static4":
		a, err := prefix(s.Address, s.Netmask)
		if err != nil {
			return fmt.Errorf("address %q: %w", s.Address, err)
		}
		i.Addresses = append(i.Addresses, a)
		if s.Gateway != "" {
			i.Routes = append(i.Routes, config.Route{To: "default", Via: s.Gateway})
		}
	default: // dhcp6, static6, manual, ipv6_*: nothing cairn configures
	}
	for _, r := range s.Routes {
		rt, err := r.route()
		if err != nil {
			return err
		}
		i.Routes = append(i.Routes, rt)
	}
	if len(s.DNSNameservers)+len(s.DNSSearch) > 0 {
		if i.Nameservers == nil {
			i.Nameservers = &config.Nameservers{}
		}
		i.Nameservers.Addresses = append(i.Nameservers.Addresses, s.DNSNameservers...)
		i.Nameservers.Search = append(i.Nameservers.Search, s.DNSSearch...)
	}
	return nil
}

var bondParams = map[string]string{
	"bond-mode":             "mode",
	"bond-miimon":           "mii-monitor-interval",
	"bond-primary":          "primary",
	"bond-xmit-hash-policy": "transmit-hash-policy",
	"bond-lacp-rate":        "lacp-rate",
	"bond-updelay":          "up-delay",
	"bond-downdelay":        "down-delay",
}

// translate maps version 1 onto the version 2 structure. Global nameservers
// and routes go to the first link, since resolv.conf and the routing table
// are per machine anyway.
func (v netV1) translate() (*config.Network, error) {
	n := &config.Network{Version: 2}
	var globals []netV1Obj
	firstType, firstName := "", ""
	for _, o := range v.Config {
		var i config.Interface
		for _, s := range o.Subnets {
			if err := s.apply(&i); err != nil {
				return nil, fmt.Errorf("%s %s: %w", o.Type, o.Name, err)
			}
		}
		i.MTU = o.MTU
		switch o.Type {
		case "physical":
			if n.Ethernets == nil {
				n.Ethernets = map[string]config.Ethernet{}
			}
			e := config.Ethernet{Interface: i}
			if o.MACAddress != "" {
				e.Match = &config.Match{MACAddress: strings.ToLower(o.MACAddress)}
				e.SetName = o.Name
			}
			n.Ethernets[o.Name] = e
		case "vlan":
			if n.VLANs == nil {
				n.VLANs = map[string]config.VLAN{}
			}
			n.VLANs[o.Name] = config.VLAN{ID: o.VLANID, Link: o.VLANLink, Interface: i}
		case "bond":
			if n.Bonds == nil {
				n.Bonds = map[string]config.Bond{}
			}
			b := config.Bond{Interfaces: o.BondInterfaces, Interface: i}
			for k, val := range o.Params {
				if v2, ok := bondParams[k]; ok {
					if b.Parameters == nil {
						b.Parameters = map[string]string{}
					}
					b.Parameters[v2] = fmt.Sprint(val)
				}
			}
			n.Bonds[o.Name] = b
		case "nameserver", "route":
			globals = append(globals, o)
			continue
		default:
			continue // bridge, infiniband...: not implemented by cairn
		}
		if firstName == "" {
			firstType, firstName = o.Type, o.Name
		}
	}
	if len(globals) == 0 {
		return n, nil
	}
	if firstName == "" {
		return nil, errors.New("global nameservers or routes without any interface to carry them")
	}
	var i config.Interface
	switch firstType {
	case "physical":
		i = n.Ethernets[firstName].Interface
	case "vlan":
		i = n.VLANs[firstName].Interface
	case "bond":
		i = n.Bonds[firstName].Interface
	}
	for _, g := range globals {
		switch g.Type {
		case "nameserver":
			if i.Nameservers == nil {
				i.Nameservers = &config.Nameservers{}
			}
			i.Nameservers.Addresses = append(i.Nameservers.Addresses, g.Address...)
			i.Nameservers.Search = append(i.Nameservers.Search, g.Search...)
		case "route":
			rt, err := g.route()
			if err != nil {
				return nil, err
			}
			i.Routes = append(i.Routes, rt)
		}
	}
	switch firstType {
	case "physical":
		e := n.Ethernets[firstName]
		e.Interface = i
		n.Ethernets[firstName] = e
	case "vlan":
		vl := n.VLANs[firstName]
		vl.Interface = i
		n.VLANs[firstName] = vl
	case "bond":
		b := n.Bonds[firstName]
		b.Interface = i
		n.Bonds[firstName] = b
	}
	return n, nil
}
