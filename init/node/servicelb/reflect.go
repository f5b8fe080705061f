package servicelb

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cairn-os/cairn/config/brief"
	"github.com/cairn-os/cairn/config/kube"
	"github.com/cairn-os/cairn/init/supervise"
)

// Bounds of what a reflector reads: a page of a list, the objects of a
// collection, and how long one watch lasts before it is asked again
// (from where it ended, without listing).
var (
	listPage    = 250
	maxPage     = int64(8 << 20)
	maxObjects  = 20000
	watchFor    = 5 * time.Minute
	retryFirst  = time.Second
	retryMax    = 30 * time.Second
	listTimeout = time.Minute
)

// reflector keeps a collection's objects in memory, as the controller
// needs them: a list, then a watch from the list's version, renewed from
// where it ended; a list again only when the apiserver says that version
// is gone. Every change, and the first list, call changed.
type reflector[T any] struct {
	api  *kube.Client
	path string // the collection, "/api/v1/services"
	what string // for the console: "Services"
	// parse reads one object; keep false drops it.
	parse func(raw json.RawMessage) (meta objectMeta, v T, keep bool, err error)
	// mu guards items (replaced by each list); changed is called
	// without it.
	mu      *sync.Mutex
	items   map[string]T
	changed func()
	// synced is closed after the first list.
	synced chan struct{}
	say    func(format string, args ...any)
}

// run keeps the items until ctx ends.
func (r *reflector[T]) run(ctx context.Context) {
	delay := retryFirst
	lastSaid := ""
	fail := func(err error) bool {
		if ctx.Err() != nil {
			return false
		}
		if msg := brief.Err(err); msg != lastSaid {
			r.say("servicelb: reading the %s: %s; trying again", r.what, msg)
			lastSaid = msg
		}
		ok := supervise.Sleep(ctx, delay)
		delay = min(delay*2, retryMax)
		return ok
	}
	for ctx.Err() == nil {
		rv, err := r.list(ctx)
		if err != nil {
			if !fail(err) {
				return
			}
			continue
		}
		lastSaid, delay = "", retryFirst
		for ctx.Err() == nil {
			d := watchFor + rand.N(watchFor)
			err = r.api.Watch(ctx, r.path, rv, d, func(ev kube.WatchEvent) error {
				m, v, keep, err := r.parse(ev.Object)
				if err != nil {
					return fmt.Errorf("a %s event: %w", ev.Type, err)
				}
				if m.ResourceVersion != "" {
					rv = m.ResourceVersion
				}
				switch ev.Type {
				case "ADDED", "MODIFIED":
					r.mu.Lock()
					if r.items == nil {
						r.items = map[string]T{}
					}
					if keep {
						r.items[m.key()] = v
					} else {
						delete(r.items, m.key())
					}
					r.mu.Unlock()
				case "DELETED":
					r.mu.Lock()
					delete(r.items, m.key())
					r.mu.Unlock()
				default: // BOOKMARK: only the version moves
					return nil
				}
				lastSaid, delay = "", retryFirst
				r.changed()
				return nil
			})
			if kube.IsStatus(err, http.StatusGone) {
				break // list again
			}
			if err != nil && !fail(err) {
				return
			}
		}
	}
}

// list reads the whole collection, a page at a time, replaces the items
// and returns the list's version.
func (r *reflector[T]) list(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	api := r.api.WithMaxReply(maxPage)
	items := map[string]T{}
	cont, rv := "", ""
	for {
		q := url.Values{"limit": {fmt.Sprint(listPage)}}
		if cont != "" {
			q.Set("continue", cont)
		}
		var page struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
				Continue        string `json:"continue"`
			} `json:"metadata"`
			Items []json.RawMessage `json:"items"`
		}
		if err := api.Get(ctx, r.path+"?"+q.Encode(), &page); err != nil {
			return "", err
		}
		for _, raw := range page.Items {
			m, v, keep, err := r.parse(raw)
			if err != nil {
				return "", fmt.Errorf("listing %s: %w", r.path, err)
			}
			if keep {
				items[m.key()] = v
			}
		}
		if len(items) > maxObjects {
			return "", fmt.Errorf("listing %s: more than %d objects; servicelb keeps no more", r.path, maxObjects)
		}
		rv = page.Metadata.ResourceVersion
		if cont = page.Metadata.Continue; cont == "" {
			break
		}
	}
	r.mu.Lock()
	r.items = items
	r.mu.Unlock()
	select {
	case <-r.synced:
	default:
		close(r.synced)
	}
	r.changed()
	return rv, nil
}
