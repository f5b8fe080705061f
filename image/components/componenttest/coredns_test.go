package componenttest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// maxImageFile bounds what is read of one file of an image archive.
const maxImageFile = 256 << 20

// image is what a test needs of an image archive build.sh made: the names
// docker's manifest.json gives it, its config, and its single layer's files.
type image struct {
	repoTags []string
	config   struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			Entrypoint []string `json:"Entrypoint"`
		} `json:"config"`
	}
	files map[string][]byte
}

func readImage(t *testing.T, archive string) *image {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, maxImageFile))
		if err != nil {
			t.Fatalf("%s: %s: %v", archive, hdr.Name, err)
		}
		entries[hdr.Name] = data
	}
	var docker []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &docker); err != nil || len(docker) != 1 || len(docker[0].Layers) != 1 {
		t.Fatalf("%s: manifest.json %s: %v; want one image with one layer", archive, entries["manifest.json"], err)
	}
	img := &image{repoTags: docker[0].RepoTags, files: map[string][]byte{}}
	if err := json.Unmarshal(entries[docker[0].Config], &img.config); err != nil {
		t.Fatalf("%s: config %s: %v", archive, docker[0].Config, err)
	}
	lr := tar.NewReader(bytes.NewReader(entries[docker[0].Layers[0]]))
	for {
		hdr, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: layer: %v", archive, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(io.LimitReader(lr, maxImageFile))
			if err != nil {
				t.Fatal(err)
			}
			img.files[hdr.Name] = data
		}
	}
	return img
}

// extract writes the image's file at path (no leading slash) into dir.
func (img *image) extract(t *testing.T, path, dir string) string {
	t.Helper()
	data, ok := img.files[path]
	if !ok {
		t.Fatalf("the image's layer has no /%s (it has %d files)", path, len(img.files))
	}
	out := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(out, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAddonImages checks the add-on images other than CoreDNS: named as
// versions.env says, started by the binary they hold, which reports the
// pinned version.
func TestAddonImages(t *testing.T) {
	v := loadVersions(t)
	root := tree(t, "amd64")
	for _, c := range []struct {
		file, ref, entrypoint, want string
	}{
		{"local-path-provisioner.tar", v["LOCAL_PATH_IMAGE"], "/usr/bin/local-path-provisioner", "local-path-provisioner version " + v["LOCAL_PATH_VERSION"]},
		{"metrics-server.tar", v["METRICS_SERVER_IMAGE"], "/metrics-server", v["METRICS_SERVER_VERSION"]},
	} {
		t.Run(c.file, func(t *testing.T) {
			img := readImage(t, filepath.Join(root, "usr/share/cairn/images", c.file))
			if len(img.repoTags) != 1 || img.repoTags[0] != c.ref {
				t.Errorf("tagged %q, want %q", img.repoTags, c.ref)
			}
			if ep := img.config.Config.Entrypoint; len(ep) != 1 || ep[0] != c.entrypoint {
				t.Errorf("entrypoint %q, want [%s]", ep, c.entrypoint)
			}
			bin := img.extract(t, strings.TrimPrefix(c.entrypoint, "/"), t.TempDir())
			out, err := run(t, time.Minute, bin, "--version")
			if err != nil || strings.TrimSpace(out) != c.want {
				t.Errorf("%s --version: %v\n%s\nwant %q", c.entrypoint, err, out, c.want)
			}
		})
	}
}

// TestCoreDNSImage takes the coredns binary out of coredns.tar, checks the
// image is named and started as the node's manifests expect, runs it with a
// Corefile of the hosts plugin, and asks it over UDP and TCP.
func TestCoreDNSImage(t *testing.T) {
	v := loadVersions(t)
	root := tree(t, "amd64")
	img := readImage(t, filepath.Join(root, "usr/share/cairn/images/coredns.tar"))
	if len(img.repoTags) != 1 || img.repoTags[0] != v["COREDNS_IMAGE"] {
		t.Errorf("coredns.tar is tagged %q, want %q", img.repoTags, v["COREDNS_IMAGE"])
	}
	if ep := img.config.Config.Entrypoint; len(ep) != 1 || ep[0] != "/coredns" {
		t.Errorf("entrypoint %q, want [/coredns]", ep)
	}
	if img.config.Architecture != "amd64" || img.config.OS != "linux" {
		t.Errorf("image platform %s/%s, want linux/amd64", img.config.OS, img.config.Architecture)
	}
	dir := t.TempDir()
	coredns := img.extract(t, "coredns", dir)

	out, err := run(t, time.Minute, coredns, "-version")
	if err != nil || !strings.Contains(out, "CoreDNS-"+strings.TrimPrefix(v["COREDNS_VERSION"], "v")) {
		t.Errorf("coredns -version: %v\n%s", err, out)
	}
	out, _ = run(t, time.Minute, coredns, "-plugins")
	plugins := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		plugins[strings.TrimSpace(line)] = true
	}
	for _, p := range []string{"errors", "health", "ready", "kubernetes", "hosts", "forward", "cache", "loop", "reload", "loadbalance", "log", "prometheus"} {
		if !plugins[p] {
			t.Errorf("coredns -plugins does not list %s:\n%s", p, out)
		}
	}

	port, health := freePort(t), freePort(t)
	corefile := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(corefile, []byte(fmt.Sprintf(`.:%d {
    errors
    log
    health 127.0.0.1:%d
    hosts {
        192.0.2.10 node-a.cairn.test
        ttl 60
    }
    cache 30
    loadbalance
}
`, port, health)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "coredns", exec.Command(coredns, "-conf", corefile))
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	waitFor(t, "coredns health", time.Minute, func() error {
		resp, err := http.Get("http://" + addr(health) + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}, p)

	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		addrs, err := r.LookupHost(ctx, "node-a.cairn.test")
		if err != nil || len(addrs) != 1 || addrs[0] != "192.0.2.10" {
			t.Errorf("%s: node-a.cairn.test is %v (%v), want [192.0.2.10]", network, addrs, err)
		}
		// A name the hosts plugin does not know, with nothing to fall
		// through to, gets no address (the plugin answers SERVFAIL: it
		// has no SOA to make an NXDOMAIN with).
		if addrs, err := r.LookupHost(ctx, "other.cairn.test"); err == nil {
			t.Errorf("%s: other.cairn.test is %v, want no answer", network, addrs)
		}
		cancel()
	}
	if log := tail(p.log, 4000); !strings.Contains(log, "node-a.cairn.test") {
		t.Errorf("the log plugin did not log the query:\n%s", log)
	}
}
