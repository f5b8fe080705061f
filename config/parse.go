package config

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// ignoredKeys are standard cloud-init modules cairn does not implement; a
// document using them still applies, with a warning naming each.
var ignoredKeys = map[string]string{
	"users":                      "cairn has no login users",
	"groups":                     "cairn has no login users",
	"user":                       "cairn has no login users",
	"password":                   "cairn has no login users",
	"chpasswd":                   "cairn has no login users",
	"ssh_pwauth":                 "cairn runs no SSH server",
	"ssh_authorized_keys":        "cairn runs no SSH server",
	"ssh_keys":                   "cairn runs no SSH server",
	"ssh_deletekeys":             "cairn runs no SSH server",
	"ssh_genkeytypes":            "cairn runs no SSH server",
	"ssh":                        "cairn runs no SSH server",
	"disable_root":               "cairn has no login users",
	"packages":                   "the image is immutable; add software at build time",
	"package_update":             "the image is immutable; add software at build time",
	"package_upgrade":            "the image is immutable; add software at build time",
	"package_reboot_if_required": "the image is immutable; add software at build time",
	"apt":                        "the image is immutable; add software at build time",
	"yum_repos":                  "the image is immutable; add software at build time",
	"snap":                       "the image is immutable; add software at build time",
	"runcmd":                     "cairn runs no scripts",
	"bootcmd":                    "cairn runs no scripts",
	"timezone":                   "nodes run in UTC",
	"locale":                     "cairn has no locales",
	"keyboard":                   "cairn has no console login",
	"mounts":                     "cairn manages its own filesystems",
	"mount_default_fields":       "cairn manages its own filesystems",
	"swap":                       "cairn manages its own filesystems",
	"disk_setup":                 "cairn manages its own disks",
	"fs_setup":                   "cairn manages its own disks",
	"growpart":                   "cairn grows its STATE partition itself",
	"resize_rootfs":              "cairn grows its STATE partition itself",
	"power_state":                "cairn does not power off after configuration",
	"final_message":              "cairn prints its own console lines",
	"manage_etc_hosts":           "cairn writes /etc/hosts itself",
	"fqdn":                       "set hostname instead",
	"prefer_fqdn_over_hostname":  "set hostname instead",
	"preserve_hostname":          "set hostname instead",
	"ca_certs":                   "use write_files for CA files",
	"ca-certs":                   "use write_files for CA files",
	"phone_home":                 "cairn does not phone home",
	"rsyslog":                    "cairn logs to the console",
	"output":                     "cairn logs to the console",
	"random_seed":                "the kernel seeds its own RNG",
	"manage_resolv_conf":         "set network nameservers instead",
	"resolv_conf":                "set network nameservers instead",
	"ntp_enabled":                "set ntp servers or pools instead",
	"chef":                       "cairn runs no configuration agents",
	"puppet":                     "cairn runs no configuration agents",
	"salt_minion":                "cairn runs no configuration agents",
	"ansible":                    "cairn runs no configuration agents",
	"lxd":                        "cairn runs Kubernetes, not LXD",
	"seed_random":                "the kernel seeds its own RNG",
	"datasource":                 "choose datasources on the kernel command line",
	"datasource_list":            "choose datasources on the kernel command line",
	"cloud_init_modules":         "cairn has no cloud-init modules",
	"cloud_config_modules":       "cairn has no cloud-init modules",
	"cloud_final_modules":        "cairn has no cloud-init modules",
	"merge_how":                  "cairn merges sources per key",
	"merge_type":                 "cairn merges sources per key",
	"vendor_data":                "cairn reads no vendor data",
	"write_metadata":             "cairn reads no vendor data",
	"wireguard":                  "cairn does not configure WireGuard",
	"zypper":                     "the image is immutable; add software at build time",
	"apk_repos":                  "the image is immutable; add software at build time",
	"byobu_by_default":           "cairn has no console login",
	"landscape":                  "cairn runs no configuration agents",
	"mcollective":                "cairn runs no configuration agents",
	"spacewalk":                  "cairn runs no configuration agents",
	"ubuntu_pro":                 "not applicable to cairn",
	"ubuntu_advantage":           "not applicable to cairn",
	"updates":                    "cairn updates by image",
	"reporting":                  "cairn logs to the console",
}

// kubernetesFields are the kubernetes section's keys, made once: a
// hostile document asks for them once per unknown key. Read-only.
var kubernetesFields = sync.OnceValue(func() map[string][]int { return fieldsOf(reflect.TypeOf(Kubernetes{})) })

