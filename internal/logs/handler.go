// Package logs builds the loggers of tokenauthd's commands: slog handlers
// that cut every field a client could make long, the system log a helper
// falls back to when its stderr is its stdout, and the rate limit of
// refusal lines. It knows nothing of tokens or of the protocol's bytes.
package logs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"unicode/utf8"
)

// MaxField bounds every string a log line carries (message, keys,
// strings, errors, Stringers): user and host names come from clients, and
// a line per refusal of a 60 KB name would fill a disk however few lines
// the rate limit lets through.
const MaxField = 512

// CutMarker ends a field cut to MaxField; the original length follows.
const CutMarker = "...[cut, bytes in all: "

// CapField returns s, or its first MaxField bytes (whole UTF-8
// characters) followed by the cut marker and s's length.
func CapField(s string) string {
	if len(s) <= MaxField {
		return s
	}
	n := MaxField
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s%s%d]", s[:n], CutMarker, len(s))
}

// capHandler is the slog.Handler every command's logger goes through: it
// cuts every string of a record to MaxField bytes before the handler it
// wraps sees it, so that no call site can forget to.
type capHandler struct{ inner slog.Handler }

var _ slog.Handler = capHandler{}

// Enabled implements slog.Handler.
func (h capHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h capHandler) Handle(ctx context.Context, r slog.Record) error {
	c := slog.NewRecord(r.Time, r.Level, CapField(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		c.AddAttrs(capAttr(a))
		return true
	})
	return h.inner.Handle(ctx, c)
}

// WithAttrs implements slog.Handler.
func (h capHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := make([]slog.Attr, len(as))
	for i, a := range as {
		c[i] = capAttr(a)
	}
	return capHandler{h.inner.WithAttrs(c)}
}

// WithGroup implements slog.Handler.
func (h capHandler) WithGroup(name string) slog.Handler {
	return capHandler{h.inner.WithGroup(CapField(name))}
}

// capAttr cuts an attribute's key and value: strings, errors and Stringers
// (as their text), and the members of groups. Other kinds (numbers, times,
// durations) are bounded already.
func capAttr(a slog.Attr) slog.Attr {
	a.Key = CapField(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(CapField(v.String()))
	case slog.KindGroup:
		g := v.Group()
		c := make([]slog.Attr, len(g))
		for i, m := range g {
			c[i] = capAttr(m)
		}
		a.Value = slog.GroupValue(c...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(CapField(x.Error()))
		case fmt.Stringer:
			a.Value = slog.StringValue(CapField(x.String()))
		case []byte:
			a.Value = slog.StringValue(CapField(string(x)))
		default:
			a.Value = v
		}
	default:
		a.Value = v
	}
	return a
}

// NewHandler returns the handler of a command's logger: text or JSON
// lines on w at the given level, with every field capped. When w is the
// system log (stdout and stderr are one file), records go there with their
// level as the priority.
func NewHandler(w io.Writer, json bool, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if s, ok := w.(*SysLog); ok {
		return capHandler{s.handler(json, opts)}
	}
	if json {
		return capHandler{slog.NewJSONHandler(w, opts)}
	}
	return capHandler{slog.NewTextHandler(w, opts)}
}

// ParseSettings validates [log] format and level.
func ParseSettings(format, level string) (json bool, l slog.Level, err error) {
	switch format {
	case "text":
	case "json":
		json = true
	default:
		return false, 0, fmt.Errorf("log.format: %q is not text or json", format)
	}
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return false, 0, fmt.Errorf("log.level: %q is not debug, info, warn or error", level)
	}
	return json, l, nil
}
