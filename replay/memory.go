package replay

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCapacity is the number of records a Memory store holds by default.
const DefaultCapacity = 1_000_000

// MaxCapacity is the most records a Memory store can be given; a larger
// capacity is taken as MaxCapacity.
const MaxCapacity = 1 << 30

// MemoryOptions configures a Memory store.
type MemoryOptions struct {
	// Capacity is the most records held at once (DefaultCapacity if 0).
	Capacity int
	// TTL is how long a record lives. Required.
	TTL time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OnLiveEviction, if set, is called when the capacity forces out a record
	// that had not yet expired. It is called once per such record, after the
	// store is unlocked, by the Record or Restore that forced it out: it
	// may call the store's methods.
	OnLiveEviction func()
}

// Memory is an in-process Store of at most a fixed number of records, which
// expire. It is safe for concurrent use.
//
// Records are kept in a ring in the order they were made, which for a fixed
// TTL is the order they expire in: each Record first drops the expired
// records at the old end. A record the capacity forces out before it
// expired is a record forgotten: the store's ForgottenAt moves to the
// moment that record was made (every record made after it is still held;
// a restored record counts as made when it was to expire), so that what it
// vouched for is refused rather than accepted again.
//
// The ring and its index (open addressing, linear probing) are arrays of
// values with no pointers: a record allocates nothing, and the garbage
// collector has nothing in them to scan. Both grow by doubling up to the
// capacity (1 M records: 46 MiB), never shrinking; a doubling rebuilds
// the index under the lock, about 60 ms per million records held.
type Memory struct {
	mu            sync.Mutex
	ring          []record // in the order made; oldest at head
	head, n       int      // the oldest slot; slots in use, dead ones included
	live          int      // slots in use that hold a record
	index         []uint64 // 0: empty; else hash<<32 | ring position+1
	seed          maphash.Seed
	capacity      int
	ttl           time.Duration
	now           func() time.Time
	onLive        func()
	liveEvictions atomic.Uint64
	pendingLive   int // live evictions not yet reported to onLive; under mu
	forgot        ForgetMark
	closed        atomic.Bool
}

// record is one slot of the ring. A slot whose record was removed from the
// middle of the ring (recorded again, or restored to a later expiry) is
// dead (expires == 0) until the head passes it.
type record struct {
	key     Key
	expires int64 // UnixNano on m.now
	made    int64 // UnixNano: when it was recorded, or a moment not before (restored)
}

var _ Store = (*Memory)(nil)

// minRing is the ring's first size.
const minRing = 1024

// NewMemory returns an empty Memory store.
func NewMemory(o MemoryOptions) *Memory {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Memory{capacity: min(o.Capacity, MaxCapacity), ttl: o.TTL, now: o.Now, onLive: o.OnLiveEviction, seed: maphash.MakeSeed()}
	m.resize(min(m.capacity, minRing))
	return m
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
	now := m.now().UnixNano()
	h := m.hash(key)
	m.mu.Lock()
	defer m.unlock()
	m.dropExpired(now)
	if i, ok := m.find(key, h); ok {
		r := &m.ring[m.pos(i)]
		if r.expires > now {
			return false, nil
		}
		m.kill(i) // expired, held back behind a later one
	}
	m.add(record{key: key, expires: now + int64(m.ttl), made: now}, h, now)
	return true, nil
}

// Restore records key until expires, unless that time has passed. It is how
// records kept elsewhere (a journal) are loaded back. A record lives at most
// the store's TTL from now: one written under a longer TTL would hold back
// the expiring of every record made after it; what the TTL is now is the
// time the record must keep its token from being accepted.
func (m *Memory) Restore(key Key, expires time.Time) {
	now := m.now().UnixNano()
	made := expires.UnixNano() // when it was made is unknown: before it expires
	exp := min(made, now+int64(m.ttl))
	if exp <= now {
		return
	}
	h := m.hash(key)
	m.mu.Lock()
	defer m.unlock()
	if i, ok := m.find(key, h); ok {
		if m.ring[m.pos(i)].expires >= exp {
			return
		}
		m.kill(i)
	}
	m.add(record{key: key, expires: exp, made: made}, h, now)
}

// Seen implements Store.
func (m *Memory) Seen(_ context.Context, key Key) (bool, error) {
	if m.closed.Load() {
		return false, ErrClosed
	}
	now := m.now().UnixNano()
	h := m.hash(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.find(key, h)
	return ok && m.ring[m.pos(i)].expires > now, nil
}

// Len implements Store. It may count expired records not yet dropped.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
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
// or at which a record the capacity forced out before it expired was made
// (for a restored record: when it was to expire); zero if none.
func (m *Memory) ForgottenAt() time.Time { return m.forgot.Load() }

// Close implements Store. It drops nothing (records expire on their own),
// but Record and Seen fail from then on.
func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}

