package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// ResolvConf is the file the resolver writes; when it is a symlink (to
// /run/..., so that a read-only /etc still gets DNS) the link's target is
// written instead. FallbackResolvConf is used when /etc is read-only and
// resolv.conf is not such a symlink.
const (
	ResolvConf         = "/etc/resolv.conf"
	FallbackResolvConf = "/run/cairn/resolv.conf"
)

// resolver merges nameservers from static config and DHCP leases and
// rewrites resolv.conf atomically whenever they change.
type resolver struct {
	root string
	log  *slog.Logger

	mu      sync.Mutex
	entries map[string]dnsEntry // by "static:eth0" / "dhcp:eth0"
	last    string
	warned  bool
}

type dnsEntry struct {
	servers []netip.Addr
	search  []string
}

func newResolver(root string, log *slog.Logger) *resolver {
	return &resolver{root: root, log: log, entries: map[string]dnsEntry{}}
}

// set replaces one origin's servers and search domains and rewrites the file.
func (r *resolver) set(origin string, servers []netip.Addr, search []string) {
	r.mu.Lock()
	if len(servers) == 0 && len(search) == 0 {
		delete(r.entries, origin)
	} else {
		r.entries[origin] = dnsEntry{servers: servers, search: search}
	}
	r.mu.Unlock()
	r.write()
}

// render lists static entries first, then DHCP ones, each by link name.
func (r *resolver) render() string {
	var origins []string
	for o := range r.entries {
		origins = append(origins, o)
	}
	sort.Slice(origins, func(i, j int) bool {
		si, sj := strings.HasPrefix(origins[i], "static:"), strings.HasPrefix(origins[j], "static:")
		if si != sj {
			return si
		}
		return origins[i] < origins[j]
	})
	var b strings.Builder
	b.WriteString("# Written by cairn from the network config and DHCP leases; changes are overwritten.\n")
	seen := map[string]bool{}
	var search []string
	for _, o := range origins {
		e := r.entries[o]
		for _, s := range e.servers {
			if !seen[s.String()] {
				seen[s.String()] = true
				fmt.Fprintf(&b, "nameserver %s\n", s)
			}
		}
		for _, d := range e.search {
			if !seen["search "+d] {
				seen["search "+d] = true
				search = append(search, d)
			}
		}
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.String()
}

// path follows /etc/resolv.conf's symlinks inside root.
func (r *resolver) path() string {
	p := ResolvConf
	for range 8 {
		target, err := os.Readlink(filepath.Join(r.root, p))
		if err != nil {
			break
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return filepath.Join(r.root, p)
}

func (r *resolver) write() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.entries) == 0 && r.last == "" {
		return // nothing known yet: leave the image's file alone
	}
	text := r.render()
	if text == r.last {
		return
	}
	p := r.path()
	err := writeAtomic(p, []byte(text))
	if err != nil && (errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission)) {
		fallback := filepath.Join(r.root, FallbackResolvConf)
		if err2 := writeAtomic(fallback, []byte(text)); err2 == nil {
			if !r.warned {
				r.warned = true
				r.log.Warn(fmt.Sprintf("network: %s is read-only; wrote %s instead (make %s a symlink to it)", ResolvConf, FallbackResolvConf, ResolvConf))
			}
			r.last = text
			return
		}
	}
	if err != nil {
		r.log.Error(fmt.Sprintf("network: cannot write %s: %v; name resolution will not work", p, err))
		return
	}
	r.last = text
}

// writeAtomic writes a world-readable file by renaming a complete temporary
// file over it, so a reader never sees half a resolv.conf.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".resolv.conf.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
