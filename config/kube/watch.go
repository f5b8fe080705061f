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
