package console

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Handler returns a slog.Handler that writes each record as one console
// line: the message, then the attributes as key=value. Debug records show
// only when the Logger is in debug mode; warnings and errors are marked.
//
// Stable console lines (docs/console.md) are written as the message alone,
// for example slog.Info("network: up eth0 10.0.2.15/24 via dhcp").
func (l *Logger) Handler() slog.Handler {
	return &handler{l: l}
}

type handler struct {
	l      *Logger
	attrs  string // pre-rendered " k=v" pairs from WithAttrs
	groups string // "a.b." prefix from WithGroup
}

func (h *handler) Enabled(_ context.Context, lvl slog.Level) bool {
	return lvl >= slog.LevelInfo || h.l.Debug()
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.groups, a)
		return true
	})
	h.l.Print(b.String())
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.groups, a)
	}
	return &handler{l: h.l, attrs: b.String(), groups: h.groups}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{l: h.l, attrs: h.attrs, groups: h.groups + name + "."}
}

func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix + a.Key)
	b.WriteByte('=')
	s := a.Value.String()
	if a.Value.Kind() == slog.KindAny {
		if err, ok := a.Value.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprint(a.Value.Any())
		}
	}
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}
