package dceoverlay

import (
	"fmt"
	"strings"
)

// A replacement is one exact edit of an upstream file: upstream's text, and
// cairn's.
type replacement struct{ upstream, cairn string }

// replaceOnce returns src (read from file, a file of module) with each
// replacement made in turn. Each upstream text must occur exactly once:
// otherwise the module has changed under the edit and is refused, so a new
// version is looked at before it is built.
func replaceOnce(file, module string, src []byte, rs ...replacement) ([]byte, error) {
	out := string(src)
	for _, r := range rs {
		if n := strings.Count(out, r.upstream); n != 1 {
			return nil, fmt.Errorf("%s: %q occurs %d times, want once; this %s version needs a new look (internal/dceoverlay)", file, r.upstream, n, module)
		}
		out = strings.Replace(out, r.upstream, r.cairn, 1)
	}
	return []byte(out), nil
}
