package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/upgrade"
	"github.com/cairn-os/cairn/image"
)

// bundle is one --image: its manifest and where its files are, in a
// local directory (uploaded to the servers) or under a base URL.
type bundle struct {
	arg  string
	dir  string
	base string
	upgrade.Bundle
}

func (b *bundle) String() string {
	var size int64
	for _, f := range b.Files {
		size += f.Size
	}
	where := b.dir
	if b.base != "" {
		where = b.base
	}
	return fmt.Sprintf("%s %s (%s) from %s, %d files, %s", b.Board, b.Version, b.Arch, where, len(b.Files), image.HumanSize(size))
}

// readBundle reads the bundle arg names: a directory holding update.json
// or holding update/ with it, or a URL of either. A directory's files are
// checked against update.json here; a URL's are looked at (HEAD).
func readBundle(ctx context.Context, arg string) (*bundle, error) {
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		return fetchBundle(ctx, arg)
	}
	dir := arg
	if _, err := os.Stat(filepath.Join(dir, upgrade.BundleFile)); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, upgrade.BundleDir, upgrade.BundleFile)); err2 != nil {
			return nil, fmt.Errorf("--image %s: no %s in it or in its %s/: %w; build one with cairn build --format update", arg, upgrade.BundleFile, upgrade.BundleDir, unwrapPathErr(err))
		}
		dir = filepath.Join(dir, upgrade.BundleDir)
	}
	f, err := os.Open(filepath.Join(dir, upgrade.BundleFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := parseBundle(f, filepath.Join(dir, upgrade.BundleFile))
	if err != nil {
		return nil, err
	}
	b.arg, b.dir = arg, dir
	for _, bf := range b.Files {
		if err := bf.Verify(filepath.Join(dir, bf.Name)); err != nil {
			return nil, fmt.Errorf("%w: the bundle is damaged or half copied, build or copy it again", err)
		}
	}
	return b, nil
}

// fetchBundle reads URL/update.json, or URL/update/update.json.
func fetchBundle(ctx context.Context, arg string) (*bundle, error) {
	base := strings.TrimSuffix(arg, upgrade.BundleFile)
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	c := &http.Client{Timeout: 30 * time.Second}
	get := func(url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, err
		}
		return c.Do(req)
	}
	resp, err := get(base + upgrade.BundleFile)
	if err == nil && resp.StatusCode == http.StatusNotFound && !strings.HasSuffix(arg, upgrade.BundleFile) {
		resp.Body.Close()
		base += upgrade.BundleDir + "/"
		resp, err = get(base + upgrade.BundleFile)
	}
	if err != nil {
		return nil, fmt.Errorf("--image %s: %w", arg, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--image %s: GET %s%s: %s", arg, base, upgrade.BundleFile, resp.Status)
	}
	b, err := parseBundle(resp.Body, base+upgrade.BundleFile)
	if err != nil {
		return nil, err
	}
	b.arg, b.base = arg, base
	for _, f := range b.Files {
		req, err := http.NewRequestWithContext(ctx, "HEAD", base+f.Name, nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("--image %s: %w", arg, err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusMethodNotAllowed:
		case resp.StatusCode != http.StatusOK:
			return nil, fmt.Errorf("--image %s: HEAD %s%s: %s; nodes could not fetch it", arg, base, f.Name, resp.Status)
		case resp.ContentLength >= 0 && resp.ContentLength != f.Size:
			return nil, fmt.Errorf("--image %s: %s%s is %d bytes, update.json says %d", arg, base, f.Name, resp.ContentLength, f.Size)
		}
	}
	return b, nil
}

// parseBundle reads update.json (at most upgrade.MaxManifest bytes) and
// checks it.
func parseBundle(r io.Reader, name string) (*bundle, error) {
	data, err := io.ReadAll(io.LimitReader(r, upgrade.MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > upgrade.MaxManifest {
		return nil, fmt.Errorf("%s is larger than %d bytes; it is not an update.json", name, upgrade.MaxManifest)
	}
	b := &bundle{}
	if err := json.Unmarshal(data, &b.Bundle); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
