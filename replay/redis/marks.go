package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/replay"
)

// MarksOptions configures a Redis Marks.
type MarksOptions struct {
	// Prefix is put before every key (DefaultPrefix if ""); each mark is
	// prefix + "seen:" + the key in hexadecimal.
	Prefix string
	// Timeout bounds each call (DefaultTimeout if 0).
	Timeout time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Marks is a replay.Marks on Redis, shared by every process on the same
// server and prefix: one key per mark, apart from the replay records (its
// keys are of their own name, and carry their own expiry), holding the
// mark's moment in Unix milliseconds and expiring at its end (PXAT). One
// script per Mark keeps the later moment, so that nodes agree whatever
// order their marks arrive in. It is safe for concurrent use.
type Marks struct {
	c       goredis.UniversalClient
	prefix  string
	timeout time.Duration
	now     func() time.Time
	closed  atomic.Bool
}

var _ replay.Marks = (*Marks)(nil)

// NewMarks returns a Marks on c, which it owns from then on (Close closes
// it).
func NewMarks(c goredis.UniversalClient, o MarksOptions) *Marks {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Marks{c: c, prefix: o.Prefix, timeout: o.Timeout, now: o.Now}
}

// markScript sets KEYS[1] to ARGV[1] (a moment, ms) until ARGV[2] (ms)
// unless it holds a later moment, or the same one until as late.
var markScript = goredis.NewScript(`
local old = tonumber(redis.call('GET', KEYS[1]) or '')
local at = tonumber(ARGV[1])
if old and old > at then return 0 end
if old == at and redis.call('PEXPIRETIME', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
`)

// MarksKey returns the Redis key of k's mark under prefix.
func MarksKey(prefix string, k replay.Key) string {
	return prefix + "seen:" + hex.EncodeToString(k[:])
}

// Mark implements replay.Marks. Moments are kept to the millisecond.
func (m *Marks) Mark(ctx context.Context, key replay.Key, at, until time.Time) error {
	if m.closed.Load() {
		return replay.ErrClosed
	}
	if !until.After(m.now()) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	cmd := markScript.Run(ctx, m.c, []string{MarksKey(m.prefix, key)}, at.UnixMilli(), until.UnixMilli())
	if _, err := scriptReply(cmd); err != nil {
		return fmt.Errorf("%w: redis: %v", replay.ErrUnavailable, err)
	}
	return nil
}

// Marked implements replay.Marks.
func (m *Marks) Marked(ctx context.Context, key replay.Key) (time.Time, error) {
	if m.closed.Load() {
		return time.Time{}, replay.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	v, err := m.c.Get(ctx, MarksKey(m.prefix, key)).Result()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: redis: %v", replay.ErrUnavailable, describe(err, "a seen user's mark"))
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, fmt.Errorf("%w: redis: a seen user's mark holds no moment", replay.ErrUnavailable)
	}
	return time.UnixMilli(ms), nil
}

// Len implements replay.Marks: -1, Redis cannot tell cheaply.
func (m *Marks) Len() int { return -1 }

// Close implements replay.Marks: it closes the client.
func (m *Marks) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	return m.c.Close()
}
