// Package datasource finds the node's config documents: the file baked into
// the image, a NoCloud seed volume, an OpenStack config drive, a URL on the
// kernel command line and the EC2 instance metadata service.
package datasource

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/cairn-os/cairn/config"
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
}

// Gather returns every config document found, in precedence order: later
// sources win per key. It fails only when a source that was asked for on the
// kernel command line cannot be read before ctx ends.
func Gather(ctx context.Context, opts Options) ([]config.Source, error) {
	return nil, nil
}
