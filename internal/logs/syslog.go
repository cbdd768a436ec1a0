package logs

import (
	"bytes"
	"context"
	"log/slog"
	"log/syslog"
	"sync"
)

// SysLog is where a command that answers on stdout logs when stderr is
// the same file as stdout (Prosody's mod_auth_external_insecure gives the
// helper one pseudo-terminal as stdin, stdout and stderr; a shell's 2>&1
// one pipe): anything written to stderr would be read as a reply. Lines go
// to the system log (/dev/log: journald or a syslog daemon), or nowhere
// if there is none.
type SysLog struct {
	mu    sync.Mutex
	w     *syslog.Writer // nil: no system log, lines are dropped
	level slog.Level     // of the record being written, under mu
}

// OpenSysLog connects to the system log socket at path ("" for the
// usual places). Without one, it returns a SysLog that drops every line.
func OpenSysLog(path string) *SysLog {
	var (
		w   *syslog.Writer
		err error
	)
	if path == "" {
		w, err = syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "tokenauthd")
	} else {
		w, err = syslog.Dial("unixgram", path, syslog.LOG_DAEMON|syslog.LOG_INFO, "tokenauthd")
	}
	if err != nil {
		return &SysLog{}
	}
	return &SysLog{w: w}
}

// Write sends p, which is not a log record (a flag's usage message), to
// the system log as an error.
func (s *SysLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.send(slog.LevelError, p)
	return len(p), nil
}

// send writes one line at the priority of level. Errors are dropped:
// there is nowhere left to report them.
func (s *SysLog) send(level slog.Level, p []byte) {
	if s.w == nil {
		return
	}
	m := string(bytes.TrimRight(p, "\n"))
	switch {
	case level >= slog.LevelError:
		s.w.Err(m)
	case level >= slog.LevelWarn:
		s.w.Warning(m)
	case level >= slog.LevelInfo:
		s.w.Info(m)
	default:
		s.w.Debug(m)
	}
}

// handler returns a handler that formats records as text or JSON lines and
// sends each to the system log at its level.
func (s *SysLog) handler(json bool, opts *slog.HandlerOptions) slog.Handler {
	w := heldSysLog{s}
	if json {
		return sysLogHandler{slog.NewJSONHandler(w, opts), s}
	}
	return sysLogHandler{slog.NewTextHandler(w, opts), s}
}

// heldSysLog writes to the system log at the level of the record being
// handled: its caller, sysLogHandler.Handle, holds the lock.
type heldSysLog struct{ s *SysLog }

func (h heldSysLog) Write(p []byte) (int, error) {
	h.s.send(h.s.level, p)
	return len(p), nil
}

// sysLogHandler passes each record's level to the writer under its
// handler: slog's text and JSON handlers write a record in one Write.
type sysLogHandler struct {
	slog.Handler
	s *SysLog
}

// Handle implements slog.Handler.
func (h sysLogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.level = r.Level
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h sysLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sysLogHandler{h.Handler.WithAttrs(as), h.s}
}

// WithGroup implements slog.Handler.
func (h sysLogHandler) WithGroup(name string) slog.Handler {
	return sysLogHandler{h.Handler.WithGroup(name), h.s}
}
