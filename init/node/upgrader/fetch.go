package upgrader

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/upgrade"
)

// fetchTimeout bounds one file's download.
var fetchTimeout = 20 * time.Minute

// fetch brings every file of im into store: from im.Source when it names
// a URL, else from the servers' upgrade file service (sources are their
// base URLs), checking each file's size and sha256 before it is kept. A
// file already held (a server's own upload) is checked and reused.
func fetch(ctx context.Context, store *blobStore, im upgrade.Image, sources []string, hc *http.Client, printf func(string, ...any)) (map[string]string, error) {
	paths := map[string]string{}
	for _, name := range upgrade.BundleFiles {
		f, _ := im.File(name)
		if store.has(f) {
			if err := f.Verify(store.path(f.SHA256)); err == nil {
				paths[name] = store.path(f.SHA256)
				continue
			}
			os.Remove(store.path(f.SHA256))
		}
		var urls []string
		if im.Source != "" {
			u, err := url.JoinPath(im.Source, name)
			if err != nil {
				return nil, fmt.Errorf("spec.images[%s].source %q: %w", im.Board, im.Source, err)
			}
			urls = []string{u}
		} else {
			for _, s := range sources {
				urls = append(urls, s+upgrade.BlobPath(f.SHA256))
			}
		}
		if len(urls) == 0 {
			return nil, errors.New("the image has no source URL and no server holds its files")
		}
		var errs []error
		for _, u := range urls {
			start := time.Now()
			err := download(ctx, hc, u, store, f)
			if err == nil {
				printf("upgrade: fetched %s (%d MiB) from %s in %.1fs, sha256 verified", name, f.Size>>20, brief.URL(u), time.Since(start).Seconds())
				paths[name] = store.path(f.SHA256)
				break
			}
			errs = append(errs, fmt.Errorf("%s: %w", brief.URL(u), err))
		}
		if paths[name] == "" {
			return nil, fmt.Errorf("fetching %s: %w", name, errors.Join(errs...))
		}
	}
	return paths, nil
}

// download GETs u into store as f.
func download(ctx context.Context, hc *http.Client, u string, store *blobStore, f upgrade.File) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != f.Size {
		return fmt.Errorf("it is %d bytes, the upgrade says %d", resp.ContentLength, f.Size)
	}
	return store.put(f, resp.Body)
}
