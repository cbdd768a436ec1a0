package logs

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Refusal log lines are rate limited per reason, so that a flood of bad
// requests cannot fill the disk: each reason has a token bucket of
// logBurst lines refilled at logRate a second; lines beyond it are counted,
// and the count is logged as one "suppressed" line per reason at most every
// logSummaryEvery (and when the process ends).
const (
	logRate         = 10
	logBurst        = 20
	logSummaryEvery = 10 * time.Second
)

// RateLog writes log lines through a per-reason token bucket. The reasons
// are a small fixed set (the verifier's, bad_request, ...), so its map stays
// small. Safe for concurrent use.
type RateLog struct {
	log *slog.Logger
	now func() time.Time

	mu          sync.Mutex
	buckets     map[string]*bucket
	lastSummary time.Time
}

type bucket struct {
	tokens     float64
	last       time.Time
	suppressed uint64
}

func NewRateLog(log *slog.Logger, now func() time.Time) *RateLog {
	if now == nil {
		now = time.Now
	}
	return &RateLog{log: log, now: now, buckets: map[string]*bucket{}, lastSummary: now()}
}

// Log logs msg with the reason and attrs at level, unless the reason's
// bucket is empty, in which case it only counts it.
func (r *RateLog) Log(level slog.Level, reason, msg string, attrs ...any) {
	if !r.log.Enabled(context.Background(), level) {
		return
	}
	now := r.now()
	r.mu.Lock()
	b := r.buckets[reason]
	if b == nil {
		b = &bucket{tokens: logBurst, last: now}
		r.buckets[reason] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(logBurst, b.tokens+el*logRate)
	}
	b.last = now
	allow := b.tokens >= 1
	if allow {
		b.tokens--
	} else {
		b.suppressed++
	}
	var summary map[string]uint64
	if now.Sub(r.lastSummary) >= logSummaryEvery {
		summary = r.takeLocked(now)
	}
	r.mu.Unlock()

	r.report(summary)
	if allow {
		r.log.Log(context.Background(), level, msg, append([]any{"reason", reason}, attrs...)...)
	}
}

// Flush logs the counts of lines suppressed since the last summary.
func (r *RateLog) Flush() {
	r.mu.Lock()
	s := r.takeLocked(r.now())
	r.mu.Unlock()
	r.report(s)
}

func (r *RateLog) takeLocked(now time.Time) map[string]uint64 {
	r.lastSummary = now
	var s map[string]uint64
	for reason, b := range r.buckets {
		if b.suppressed > 0 {
			if s == nil {
				s = map[string]uint64{}
			}
			s[reason] = b.suppressed
			b.suppressed = 0
		}
	}
	return s
}

func (r *RateLog) report(s map[string]uint64) {
	for reason, n := range s {
		r.log.Warn("log lines suppressed by the rate limit", "reason", reason, "suppressed", n)
	}
}
