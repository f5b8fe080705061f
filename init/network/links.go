package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/cairn-os/cairn/config"
)

// physicalLinks lists the links backed by a device (a NIC, not lo, a
// bridge, a veth or a tunnel), in name order.
func physicalLinks(root string) ([]string, error) {
	dir := filepath.Join(root, "sys/class/net")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // no sysfs: no device-backed links to find
	}
	if err != nil {
		return nil, fmt.Errorf("network: listing links in %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "device")); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// vethLinks lists the veth links, in name order.
func vethLinks() []string {
	links, err := netlink.LinkList()
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" {
			out = append(out, l.Attrs().Name)
		}
	}
	sort.Strings(out)
	return out
}

// matches reports whether a link fits an ethernets entry: its MAC and name
// glob when match is given, else its name equals the entry's id.
func matches(id string, m *config.Match, name string, mac net.HardwareAddr) bool {
	if m == nil || (m.MACAddress == "" && m.Name == "") {
		return name == id
	}
	if m.MACAddress != "" && !strings.EqualFold(m.MACAddress, mac.String()) {
		return false
	}
	if m.Name != "" {
		ok, err := filepath.Match(m.Name, name)
		if err != nil || !ok {
			return false
		}
	}
	return true
}

// createLinks resolves ethernets (renaming with set-name), creates bonds and
// VLANs, and returns one job per link to address. Problems with one link
// are returned and the others still come up.
func createLinks(cfg *config.Network) ([]job, []error) {
	var jobs []job
	var errs []error
	names := map[string]string{} // config id -> kernel name
	links, err := netlink.LinkList()
	if err != nil {
		return nil, []error{fmt.Errorf("network: listing links: %w", err)}
	}
	for _, id := range sortedKeys(cfg.Ethernets) {
		e := cfg.Ethernets[id]
		var found []netlink.Link
		for _, l := range links {
			a := l.Attrs()
			if a.Name == "lo" {
				continue
			}
			// Ethernets are NICs (a veth in the container platform); a
			// VLAN or bond shares a NIC's MAC and must not match in its place.
			if t := l.Type(); t != "device" && t != "veth" {
				continue
			}
			if matches(id, e.Match, a.Name, a.HardwareAddr) {
				found = append(found, l)
			}
		}
		switch {
		case len(found) == 0:
			errs = append(errs, fmt.Errorf("network: ethernets.%s: no link matches %s", id, describeMatch(id, e.Match)))
			continue
		case len(found) > 1 && e.SetName != "":
			errs = append(errs, fmt.Errorf("network: ethernets.%s: %d links match %s but set-name %q can name only one; add a macaddress to match", id, len(found), describeMatch(id, e.Match), e.SetName))
			continue
		}
		for _, l := range found {
			name := l.Attrs().Name
			if e.SetName != "" && e.SetName != name {
				if err := rename(l, e.SetName); err != nil {
					errs = append(errs, fmt.Errorf("network: ethernets.%s: renaming %s to %s: %w", id, name, e.SetName, err))
					continue
				}
				name = e.SetName
			}
			names[id] = name
			jobs = append(jobs, job{id: id, link: name, iface: e.Interface})
		}
	}
	resolve := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	for _, id := range sortedKeys(cfg.Bonds) {
		b := cfg.Bonds[id]
		if err := createBond(id, b, resolve); err != nil {
			errs = append(errs, fmt.Errorf("network: bonds.%s: %w", id, err))
			continue
		}
		names[id] = id
		jobs = append(jobs, job{id: id, link: id, iface: b.Interface})
	}
	for _, id := range sortedKeys(cfg.VLANs) {
		v := cfg.VLANs[id]
		if err := createVLAN(id, v, resolve(v.Link)); err != nil {
			errs = append(errs, fmt.Errorf("network: vlans.%s: %w", id, err))
			continue
		}
		names[id] = id
		jobs = append(jobs, job{id: id, link: id, iface: v.Interface})
	}
	return jobs, errs
}

func describeMatch(id string, m *config.Match) string {
	if m == nil || (m.MACAddress == "" && m.Name == "") {
		return "the name " + strconv.Quote(id)
	}
	var parts []string
	if m.MACAddress != "" {
		parts = append(parts, "macaddress "+m.MACAddress)
	}
	if m.Name != "" {
		parts = append(parts, "name "+strconv.Quote(m.Name))
	}
	return strings.Join(parts, " and ")
}

