package datasource

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/cairn-os/cairn/config/brief"
)

// seedFiles reads a NoCloud seed from a volume or a URL prefix. read
// returns fs.ErrNotExist (or errNotFound) for a missing file. Prefix names
// the seed for people: "cidata:/dev/vdb/" or "http://10.0.2.2:8000/". A
// file that is there but not what it should be is refused (in f); one
// that cannot be read is the error, a Refused.
func seedFiles(e *env, f *found, prefix string, read func(name string) ([]byte, error)) error {
	missing := func(err error) bool { return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotFound) }
	md, err := read("meta-data")
	switch {
	case err == nil:
		h, err := metaDataHostname(md)
		if err != nil {
			f.refuse(prefix+"meta-data", fmt.Errorf("not YAML: %w", err))
		}
		f.addHostname(hostnameSource(prefix+"meta-data", h))
	case missing(err):
	default:
		return Refused{Source: prefix + "meta-data", Err: err}
	}
	ud, err := read("user-data")
	switch {
	case err == nil:
		f.addUserData(prefix+"user-data", ud)
	case missing(err):
		e.log.Warn(fmt.Sprintf("config: the NoCloud seed %s has no user-data", prefix))
	default:
		return Refused{Source: prefix + "user-data", Err: err}
	}
	nc, err := read("network-config")
	switch {
	case err == nil:
		s, err := networkConfig(prefix+"network-config", nc)
		if err != nil {
			f.refuse(prefix+"network-config", err)
		}
		f.addDoc(s)
	case missing(err):
	default:
		return Refused{Source: prefix + "network-config", Err: err}
	}
	return nil
}

// gatherNoCloudVolume reads the first volume labelled cidata.
func gatherNoCloudVolume(_ context.Context, e *env, f *found) error {
	if e.opts.NoDevices {
		return nil
	}
	vols := findVolumes(e.opts.Root, e.log, "cidata")
	defer closeVolumes(vols)
	if len(vols) == 0 {
		return nil
	}
	v := vols[0]
	if len(vols) > 1 {
		e.log.Warn(fmt.Sprintf("config: %d volumes are labelled cidata; reading %s only", len(vols), v.dev))
	}
	prefix := "cidata:" + v.dev + "/"
	if err := seedFiles(e, f, prefix, v.vol.ReadFile); err != nil {
		// An unreadable seed is refused, never taken for no seed.
		var r Refused
		if !errors.As(err, &r) {
			r = Refused{Source: prefix, Err: err}
		}
		f.hostnames, f.docs = nil, nil
		f.refused = append(f.refused, r)
	}
	return nil
}

// gatherConfigDrive reads an OpenStack config drive (label config-2).
func gatherConfigDrive(_ context.Context, e *env, f *found) error {
	if e.opts.NoDevices {
		return nil
	}
	vols := findVolumes(e.opts.Root, e.log, "config-2")
	defer closeVolumes(vols)
	if len(vols) == 0 {
		return nil
	}
	v := vols[0]
	prefix := "config-2:" + v.dev + "/openstack/latest/"
	md, err := v.vol.ReadFile("openstack/latest/meta_data.json")
	switch {
	case err == nil:
		h, err := openStackHostname(md)
		if err != nil {
			f.refuse(prefix+"meta_data.json", fmt.Errorf("not JSON: %w", err))
		}
		f.addHostname(hostnameSource(prefix+"meta_data.json", h))
	case !errors.Is(err, fs.ErrNotExist):
		f.refuse(prefix+"meta_data.json", err)
	}
	ud, err := v.vol.ReadFile("openstack/latest/user_data")
	switch {
	case err == nil:
		f.addUserData(prefix+"user_data", ud)
	case !errors.Is(err, fs.ErrNotExist):
		f.refuse(prefix+"user_data", err)
	}
	return nil
}

func closeVolumes(vols []labelledVolume) {
	for _, v := range vols {
		v.file.Close()
	}
}

// gatherCmdline fetches ds=nocloud;s=URL/ and cairn.config=URL, in that
// order, retrying until each answers.
func gatherCmdline(ctx context.Context, e *env, f *found) error {
	c := e.cmd
	f.addHostname(hostnameSource("kernel command line (ds=nocloud;h=)", c.hostname))
	if c.seedURL != "" {
		base := c.seedURL
		if !strings.HasSuffix(base, "/") {
			base += "/"
		}
		if strings.HasPrefix(base, "/") {
			base = "file://" + base
		}
		e.log.Info("config: fetching the NoCloud seed " + brief.URL(base))
		err := seedFiles(e, f, base, func(name string) ([]byte, error) {
			// cloud-init requires user-data and meta-data; a seed server
			// that is still starting may 404, so wait for user-data.
			return e.fetch.get(ctx, "GET", base+name, name == "user-data", nil)
		})
		if err != nil {
			return err
		}
	}
	if c.configURL != "" {
		e.log.Info("config: fetching " + brief.URL(c.configURL))
		data, err := e.fetch.get(ctx, "GET", c.configURL, true, nil)
		if err != nil {
			return err
		}
		f.addUserData(brief.URL(c.configURL), data)
	}
	return nil
}