// unknownKey says what a key the schema lacks is, at path and set to val:
// a cloud-init key cairn ignores, a k3s key, or a cloud-init shape of a key
// cairn shares.
func unknownKey(path, key string, val *yaml.Node) (Severity, string, bool) {
	scalar := ""
	if val != nil && val.Kind == yaml.ScalarNode {
		scalar = val.Value
	}
	kfields := kubernetesFields()
	switch {
	case path == "":
		if why, ok := ignoredKeys[key]; ok {
			return Warning, fmt.Sprintf("%s is a cloud-init key cairn does not implement (%s); it is ignored", key, why), true
		}
		if _, ok := kfields[key]; ok {
			return Error, fmt.Sprintf("%s is a key of the kubernetes section; move it under kubernetes:", key), true
		}
		if _, msg, ok := k3sKeyMessage(key, scalar, kfields); ok {
			if strings.Contains(key, "K3S_") {
				return Error, msg, true
			}
			return Error, fmt.Sprintf("%q is a k3s key; k3s keys go under kubernetes:", key), true
		}
	case path == "kubernetes":
		return k3sKeyMessage(key, scalar, kfields)
	case path == "ntp":
		switch key {
		case "enabled":
			if b, ok := yamlBool(scalar); ok && b {
				return Warning, "", true
			}
			return Warning, "ntp.enabled: false is ignored: the node needs a synced clock before any TLS, so cairn always syncs it", true
		case "ntp_client", "config":
			return Warning, fmt.Sprintf("ntp.%s is ignored: cairn syncs the clock with its own NTP client", key), true
		case "peers", "allow":
			return Warning, fmt.Sprintf("ntp.%s is ignored: the node serves no time to others", key), true
		}
	case strings.HasPrefix(path, "write_files[") && key == "defer":
		if b, ok := yamlBool(scalar); ok && !b {
			return Warning, "", true
		}
		return Warning, path + ".defer is ignored: cairn writes every file before any service starts", true
	}
	return Error, "", false
}

// Parse reads one document (cloud-config or plain YAML) strictly. It
// reports every problem at once; cfg is nil when there is an error.
// A gzip-compressed document is decompressed first, as cloud-init does.
func Parse(src Source) (cfg *Config, diags Diagnostics) {
	defer recoverInto(src.Name, &cfg, &diags)
	cfg, c := parse(src)
	diags = capped(c.diags, c.dropped, c.droppedErr)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// parse is Parse that also returns what it could decode when there are
// errors, so that Load can go on to report the document's other problems.
func parse(src Source) (*Config, collector) {
	cfg := &Config{}
	d := newDecoder(src.Name)
	d.unknown = unknownKey
	root := d.document(src.Data)
	switch {
	case root == nil:
	case src.Kind == NetworkConfig:
		cfg.Network = d.networkDocument(root)
	default:
		d.decode(root, reflect.ValueOf(cfg).Elem(), "")
		if cfg.Network != nil {
			d.checkNetworkShape(cfg.Network, "network")
		}
	}
	sortDiags(d.diags, []string{src.Name})
	cfg.locs = d.locs
	cfg.files = []string{src.Name}
	return cfg, d.collector
}

// ParseNetwork reads a NoCloud network-config file: cloud-init network
// config version 2, either at the top level or under a "network:" key.
// Load does the same for a Source of Kind NetworkConfig.
func ParseNetwork(src Source) (*Network, Diagnostics) {
	d := newDecoder(src.Name)
	var nw *Network
	if root := d.document(src.Data); root != nil {
		nw = d.networkDocument(root)
	}
	sortDiags(d.diags, []string{src.Name})
	diags := capped(d.diags, d.dropped, d.droppedErr)
	if diags.HasErrors() {
		return nil, diags
	}
	if nw == nil {
		nw = &Network{Version: 2}
	}
	return nw, diags
}

// networkDocument decodes a network-config file's root; its keys are
// recorded under "network." whether or not the file nests them so.
func (d *decoder) networkDocument(root *yaml.Node) *Network {
	d.locs["network"] = d.at(root)
	if root = d.resolve(root); root != nil && root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "network" {
				d.locs["network"] = d.at(root.Content[i])
				if len(root.Content) > 2 {
					for j := 0; j+1 < len(root.Content); j += 2 {
						if j != i {
							d.errorf(root.Content[j], root.Content[j].Value, "unknown key %q in a network-config file; it holds only network", root.Content[j].Value)
						}
					}
				}
				root = root.Content[i+1]
				break
			}
		}
	}
	nw := &Network{}
	d.decode(root, reflect.ValueOf(nw).Elem(), "network")
	d.checkNetworkShape(nw, "network")
	return nw
}

// checkNetworkShape is what Parse can tell about a network section on its
// own: the version. The rest is checked after merging.
func (d *decoder) checkNetworkShape(nw *Network, path string) {
	vp := join(path, "version")
	p, ok := d.locs[vp]
	if !ok {
		d.keep(Diagnostic{File: d.file, Line: d.locs[path].Line, Column: d.locs[path].Column,
			Severity: Error, Path: vp, Message: vp + " is missing; cairn reads network config version 2 (add version: 2)"})
		return
	}
	if nw.Version != 2 {
		d.keep(Diagnostic{File: d.file, Line: p.Line, Column: p.Column,
			Severity: Error, Path: vp, Message: fmt.Sprintf("%s is %d; cairn reads only network config version 2 (the netplan form)", vp, nw.Version)})
	}
}