// rename gives a link a new name; the kernel allows that only while it is down.
func rename(l netlink.Link, name string) error {
	if err := netlink.LinkSetDown(l); err != nil {
		return err
	}
	return netlink.LinkSetName(l, name)
}

func createBond(name string, b config.Bond, resolve func(string) string) error {
	bond := netlink.NewLinkBond(netlink.LinkAttrs{Name: name})
	p := b.Parameters
	if m, ok := p["mode"]; ok {
		mode := netlink.StringToBondMode(m)
		if mode == netlink.BOND_MODE_UNKNOWN {
			return fmt.Errorf("parameters.mode %q is not a bonding mode (balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb)", m)
		}
		bond.Mode = mode
	}
	for key, dst := range map[string]*int{"mii-monitor-interval": &bond.Miimon, "up-delay": &bond.UpDelay, "down-delay": &bond.DownDelay} {
		if v, ok := p[key]; ok {
			n, err := strconv.Atoi(strings.TrimSuffix(v, "ms"))
			if err != nil {
				return fmt.Errorf("parameters.%s %q is not a number of milliseconds", key, v)
			}
			*dst = n
		}
	}
	if v, ok := p["transmit-hash-policy"]; ok {
		bond.XmitHashPolicy = netlink.StringToBondXmitHashPolicy(v)
	}
	if v, ok := p["lacp-rate"]; ok {
		bond.LacpRate = netlink.StringToBondLacpRate(v)
	}
	existing, err := netlink.LinkByName(name)
	if err == nil {
		// Loading the bonding module creates an empty bond0: take it over
		// with the configured parameters (a mode changes only while the
		// bond is down and has no members).
		if _, ok := existing.(*netlink.Bond); !ok {
			return fmt.Errorf("a %s link named %s already exists", existing.Type(), name)
		}
		if err := netlink.LinkSetDown(existing); err != nil {
			return err
		}
		bond.Index = existing.Attrs().Index
		if err := netlink.LinkModify(bond); err != nil {
			return fmt.Errorf("setting the bond's parameters: %w", err)
		}
	} else if err := netlink.LinkAdd(bond); err != nil {
		return fmt.Errorf("creating the bond: %w (is the bonding module loaded?)", err)
	}
	master, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, m := range b.Interfaces {
		l, err := netlink.LinkByName(resolve(m))
		if err != nil {
			return fmt.Errorf("member %s: %w", m, err)
		}
		if l.Attrs().MasterIndex == master.Attrs().Index {
			continue
		}
		if err := netlink.LinkSetDown(l); err != nil {
			return fmt.Errorf("member %s: %w", m, err)
		}
		if err := netlink.LinkSetMaster(l, master); err != nil {
			return fmt.Errorf("enslaving %s: %w", m, err)
		}
	}
	if v, ok := p["primary"]; ok {
		l, err := netlink.LinkByName(resolve(v))
		if err != nil {
			return fmt.Errorf("parameters.primary %s: %w", v, err)
		}
		bond := netlink.NewLinkBond(netlink.LinkAttrs{Name: name, Index: master.Attrs().Index})
		bond.Primary = l.Attrs().Index
		if err := netlink.LinkModify(bond); err != nil {
			return fmt.Errorf("setting parameters.primary %s: %w", v, err)
		}
	}
	return nil
}

func createVLAN(name string, v config.VLAN, parent string) error {
	p, err := netlink.LinkByName(parent)
	if err != nil {
		return fmt.Errorf("link %s: %w", parent, err)
	}
	if existing, err := netlink.LinkByName(name); err == nil {
		if vl, ok := existing.(*netlink.Vlan); ok && vl.VlanId == v.ID && vl.ParentIndex == p.Attrs().Index {
			return nil
		}
		return fmt.Errorf("a different %s link named %s already exists", existing.Type(), name)
	}
	if err := netlink.LinkSetUp(p); err != nil {
		return fmt.Errorf("bringing up %s: %w", parent, err)
	}
	vl := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index}, VlanId: v.ID}
	if err := netlink.LinkAdd(vl); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return fmt.Errorf("creating VLAN %d on %s: %w (is the 8021q module loaded?)", v.ID, parent, err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
