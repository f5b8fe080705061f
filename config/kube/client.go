// Package kube is cairn's one apiserver client: a handful of REST calls
// with JSON bodies, each bounded in time and in what it reads, and the
// kubeconfig files that carry its credentials. The init carries no
// Kubernetes client library; the node, the VIP election, the CLI's
// rollout, `cairn cluster` and the join client all use this one, with
// their own policies as functions over it.
package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-os/cairn/config/brief"
)

// Options shape a Client. The zero value is a client for the init: no
// proxy, 15 s a request, replies up to 4 MiB.
type Options struct {
	// TLS trusts the cluster's CA and may carry a client certificate.
	TLS *tls.Config
	// Timeout bounds each request (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxReply bounds what is read of a reply (DefaultMaxReply when zero).
	MaxReply int64
	// Bearer, when set, is sent as the request's bearer token.
	Bearer string
	// Retries is how many times a 429 (too busy, or a resource's storage
	// still starting) is asked again, after the delay it names (at most
	// 5 s each).
	Retries int
	// ProxyFromEnvironment honours $HTTPS_PROXY (the CLI on a user's
	// machine); the init never does.
	ProxyFromEnvironment bool
	// DialContext, when set, makes the connections (a test's network
	// namespace, for one).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Defaults of Options.
const (
	DefaultTimeout  = 15 * time.Second
	DefaultMaxReply = 4 << 20
)

// Client talks to one apiserver.
type Client struct {
	base   string // "https://127.0.0.1:6443"
	hc     *http.Client
	bearer string
	limit  int64
	tries  int
}

// New returns a client of the apiserver at base ("https://HOST:PORT").
func New(base string, o Options) *Client {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxReply == 0 {
		o.MaxReply = DefaultMaxReply
	}
	tr := &http.Transport{TLSClientConfig: o.TLS, DialContext: o.DialContext,
		MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}
	if o.ProxyFromEnvironment {
		tr.Proxy = http.ProxyFromEnvironment
	}
	return &Client{base: strings.TrimSuffix(base, "/"), hc: &http.Client{Timeout: o.Timeout, Transport: tr},
		bearer: o.Bearer, limit: o.MaxReply, tries: o.Retries}
}

// Base is the apiserver's URL.
func (c *Client) Base() string { return c.base }

// WithMaxReply is a client sharing c's connections that reads replies of
// up to n bytes (a long list).
func (c *Client) WithMaxReply(n int64) *Client {
	d := *c
	d.limit = n
	return &d
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Error is an apiserver's answer other than 2xx: its status and the
// message of its Status object (or the reply's first line).
type Error struct {
	Method, Path string
	Code         int
	Message      string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, http.StatusText(e.Code), e.Message)
}

// IsStatus says whether err is an apiserver's answer with code.
func IsStatus(err error, code int) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Code == code
}

// Content types of a request body.
const (
	JSON       = "application/json"
	MergePatch = "application/merge-patch+json"
	ApplyPatch = "application/apply-patch+yaml"
)

// Do sends body (marshalled to JSON when not nil) and decodes a 2xx reply
// into out (when not nil). Any other answer is an *Error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.Send(ctx, method, path, JSON, body, out)
}

// Get reads path into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// MergePatch applies a JSON merge patch to path.
func (c *Client) MergePatch(ctx context.Context, path string, patch any) error {
	return c.Send(ctx, http.MethodPatch, path, MergePatch, patch, nil)
}

// Send is Do with a body of contentType.
func (c *Client) Send(ctx context.Context, method, path, contentType string, body, out any) error {
	var js []byte
	if body != nil {
		var err error
		if js, err = json.Marshal(body); err != nil {
			return err
		}
	}
	code, reply, err := c.exchange(ctx, method, path, contentType, js)
	if err != nil {
		return err
	}
	if code/100 != 2 {
		return ReplyError(method, path, code, reply)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// Raw sends a request with no body and returns the status and reply
// whatever they are: for probes that read the reply of a failure
// (/readyz's failed checks).
func (c *Client) Raw(ctx context.Context, method, path string) (int, []byte, error) {
	return c.exchange(ctx, method, path, "", nil)
}

// exchange sends one request, asking again after a 429 up to c.tries
// times, and reads at most c.limit bytes of the reply.
func (c *Client) exchange(ctx context.Context, method, path, contentType string, body []byte) (int, []byte, error) {
	for try := 0; ; try++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Accept", JSON)
		if body != nil {
			req.Header.Set("Content-Type", contentType)
		}
		if c.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+c.bearer)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))
		}
		reply, err := io.ReadAll(io.LimitReader(resp.Body, c.limit+1))
		resp.Body.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests && try < c.tries {
			wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || wait < 1 {
				wait = 1
			}
			select {
			case <-ctx.Done():
				return 0, nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			case <-time.After(time.Duration(min(wait, 5)) * time.Second):
			}
			continue
		}
		if int64(len(reply)) > c.limit {
			return 0, nil, fmt.Errorf("%s %s: the apiserver answered more than %d bytes", method, path, c.limit)
		}
		return resp.StatusCode, reply, nil
	}
}

// unwrapURLError drops net/http's "Get URL:" wrapper: the caller names
// the request itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ReplyError is the *Error of an apiserver's reply other than 2xx: for a
// request that streams past the Client (an upload), read with a bound.
func ReplyError(method, path string, code int, reply []byte) *Error {
	return &Error{Method: method, Path: path, Code: code, Message: statusMessage(code, reply)}
}

// statusMessage is the message of a Kubernetes Status reply, else the
// reply's first line, else the status text.
func statusMessage(code int, reply []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(reply, &st) == nil && st.Message != "" {
		return st.Message
	}
	if l := brief.FirstLine(reply, 200); l != "" {
		return l
	}
	return http.StatusText(code)
}