// hash is key's hash, seeded per store so that no one can choose keys that
// share a probe sequence.
func (m *Memory) hash(key Key) uint32 {
	return uint32(maphash.Bytes(m.seed, key[:]))
}

// dropExpired removes the expired records, and the dead slots, at the old
// end of the ring. A restored record that expires late can hold back older
// expired ones; the capacity still bounds them all.
func (m *Memory) dropExpired(now int64) {
	for m.n > 0 {
		r := &m.ring[m.head]
		if r.expires > now {
			return
		}
		m.dropHead()
	}
}

// dropHead removes the oldest slot.
func (m *Memory) dropHead() {
	r := &m.ring[m.head]
	if r.expires != 0 {
		i, _ := m.find(r.key, m.hash(r.key)) // held: a live slot is indexed
		m.unindex(i)
		m.live--
	}
	*r = record{}
	m.head++
	if m.head == len(m.ring) {
		m.head = 0
	}
	m.n--
}

// add puts r at the new end of the ring, growing it or, at the capacity,
// forcing out the oldest slot.
func (m *Memory) add(r record, h uint32, now int64) {
	if m.n == len(m.ring) {
		if len(m.ring) < m.capacity {
			m.resize(min(2*len(m.ring), m.capacity))
		} else {
			m.evictHead(now)
		}
	}
	p := m.head + m.n
	if p >= len(m.ring) {
		p -= len(m.ring)
	}
	m.ring[p] = r
	m.n++
	m.live++
	m.insert(h, p)
}

// evictHead makes room at the capacity: the oldest slot goes. If it held
// a live record, that record is forgotten from the moment it was made,
// even if that is later than now (a clock stepped back since): the
// token could be accepted again once the clock is back there.
func (m *Memory) evictHead(now int64) {
	r := m.ring[m.head]
	m.dropHead()
	if r.expires > now {
		m.liveEvictions.Add(1)
		m.pendingLive++
		m.forgot.Raise(time.Unix(0, r.made))
	}
}

// kill removes the record at index slot i from the middle of the ring: its
// slot stays, dead, until the head passes it.
func (m *Memory) kill(i int) {
	m.ring[m.pos(i)].expires = 0
	m.unindex(i)
	m.live--
}

// resize moves the ring's slots in use into a ring of size slots, oldest
// first, and rebuilds the index for it: a power of two at least twice the
// ring, so that probes stay short.
func (m *Memory) resize(size int) {
	ring := make([]record, size)
	n := 0
	for k := 0; k < m.n; k++ {
		r := m.ring[(m.head+k)%len(m.ring)]
		if r.expires != 0 {
			ring[n] = r
			n++
		}
	}
	m.ring, m.head, m.n, m.live = ring, 0, n, n
	m.index = make([]uint64, 1<<bits.Len(uint(2*size-1)))
	for p := range n {
		m.insert(m.hash(ring[p].key), p)
	}
}

// pos is the ring position the index slot i points at.
func (m *Memory) pos(i int) int { return int(uint32(m.index[i])) - 1 }

// find returns the index slot of key, whose hash is h.
func (m *Memory) find(key Key, h uint32) (int, bool) {
	mask := len(m.index) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := m.index[i]
		if e == 0 {
			return 0, false
		}
		if uint32(e>>32) == h && m.ring[uint32(e)-1].key == key {
			return i, true
		}
	}
}

// insert indexes ring position p for a key whose hash is h.
func (m *Memory) insert(h uint32, p int) {
	mask := len(m.index) - 1
	i := int(h) & mask
	for m.index[i] != 0 {
		i = (i + 1) & mask
	}
	m.index[i] = uint64(h)<<32 | uint64(p+1)
}

// unindex empties index slot i, moving back the entries after it that
// would otherwise no longer be found from their home slot (deletion in
// linear probing without tombstones).
func (m *Memory) unindex(i int) {
	mask := len(m.index) - 1
	for j := (i + 1) & mask; m.index[j] != 0; j = (j + 1) & mask {
		home := int(m.index[j]>>32) & mask
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j-home)&mask >= (j-i)&mask {
			m.index[i] = m.index[j]
			i = j
		}
	}
	m.index[i] = 0
}
