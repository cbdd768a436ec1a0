package replay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Marks keeps, for each key, the latest moment it was marked, until a time
// the caller chose. It is a store of its own, apart from a Store's records:
// its records never evict a Store's nor are evicted by them, and they have
// their own retention. Like a Store it never knows what its keys stand for.
// Its methods are safe for concurrent use. The conformance suite in
// replay/storetest (RunMarks) checks every promise below.
type Marks interface {
	// Mark records that key was marked at at, to be kept until until. A
	// mark never moves a key's moment back: of two marks the later moment
	// is kept (whichever process made it), with the later of their untils
	// when the moments are equal. A mark whose until has passed records
	// nothing.
	Mark(ctx context.Context, key Key, at, until time.Time) error
	// Marked returns the latest moment key was marked, or the zero time if
	// no mark of it is kept (never marked, expired, or lost). On error the
	// moment is zero and the caller must not take the key for marked.
	Marked(ctx context.Context, key Key) (time.Time, error)
	// Len returns the number of marks held (expired ones not yet dropped
	// may be counted), or -1 if it cannot tell cheaply.
	Len() int
	// Close releases the resources. Once it has returned, Mark and Marked
	// fail with an error wrapping ErrClosed. Closing twice does nothing.
	Close() error
}

// MemoryMarksOptions configures a MemoryMarks.
type MemoryMarksOptions struct {
	// Capacity is the most marks held at once (DefaultCapacity if 0). Past
	// it the least recently marked key is forgotten.
	Capacity int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// MemoryMarks is an in-process Marks on a size-bounded LRU, the least
// recently marked key first out. It is safe for concurrent use.
type MemoryMarks struct {
	mu        sync.Mutex
	lru       *simplelru.LRU[Key, mark]
	now       func() time.Time
	evictions atomic.Uint64
	closed    atomic.Bool
}

// mark is one key's record: its moment and its end, Unix nanoseconds.
type mark struct{ at, until int64 }

var _ Marks = (*MemoryMarks)(nil)

// NewMemoryMarks returns an empty MemoryMarks.
func NewMemoryMarks(o MemoryMarksOptions) *MemoryMarks {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &MemoryMarks{now: o.Now}
	m.lru, _ = simplelru.NewLRU[Key, mark](o.Capacity, m.evicted) // cannot fail: capacity > 0
	return m
}

// evicted counts the marks the capacity forced out before their end.
// Called under m.mu.
func (m *MemoryMarks) evicted(_ Key, r mark) {
	if r.until > m.now().UnixNano() {
		m.evictions.Add(1)
	}
}

// Mark implements Marks.
func (m *MemoryMarks) Mark(_ context.Context, key Key, at, until time.Time) error {
	if m.closed.Load() {
		return ErrClosed
	}
	m.put(key, mark{at.UnixNano(), until.UnixNano()})
	return nil
}

// put records r for key unless what is kept is as late; it reports whether
// it changed anything.
func (m *MemoryMarks) put(key Key, r mark) bool {
	now := m.now().UnixNano()
	if r.until <= now {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropExpired(now)
	if old, ok := m.lru.Peek(key); ok && old.until > now {
		switch {
		case old.at > r.at, old.at == r.at && old.until >= r.until:
			return false
		}
	}
	m.lru.Add(key, r)
	return true
}

// dropExpired removes the expired marks at the old end of the LRU; a
// later one that outlives them holds the rest back, which the capacity
// bounds. Called under m.mu.
func (m *MemoryMarks) dropExpired(now int64) {
	for {
		_, r, ok := m.lru.GetOldest()
		if !ok || r.until > now {
			return
		}
		m.lru.RemoveOldest()
	}
}

// Marked implements Marks.
func (m *MemoryMarks) Marked(_ context.Context, key Key) (time.Time, error) {
	if m.closed.Load() {
		return time.Time{}, ErrClosed
	}
	m.mu.Lock()
	r, ok := m.lru.Peek(key)
	m.mu.Unlock()
	if !ok || r.until <= m.now().UnixNano() {
		return time.Time{}, nil
	}
	return time.Unix(0, r.at), nil
}

// Len implements Marks.
func (m *MemoryMarks) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// Evictions returns how many marks the capacity forced out before their
// end.
func (m *MemoryMarks) Evictions() uint64 { return m.evictions.Load() }

// live returns the unexpired marks, oldest first.
func (m *MemoryMarks) live() ([]Key, []mark) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	keys, vals := m.lru.Keys(), m.lru.Values()
	n := 0
	for i := range keys {
		if vals[i].until > now {
			keys[n], vals[n] = keys[i], vals[i]
			n++
		}
	}
	return keys[:n], vals[:n]
}

// Close implements Marks. It drops nothing, but Mark and Marked fail from
// then on.
func (m *MemoryMarks) Close() error {
	m.closed.Store(true)
	return nil
}
