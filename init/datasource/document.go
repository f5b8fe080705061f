package datasource

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-os/cairn/config"
)

// userData turns a user-data file into a Source. Empty documents are
// dropped; gzip-compressed ones (cloud-init accepts them) are expanded;
// shell scripts and MIME multipart archives, which cairn does not run, are
// refused with the reason.
func userData(name string, data []byte) (*config.Source, error) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip header: %w", err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, maxFile+1))
		if err != nil {
			return nil, fmt.Errorf("gunzip: %w", err)
		}
		if len(data) > maxFile {
			return nil, fmt.Errorf("expands to more than %d bytes", maxFile)
		}
	}
	text := strings.TrimSpace(string(data))
	switch {
	case text == "":
		return nil, nil
	case strings.HasPrefix(text, "#!"):
		return nil, errors.New("a shell script; cairn reads only #cloud-config")
	case strings.HasPrefix(text, "#include"), strings.HasPrefix(strings.ToLower(text), "content-type: multipart"):
		return nil, errors.New("an #include list or a MIME archive; cairn reads only #cloud-config")
	}
	return &config.Source{Name: name, Data: data}, nil
}

// addUserData adds the user-data file name holds, or refuses it.
func (f *found) addUserData(name string, data []byte) {
	s, err := userData(name, data)
	if err != nil {
		f.refuse(name, err)
		return
	}
	f.addDoc(s)
}

// readError is what a failed read of a present file says, without the
// path the source's name already gives.
func readError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	if errors.Is(err, config.ErrTooLarge) {
		if inner := errors.Unwrap(err); inner != nil {
			return inner
		}
	}
	return err
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
