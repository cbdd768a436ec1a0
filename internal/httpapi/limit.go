package httpapi

import (
	"sync"
	"time"
)

// maxTracked bounds the JIDs counted in one minute: past it, a JID not yet
// counted is refused until the next minute (fail closed), so that a client
// naming ever new JIDs cannot grow the daemon.
const maxTracked = 100_000

// limiter counts the tokens minted for each JID in the current minute of
// the clock (a fixed window: up to twice the limit can be minted across a
// minute's end).
type limiter struct {
	mu     sync.Mutex
	minute int64
	counts map[string]int
}

func newLimiter() *limiter { return &limiter{counts: map[string]int{}} }

// allow counts one token for jid at now if fewer than perMinute were
// counted this minute; if not, retry is the time to the next minute.
func (l *limiter) allow(jid string, perMinute int, now time.Time) (ok bool, retry time.Duration) {
	minute := now.Unix() / 60
	l.mu.Lock()
	defer l.mu.Unlock()
	if minute != l.minute {
		l.minute, l.counts = minute, map[string]int{}
	}
	n, seen := l.counts[jid]
	if n >= perMinute || !seen && len(l.counts) >= maxTracked {
		return false, time.Unix((minute+1)*60, 0).Sub(now)
	}
	l.counts[jid] = n + 1
	return true, 0
}