// unsupportedHeaders are user-data formats cloud-init knows and cairn does
// not run.
var unsupportedHeaders = []struct{ prefix, what string }{
	{"#!", "a shell script"},
	{"#include", "an #include list"},
	{"#cloud-boothook", "a boot hook"},
	{"#part-handler", "a part handler"},
	{"#cloud-config-archive", "a cloud-config archive"},
	{"#cloud-config-jsonp", "a JSON patch"},
	{"## template:", "a Jinja template"},
	{"Content-Type:", "a MIME multipart document"},
	{"MIME-Version:", "a MIME multipart document"},
}

var yamlErrLine = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// document unpacks, checks the header and parses the YAML, returning the
// root node (nil for an empty document or on error).
func (d *decoder) document(data []byte) (root *yaml.Node) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err == nil {
			data, err = io.ReadAll(io.LimitReader(zr, MaxDocumentSize+1))
		}
		if err != nil {
			d.errorf(&yaml.Node{Line: 1, Column: 1}, "", "document looks gzip-compressed but does not decompress: %v", err)
			return nil
		}
	}
	if len(data) > MaxDocumentSize {
		d.errorf(&yaml.Node{Line: 1, Column: 1}, "", "document is larger than %d bytes; cairn refuses it", MaxDocumentSize)
		return nil
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if bytes.HasPrefix(data, []byte("\xff\xfe")) || bytes.HasPrefix(data, []byte("\xfe\xff")) {
		d.errorf(&yaml.Node{Line: 1, Column: 1}, "", "document is UTF-16 text; cairn reads UTF-8: save the file as UTF-8")
		return nil
	}
	if line, col, b, ok := invalidUTF8(data); !ok {
		d.errorf(&yaml.Node{Line: line, Column: col}, "", "byte 0x%02X is not UTF-8 text; a cloud-config is UTF-8: fix the character here or save the file as UTF-8", b)
		return nil
	}
	if line, col, what, ok := structureOf(data); !ok {
		d.errorf(&yaml.Node{Line: line, Column: col}, "", "document has %s by here; cairn refuses it unparsed: check that this is the right file, and give large files to write_files base64-encoded (encoding: gz+b64) or build them into the image", what)
		return nil
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	first = bytes.TrimRight(first, "\r \t")
	for _, h := range unsupportedHeaders {
		if bytes.HasPrefix(first, []byte(h.prefix)) {
			d.errorf(&yaml.Node{Line: 1, Column: 1}, "", "this is %s, not a cloud-config; cairn reads only #cloud-config documents (YAML)", h.what)
			return nil
		}
	}
	d.src = data
	return d.parseYAML(data)
}

func (d *decoder) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on hostile input in the past; PID 1
		// must not, so a panic here is one more located error.
		if r := recover(); r != nil {
			root = nil
			d.errorf(&yaml.Node{Line: 1, Column: 1}, "", "document is not valid YAML (the parser failed: %v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		d.yamlError(err, data)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		d.errorf(&next, "", "a cloud-config is one YAML document, and this one has a second (after ---); merge them or give them as separate sources")
	} else if !errors.Is(err, io.EOF) {
		d.yamlError(err, data)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root = doc.Content[0]
	if isNull(root) {
		return nil
	}
	return root
}

func (d *decoder) yamlError(err error, data []byte) {
	msg := err.Error()
	line, col := 1, 1
	if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			col, _ = strconv.Atoi(m[2])
		}
		msg = strings.Replace(msg, m[0]+": ", "", 1)
	}
	// A tab in the indentation is the usual cause; say so at the tab.
	for _, l := range []int{line, line + 1, line - 1} {
		if tab := tabIndent(data, l); tab > 0 {
			d.errorf(&yaml.Node{Line: l, Column: tab}, "", "this line is indented with a tab; YAML indents with spaces only: replace the tab with spaces")
			return
		}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	d.errorf(&yaml.Node{Line: line, Column: col}, "", "not valid YAML: %s", msg)
}

// tabIndent returns the column of a tab in the indentation of line n
// (counting from 1), or 0.
func tabIndent(data []byte, n int) int {
	if n < 1 {
		return 0
	}
	for i := 1; i < n; i++ {
		_, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return 0
		}
		data = rest
	}
	for i, c := range data {
		switch c {
		case ' ':
		case '\t':
			return i + 1
		default:
			return 0
		}
	}
	return 0
}

// internalError starts the message of a diagnostic made from a panic.
const internalError = "internal error while reading the config"

// recoverInto turns a panic into one error diagnostic, so that a bug here
// never takes PID 1 down; the fuzz targets fail on such a diagnostic.
func recoverInto(file string, cfg **Config, diags *Diagnostics) {
	if r := recover(); r != nil {
		*cfg = nil
		*diags = append(*diags, Diagnostic{File: file, Line: 1, Column: 1, Severity: Error,
			Message: fmt.Sprintf("%s (%v); nothing applied — please report this with the document", internalError, r)})
	}
}
