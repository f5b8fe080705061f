// Package datasource finds the node's config documents: the file baked into
// the image, a NoCloud seed volume, an OpenStack config drive, a URL on the
// kernel command line and the EC2 instance metadata service.
//
// Each source is one small provider in its own file; Gather asks them in
// precedence order. Seed volumes are read in place (vfat and iso9660 are
// parsed here), so neither a mount nor the kernel's filesystem modules are
// needed to find the config.
package datasource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/layout"
	"github.com/cairn-os/cairn/init/cmdline"
)

// Options says where to look.
type Options struct {
	// Root prefixes every path the sources read (/etc, /sys, /dev, /proc);
	// empty means "/". Tests and the container platform set it.
	Root string
	// Cmdline is the kernel command line; when empty it is read from
	// Root/proc/cmdline.
	Cmdline string
	// Log receives console-visible progress lines; nil discards them.
	Log *slog.Logger
	// HTTP fetches URLs; nil means a client with sane timeouts.
	HTTP *http.Client
	// LocalOnly skips the sources that need the network (a URL on the
	// kernel command line, IMDS). The init gathers once this way to find a
	// seed's network config, brings the network up, then gathers again.
	LocalOnly bool
	// NoDevices skips the block device scan (NoCloud seed, config drive):
	// the container platform has no disks of its own.
	NoDevices bool
	// IMDS is the EC2 metadata endpoint; empty means
	// http://169.254.169.254. Tests point it at a local server.
	IMDS string
}

// env is what every provider gets.
type env struct {
	opts  Options
	cmd   cmdKeys
	log   *slog.Logger
	fetch *fetcher
}

// found is what one provider contributes: hostnames from metadata (lowest
// precedence, so any hostname: key wins), documents, and what it refused.
type found struct {
	hostnames []config.Source
	docs      []config.Source
	refused   RefusedError
}

// Refused is a source that is there but cannot be used: unreadable, too
// large, or not a config cairn reads. It stops the boot as an invalid
// config does, and never counts as absent: a node whose seed is refused
// must not start on the defaults (a new single-server cluster) instead of
// the agent it was meant to be.
type Refused struct {
	// Source names it as the console does: "cidata:/dev/vda/user-data".
	Source string
	Err    error
}

func (r Refused) Error() string { return r.Source + ": " + r.Err.Error() }

func (r Refused) Unwrap() error { return r.Err }

// RefusedError is Gather's error when it refused sources: one each.
type RefusedError []Refused

func (e RefusedError) Error() string {
	var parts []string
	for _, r := range e {
		parts = append(parts, r.Error())
	}
	return strings.Join(parts, "; ")
}

func (f *found) refuse(source string, err error) {
	f.refused = append(f.refused, Refused{Source: source, Err: err})
}

func (f *found) addDoc(s *config.Source) {
	if s != nil {
		f.docs = append(f.docs, *s)
	}
}

func (f *found) addHostname(s *config.Source) {
	if s != nil {
		f.hostnames = append(f.hostnames, *s)
	}
}

// provider is one config source.
type provider struct {
	name   string
	remote bool // needs the network
	gather func(ctx context.Context, e *env, f *found) error
}

// providers in precedence order: later ones win per key.
var providers = []provider{
	{name: "baked-in file", gather: gatherBaked},
	{name: "NoCloud seed", gather: gatherNoCloudVolume},
	{name: "OpenStack config drive", gather: gatherConfigDrive},
	{name: "kernel command line", remote: true, gather: gatherCmdline},
	{name: "EC2 metadata service", remote: true, gather: gatherEC2},
}

// Gather returns every config document found, in precedence order: later
// sources win per key. Hostnames taken from metadata (NoCloud local-hostname,
// OpenStack and EC2 hostnames) come first, so a hostname: key in any document
// wins over them. A URL named on the kernel command line is retried until
// it answers; Gather fails when ctx ends first. A source that is there but
// cannot be used (unreadable, too large, not a config cairn reads) is
// refused: Gather reads the other local sources, then returns a
// RefusedError naming each, and no documents; sources on the network are
// not asked then.
func Gather(ctx context.Context, opts Options) ([]config.Source, error) {
	e, err := newEnv(opts)
	if err != nil {
		return nil, err
	}
	var all found
	for _, p := range providers {
		if p.remote && (opts.LocalOnly || len(all.refused) > 0) {
			continue
		}
		var f found
		if err := p.gather(ctx, e, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		all.hostnames = append(all.hostnames, f.hostnames...)
		all.docs = append(all.docs, f.docs...)
		all.refused = append(all.refused, f.refused...)
	}
	if len(all.refused) > 0 {
		return nil, all.refused
	}
	return append(all.hostnames, all.docs...), nil
}

// NeedsNetwork reports whether the kernel command line names a source that
// is only reachable over the network, so the init knows to bring the
// network up before the second Gather.
func NeedsNetwork(opts Options) bool {
	e, err := newEnv(opts)
	if err != nil {
		return false
	}
	remote := func(u string) bool { return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") }
	return remote(e.cmd.configURL) || remote(e.cmd.seedURL) || e.cmd.ec2
}

func newEnv(opts Options) (*env, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	line := cmdline.Parse(opts.Cmdline)
	if opts.Cmdline == "" {
		var err error
		line, err = cmdline.Read(filepath.Join(opts.Root, "proc/cmdline"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	client := opts.HTTP
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &env{
		opts:  opts,
		cmd:   parseCmdline(line),
		log:   log,
		fetch: &fetcher{root: opts.Root, client: client, log: log},
	}, nil
}

func gatherBaked(_ context.Context, e *env, f *found) error {
	data, err := config.ReadFile(filepath.Join(e.opts.Root, layout.ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.refuse(layout.ConfigFile, readError(err))
		return nil
	}
	f.addUserData(layout.ConfigFile, data)
	return nil
}
