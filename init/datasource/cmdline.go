package datasource

import (
	"strings"

	"github.com/cairn-os/cairn/init/cmdline"
)

// cmdKeys is the part of the kernel command line the sources care about.
type cmdKeys struct {
	// configURL is cairn.config=URL: one cloud-config document.
	configURL string
	// seedURL is ds=nocloud;s=URL/ (or seedfrom=): a NoCloud seed served
	// over HTTP or found in a local directory (file://).
	seedURL string
	// hostname is ds=nocloud;h=NAME, cloud-init's local-hostname.
	hostname string
	// ec2 is cairn.datasource=ec2 (or ds=ec2).
	ec2 bool
}

// parseCmdline reads the keys cairn understands from a kernel command line.
func parseCmdline(line cmdline.Line) cmdKeys {
	var c cmdKeys
	for _, field := range line {
		key, value, _ := strings.Cut(field, "=")
		switch key {
		case "cairn.config":
			c.configURL = value
		case "cairn.datasource":
			c.ec2 = c.ec2 || strings.EqualFold(value, "ec2")
		case "ds":
			parts := strings.Split(value, ";")
			switch strings.ToLower(parts[0]) {
			case "nocloud", "nocloud-net":
				for _, p := range parts[1:] {
					k, v, _ := strings.Cut(p, "=")
					switch k {
					case "s", "seedfrom":
						c.seedURL = v
					case "h", "local-hostname":
						c.hostname = v
					}
				}
			case "ec2":
				c.ec2 = true
			}
		}
	}
	return c
}
