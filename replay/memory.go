package replay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DefaultCapacity is the number of records a Memory store holds by default.
const DefaultCapacity = 1_000_000

// MemoryOptions configures a Memory store.
type MemoryOptions struct {
	// Capacity is the most records held at once (DefaultCapacity if 0).
	Capacity int
	// TTL is how long a record lives. Required.
	TTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OnLiveEviction, if set, is called when the capacity forces out a record
	// that had not yet expired: from then on a replay of that credential
	// would be taken as fresh. It is called once per such record, after the
	// store is unlocked, by the Record or Restore that forced it out: it
	// may call the store's methods.
	OnLiveEviction func()
}

// Memory is an in-process Store on a size-bounded LRU whose records expire.
// It is safe for concurrent use.
//
// Records are kept in the order they were made, which for a fixed TTL is
// the order they expire in: each Record first drops the expired records at
// the old end. (golang-lru's expirable LRU does that in the background, but
// its per-bucket maps cost a third more memory: 1 M records took 183 MiB of
// heap there, 130 MiB here.)
type Memory struct {
	mu            sync.Mutex
	lru           *simplelru.LRU[Key, int64] // value: expiry, UnixNano on m.now
	ttl           time.Duration
	now           func() time.Time
	onLive        func()
	liveEvictions atomic.Uint64
	pendingLive   int // live evictions not yet reported to onLive; under mu
	forgot        ForgetMark
	closed        atomic.Bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory(o MemoryOptions) *Memory {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Memory{ttl: o.TTL, now: o.Now, onLive: o.OnLiveEviction}
	m.lru, _ = simplelru.NewLRU[Key, int64](o.Capacity, m.evicted) // cannot fail: capacity > 0
	return m
}

// evicted runs under m.mu for every record the LRU drops. It only counts:
// the callback runs once the lock is released (unlock).
func (m *Memory) evicted(_ Key, expires int64) {
	if expires > m.now().UnixNano() {
		m.liveEvictions.Add(1)
		m.pendingLive++
	}
}

// unlock releases m.mu, then reports the live evictions made while it was
// held.
func (m *Memory) unlock() {
	n := m.pendingLive
	m.pendingLive = 0
	m.mu.Unlock()
	if m.onLive != nil {
		for range n {
			m.onLive()
		}
	}
}

// Record implements Store.
func (m *Memory) Record(_ context.Context, key Key) (bool, error) {
	if m.closed.Load() {
		return false, ErrClosed
	}
	now := m.now()
	m.mu.Lock()
	defer m.unlock()
	m.dropExpired(now.UnixNano())
	if exp, ok := m.lru.Peek(key); ok && exp > now.UnixNano() {
		return false, nil
	}
	m.lru.Add(key, now.Add(m.ttl).UnixNano())
	return true, nil
}

// dropExpired removes the expired records at the old end of the LRU. A
// restored record that expires late can hold back older expired ones; the
// capacity still bounds them all.
func (m *Memory) dropExpired(now int64) {
	for {
		_, exp, ok := m.lru.GetOldest()
		if !ok || exp > now {
			return
		}
		m.lru.RemoveOldest()
	}
}

// Restore records key until expires, unless that time has passed. It is how
// records kept elsewhere (a journal) are loaded back.
func (m *Memory) Restore(key Key, expires time.Time) {
	if !expires.After(m.now()) {
		return
	}
	m.mu.Lock()
	defer m.unlock()
	if exp, ok := m.lru.Peek(key); ok && exp >= expires.UnixNano() {
		return
	}
	m.lru.Add(key, expires.UnixNano())
}

// Seen implements Store.
func (m *Memory) Seen(_ context.Context, key Key) (bool, error) {
	if m.closed.Load() {
		return false, ErrClosed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.lru.Peek(key)
	return ok && exp > m.now().UnixNano(), nil
}

// Len implements Store. It may count expired records not yet dropped.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// LiveEvictions returns how many records were forced out by the capacity
// before they expired.
func (m *Memory) LiveEvictions() uint64 { return m.liveEvictions.Load() }

// TTL returns the time to live of a record.
func (m *Memory) TTL() time.Duration { return m.ttl }

// MarkForgotten records that the store may have lost, at the moment at,
// records it had acknowledged: a store that starts empty although an earlier
// process may have recorded keys (no journal), or a journal found
// incomplete. ForgottenAt reports the latest such moment.
func (m *Memory) MarkForgotten(at time.Time) { m.forgot.Raise(at) }

// ForgottenAt implements Store: the latest moment given to MarkForgotten,
// zero if none. A memory store forgets nothing while it runs (the capacity
// guard reports what it forces out); what it forgets is what it held
// before it started, which only its owner knows.
func (m *Memory) ForgottenAt() time.Time { return m.forgot.Load() }

// Close implements Store. It drops nothing (records expire on their own),
// but Record and Seen fail from then on.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}
