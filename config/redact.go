package config

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redacted returns a copy with the token, datastore password, registry
// credentials, the S3 secret key (etcd-s3-secret-key) and key material
// replaced by "<redacted>"; Marshal renders it as #cloud-config.
//
// Registry credentials are every password, auth and identitytoken of
// kubernetes.registries. Key material is the content of every write_files
// entry that is not world-readable (its permissions deny "other" read),
// that holds a PEM private key, or that writes the token-file, the
// etcd-s3-secret-key-file or the registries file (private-registry, or
// k3s's default path).
func (c *Config) Redacted() *Config {
	if c == nil {
		return nil
	}
	r := c.clone()
	k := &r.Kubernetes
	for _, t := range []*string{&k.Token, &k.AgentToken, &k.EtcdS3SecretKey} {
		if *t != "" {
			*t = redactedText
		}
	}
	if k.DatastoreEndpoint != "" {
		k.DatastoreEndpoint = redactEndpoint(k.DatastoreEndpoint)
	}
	if k.Registries != nil {
		for host, rc := range k.Registries.Configs {
			if a := rc.Auth; a != nil {
				ra := *a
				for _, s := range []*string{&ra.Password, &ra.Auth, &ra.IdentityToken} {
					if *s != "" {
						*s = redactedText
					}
				}
				rc.Auth = &ra
				k.Registries.Configs[host] = rc
			}
		}
	}
	for i, m := range k.Manifests {
		if HoldsSecret([]byte(m.Content)) {
			// A YAML comment, so that the printed config still loads.
			k.Manifests[i].Content = "# " + redactedText + ": it holds a Secret\n"
		}
	}
	for i := range r.WriteFiles {
		p := r.WriteFiles[i].Path
		if r.WriteFiles[i].Secret() || (k.TokenFile != "" && p == k.TokenFile) || (k.AgentTokenFile != "" && p == k.AgentTokenFile) ||
			(k.EtcdS3SecretKeyFile != "" && p == k.EtcdS3SecretKeyFile) ||
			(k.PrivateRegistry != "" && p == k.PrivateRegistry) || p == DefaultPrivateRegistry ||
			r.WriteFiles[i].holdsSecretManifest() {
			// Plain text, so that the printed config still loads.
			r.WriteFiles[i].Content = redactedText
			r.WriteFiles[i].Encoding = "text"
		}
	}
	return r
}

// clone copies c deeply enough that changing the copy's fields, lists and
// maps leaves c alone.
func (c *Config) clone() *Config {
	r := *c
	r.WriteFiles = append([]WriteFile(nil), c.WriteFiles...)
	if c.NTP != nil {
		n := NTP{Servers: append([]string(nil), c.NTP.Servers...), Pools: append([]string(nil), c.NTP.Pools...)}
		r.NTP = &n
	}
	if c.Network != nil {
		n := *c.Network
		n.Ethernets = maps.Clone(c.Network.Ethernets)
		n.VLANs = maps.Clone(c.Network.VLANs)
		n.Bonds = maps.Clone(c.Network.Bonds)
		r.Network = &n
	}
	r.Sysctl = maps.Clone(c.Sysctl)
	k := &r.Kubernetes
	for _, s := range []*[]string{&k.TLSSAN, &k.NodeLabel, &k.NodeTaint, &k.Disable,
		&k.KubeAPIServerArg, &k.KubeControllerManagerArg, &k.KubeSchedulerArg, &k.KubeletArg, &k.KubeProxyArg} {
		*s = append([]string(nil), (*s)...)
	}
	k.Registries = c.Kubernetes.Registries.clone()
	k.Manifests = slices.Clone(c.Kubernetes.Manifests)
	r.locs = maps.Clone(c.locs)
	r.files = append([]string(nil), c.files...)
	return &r
}

// clone copies r deeply: lists, maps and the auth and tls entries.
func (r *Registries) clone() *Registries {
	if r == nil {
		return nil
	}
	out := &Registries{}
	if r.Mirrors != nil {
		out.Mirrors = map[string]RegistryMirror{}
		for k, m := range r.Mirrors {
			out.Mirrors[k] = RegistryMirror{Endpoints: slices.Clone(m.Endpoints), Rewrites: maps.Clone(m.Rewrites)}
		}
	}
	if r.Configs != nil {
		out.Configs = map[string]RegistryConfig{}
		for k, c := range r.Configs {
			if c.Auth != nil {
				a := *c.Auth
				c.Auth = &a
			}
			if c.TLS != nil {
				t := *c.TLS
				c.TLS = &t
			}
			out.Configs[k] = c
		}
	}
	return out
}

// holdsSecretManifest says whether the file is a manifest of the
// manifests directory that holds a Secret.
func (w WriteFile) holdsSecretManifest() bool {
	if _, ok := manifestFile(w); !ok || w.Content == redactedText {
		return false
	}
	data, err := w.Decode()
	return err != nil || HoldsSecret(data)
}

// Secret reports whether the file's content is key material: it is not
// world-readable or it holds a PEM private key.
func (w WriteFile) Secret() bool {
	if mode, err := w.Mode(); err == nil && mode&0o004 == 0 {
		return true
	}
	if w.Content == "" {
		return false
	}
	if b, err := w.Decode(); err == nil && bytes.Contains(b, []byte("PRIVATE KEY")) {
		return true
	}
	return strings.Contains(w.Content, "PRIVATE KEY")
}

// Marshal renders the config as a #cloud-config document. Call it on
// Redacted() before printing or logging.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("rendering the config as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("rendering the config as YAML: %w", err)
	}
	if buf.String() == "#cloud-config\n{}\n" {
		buf.Truncate(len("#cloud-config\n"))
	}
	return buf.Bytes(), nil
}
