package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WatchEvent is one change a watch reports: its type (ADDED, MODIFIED,
// DELETED, BOOKMARK) and the object as JSON.
type WatchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// Watch streams the changes to the collection at path (as listed, with a
// query of its own or none) after resourceVersion rv, handing each event
// to fn, until the apiserver ends the watch (it is asked to within
// timeout, whole seconds), ctx ends, or fn returns an error, which Watch
// returns. It returns nil when the apiserver ended the watch, and an
// *Error with code 410 (Gone) when rv is too old: list again. Each event
// is read within the client's reply bound; bookmarks are asked for, so
// that a watch of a quiet collection can go on from a recent version.
func (c *Client) Watch(ctx context.Context, path, rv string, timeout time.Duration, fn func(WatchEvent) error) error {
	secs := max(int(timeout/time.Second), 1)
	q := url.Values{"watch": {"1"}, "allowWatchBookmarks": {"true"}, "timeoutSeconds": {strconv.Itoa(secs)}}
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	full := path + sep + q.Encode()
	// The apiserver ends the watch at timeoutSeconds; the deadline only
	// catches one that never does (a connection that hangs).
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+c.hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+full, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", JSON)
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	// The client's own timeout bounds a whole exchange; a watch is long.
	hc := &http.Client{Transport: c.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		reply, _ := io.ReadAll(io.LimitReader(resp.Body, min(c.limit, 64<<10)))
		return ReplyError(http.MethodGet, path, resp.StatusCode, reply)
	}
	body := &boundedReader{r: resp.Body, limit: c.limit}
	dec := json.NewDecoder(body)
	for {
		body.n = 0
		var ev WatchEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, errTooLong) {
				return fmt.Errorf("watching %s: an event of more than %d bytes", path, c.limit)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("watching %s: %w", path, ctx.Err())
			}
			return fmt.Errorf("watching %s: %w", path, err)
		}
		if ev.Type == "ERROR" {
			// A Status: 410 when rv is too old (the apiserver compacted
			// past it), something else when the watch broke.
			var st struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			json.Unmarshal(ev.Object, &st)
			if st.Code == 0 {
				st.Code = http.StatusInternalServerError
			}
			return &Error{Method: http.MethodGet, Path: path, Code: st.Code, Message: st.Message}
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// Waits of ListWatch after an error: the first, doubled each time up to
// the last, and the first again once a list works.
var (
	listWatchRetryFirst = time.Second
	listWatchRetryMax   = 30 * time.Second
)

// ListWatch keeps a collection in view until ctx ends: it lists path (one
// request, within the client's reply bound) and hands the items to list,
// then watches from the list's version, handing each change to event
// (bookmarks only move the version), and asks for a new watch every
// watchFor from where the last one ended. It lists again only when the
// apiserver says that version is gone (410), or after an error (the
// list's, the watch's, list's or event's), which is handed to failed.
// Before each list again it waits: 1 s, doubled after each error up to
// 30 s, and 1 s again once a watch has lasted until the apiserver ended it.
func (c *Client) ListWatch(ctx context.Context, path string, watchFor time.Duration,
	list func(items []json.RawMessage) error, event func(WatchEvent) error, failed func(error)) {
	delay := listWatchRetryFirst
	for ctx.Err() == nil {
		rv, err := c.listOnce(ctx, path, list)
		if err == nil {
			err = c.watchFrom(ctx, path, rv, watchFor, event, &delay)
		}
		if ctx.Err() != nil {
			return
		}
		gone := IsStatus(err, http.StatusGone)
		if !gone {
			failed(err)
		}
		if !sleep(ctx, delay) {
			return
		}
		if !gone {
			delay = min(delay*2, listWatchRetryMax)
		}
	}
}

// watchFrom watches path from rv, a watch after another, until one fails
// or ctx ends; a watch the apiserver ended sets *delay back to the first.
func (c *Client) watchFrom(ctx context.Context, path, rv string, watchFor time.Duration, event func(WatchEvent) error, delay *time.Duration) error {
	for {
		began := time.Now()
		err := c.Watch(ctx, path, rv, watchFor, func(ev WatchEvent) error {
			var m struct {
				Metadata struct {
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if json.Unmarshal(ev.Object, &m) == nil && m.Metadata.ResourceVersion != "" {
				rv = m.Metadata.ResourceVersion
			}
			if ev.Type == "BOOKMARK" {
				return nil
			}
			return event(ev)
		})
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		*delay = listWatchRetryFirst
		// A watch the apiserver ends at once is not asked again at once.
		if time.Since(began) < time.Second && !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// listOnce lists path, hands the items to list and returns the list's
// version.
func (c *Client) listOnce(ctx context.Context, path string, list func([]json.RawMessage) error) (string, error) {
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := c.Get(ctx, path, &l); err != nil {
		return "", err
	}
	if err := list(l.Items); err != nil {
		return "", err
	}
	return l.Metadata.ResourceVersion, nil
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var errTooLong = errors.New("too long")

// boundedReader fails once more than limit bytes are read since n was
// last set to 0 (one event, and what the decoder reads ahead).
type boundedReader struct {
	r        io.Reader
	n, limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n > b.limit {
		return 0, errTooLong
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}
