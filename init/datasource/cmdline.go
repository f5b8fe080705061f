package datasource

import (
	"strings"
)

// cmdline is the part of the kernel command line the sources care about.
type cmdline struct {
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
// Double quotes group a value with spaces, as the kernel's own parser does.
func parseCmdline(line string) cmdline {
	var c cmdline
	for _, field := range splitCmdline(line) {
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

// splitCmdline splits on spaces outside double quotes and drops the quotes.
func splitCmdline(line string) []string {
	var fields []string
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted = !quoted
			have = true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				fields = append(fields, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		fields = append(fields, cur.String())
	}
	return fields
}
