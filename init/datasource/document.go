package datasource

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
)

// userData turns a user-data file into a Source. Empty documents are
// dropped; gzip-compressed ones (cloud-init accepts them) are expanded;
// shell scripts and MIME multipart archives, which cairn does not run, are
// refused with a reason the caller logs.
func userData(name string, data []byte) (*config.Source, error) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: gzip header: %w", name, err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, maxFile+1))
		if err != nil {
			return nil, fmt.Errorf("%s: gunzip: %w", name, err)
		}
		if len(data) > maxFile {
			return nil, fmt.Errorf("%s: expands to more than %d bytes", name, maxFile)
		}
	}
	text := strings.TrimSpace(string(data))
	switch {
	case text == "":
		return nil, nil
	case strings.HasPrefix(text, "#!"):
		return nil, fmt.Errorf("%s is a shell script; cairn only reads #cloud-config, so it is ignored", name)
	case strings.HasPrefix(text, "#include"), strings.HasPrefix(strings.ToLower(text), "content-type: multipart"):
		return nil, fmt.Errorf("%s is an #include list or a MIME archive; cairn only reads #cloud-config, so it is ignored", name)
	}
	return &config.Source{Name: name, Data: data}, nil
}

// hostnameSource renders `hostname: NAME` as its own low-precedence document.
func hostnameSource(name, hostname string) *config.Source {
	hostname = strings.TrimSpace(hostname)
	if hostname == "" {
		return nil
	}
	out, err := yaml.Marshal(struct {
		Hostname string `yaml:"hostname"`
	}{hostname})
	if err != nil {
		return nil
	}
	return &config.Source{Name: name, Data: append([]byte("#cloud-config\n"), out...)}
}

// metaDataHostname reads local-hostname from NoCloud meta-data (YAML, of
// which JSON is a subset).
func metaDataHostname(data []byte) (string, error) {
	var md map[string]any
	if err := yaml.Unmarshal(data, &md); err != nil {
		return "", err
	}
	h, _ := md["local-hostname"].(string)
	return h, nil
}

// openStackHostname reads hostname from an OpenStack meta_data.json.
func openStackHostname(data []byte) (string, error) {
	var md struct {
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal(data, &md); err != nil {
		return "", err
	}
	return md.Hostname, nil
}
