package datasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-os/cairn/config"
	"github.com/cairn-os/cairn/config/brief"
)

// errNotFound is an answer: the server (or directory) has no such document.
var errNotFound = errors.New("no such document")

// Backoff between attempts to reach a config URL: it doubles from
// firstRetry up to maxRetry and stays there until the URL answers.
var (
	firstRetry = time.Second
	maxRetry   = 30 * time.Second
)

// fetcher reads documents from URLs, retrying until they answer.
type fetcher struct {
	root   string
	client *http.Client
	log    *slog.Logger
}

// get fetches one document. A required document is retried until it is
// served with 200 or ctx ends; an optional one returns errNotFound on 404
// or 410. prepare may add headers (the IMDS token).
func (f *fetcher) get(ctx context.Context, method, rawURL string, required bool, prepare func(*http.Request)) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not rawURL, nor url.Parse's error that quotes it: it may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("a config URL is not a URL: %w", err)
	}
	switch u.Scheme {
	case "file":
		data, err := config.ReadFile(filepath.Join(f.root, u.Path))
		if errors.Is(err, os.ErrNotExist) && !required {
			return nil, errNotFound
		}
		return data, err
	case "http", "https":
	default:
		return nil, fmt.Errorf("config URL %s: scheme %q is not supported; use http, https or file", brief.URL(u.String()), u.Scheme)
	}
	delay := firstRetry
	for {
		data, err := f.once(ctx, method, u, prepare)
		if err == nil {
			return data, nil
		}
		if errors.Is(err, errNotFound) && !required {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("fetching %s: gave up: %w", brief.URL(u.String()), ctx.Err())
		}
		f.log.Warn(fmt.Sprintf("config: fetching %s failed: %v; retrying in %s", brief.URL(u.String()), err, delay))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fetching %s: gave up: %w", brief.URL(u.String()), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRetry)
	}
}

func (f *fetcher) once(ctx context.Context, method string, u *url.URL, prepare func(*http.Request)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "cairn-init")
	if prepare != nil {
		prepare(req)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is already in the message
		}
		return nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("server answered %s: %w", resp.Status, errNotFound)
	default:
		return nil, fmt.Errorf("server answered %s", resp.Status)
	}
	data, err := config.ReadLimited(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	return data, nil
}
