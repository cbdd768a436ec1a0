// Package seen answers "does this user exist" for the hosts whose users
// exist once they have logged in (isuser = "seen"): after each accepted
// login it marks the user in a replay.Marks (memory, the file beside the
// journal, or Redis), and isuser asks the marks whether the user logged in
// within the host's seen_for.
//
// A user is the host and the name exactly as the XMPP server passed them,
// hashed into a replay.Key with a prefix of its own, so that the marks
// hold no name in clear and never meet a replay record's key. A mark is
// written again at most once per Refresh by this process (DefaultRefresh,
// or a sixteenth of seen_for if that is shorter): a login costs a lookup
// in a bounded table, not a write, most of the time; the moment kept may
// thus be up to Refresh older than the last login, which only makes a
// user unknown that much sooner, never known longer.
//
// It never logs and knows nothing of the wire, tokens or configuration
// files; its caller decides which hosts are "seen" and for how long.
package seen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/tokenauthd/tokenauthd/replay"
)

// DefaultRefresh is how often at most a user's mark is written again.
const DefaultRefresh = 24 * time.Hour

// DefaultRemembered is how many users' last writes a Book remembers (the
// table that spares most logins a write). Past it, the least recent is
// forgotten: its next login writes its mark again.
const DefaultRemembered = 100_000

// Options configures a Book.
type Options struct {
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Refresh is how often at most a mark is written again
	// (DefaultRefresh if 0).
	Refresh time.Duration
	// Remembered bounds the table of last writes (DefaultRemembered if 0).
	Remembered int
	// LostSince, if set, is when the marks' store may last have lost its
	// data (a Redis store's ForgottenAt, shared with its replay records):
	// read on each login and isuser, without I/O. When it moves, the Book forgets
	// its last writes (so that the next login of each user writes its
	// mark again), counts a loss, and calls OnLost.
	LostSince func() time.Time
	// OnLost, if set, is called once for each loss LostSince reveals, at
	// the moment it reports. It must not block nor call the Book.
	OnLost func(at time.Time)
}

// Book marks the users who log in and says who did. It is safe for
// concurrent use.
type Book struct {
	marks     replay.Marks
	now       func() time.Time
	refresh   time.Duration
	lostSince func() time.Time
	onLost    func(time.Time)

	mu      sync.Mutex
	written *simplelru.LRU[replay.Key, int64] // when this process last wrote each mark, UnixNano
	lostAt  int64                             // the LostSince last acted on, UnixNano

	writes, writeErrors, readErrors, losses atomic.Uint64
}

// New returns a Book on marks, which it owns from then on (Close closes
// it).
func New(marks replay.Marks, o Options) *Book {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Remembered <= 0 {
		o.Remembered = DefaultRemembered
	}
	b := &Book{marks: marks, now: o.Now, refresh: o.Refresh, lostSince: o.LostSince, onLost: o.OnLost}
	b.written, _ = simplelru.NewLRU[replay.Key, int64](o.Remembered, nil) // cannot fail: size > 0
	if b.lostSince != nil {
		b.lostAt = b.lostSince().UnixNano()
	}
	return b
}

// Key returns the key of user@host's mark.
func Key(host, user string) replay.Key {
	var buf [160]byte // most names fit: no allocation
	b := append(buf[:0], "tokenauthd seen\x00"...)
	b = append(b, host...)
	b = append(b, 0)
	b = append(b, user...)
	return replay.HashKey(b)
}

// Login marks user@host as seen now, for seenFor, unless this process
// wrote its mark less than the refresh interval ago. Call it after an
// accepted login only. wrote says whether it wrote the mark; an error
// (the store cannot answer) leaves the login accepted: the user may then
// be unknown until a later login writes its mark.
func (b *Book) Login(ctx context.Context, host, user string, seenFor time.Duration) (wrote bool, err error) {
	if seenFor <= 0 {
		return false, nil
	}
	b.checkLost()
	k := Key(host, user)
	now := b.now()
	refresh := min(b.refresh, seenFor/16)
	b.mu.Lock()
	last, ok := b.written.Get(k)
	b.mu.Unlock()
	if ok && now.UnixNano()-last < int64(refresh) && now.UnixNano() >= last {
		return false, nil
	}
	if err := b.marks.Mark(ctx, k, now, now.Add(seenFor)); err != nil {
		b.writeErrors.Add(1)
		return false, err
	}
	b.writes.Add(1)
	b.mu.Lock()
	b.written.Add(k, now.UnixNano())
	b.mu.Unlock()
	return true, nil
}

// Known reports whether user@host logged in within seenFor. It is false
// for seenFor ≤ 0, and on an error (the store cannot answer: no, as for a
// user never seen).
func (b *Book) Known(ctx context.Context, host, user string, seenFor time.Duration) (bool, error) {
	if seenFor <= 0 {
		return false, nil
	}
	b.checkLost()
	at, err := b.marks.Marked(ctx, Key(host, user))
	if err != nil {
		b.readErrors.Add(1)
		return false, err
	}
	return !at.IsZero() && b.now().Sub(at) < seenFor, nil
}

// checkLost acts on a loss LostSince reveals.
func (b *Book) checkLost() {
	if b.lostSince == nil {
		return
	}
	at := b.lostSince()
	b.mu.Lock()
	if at.UnixNano() <= b.lostAt {
		b.mu.Unlock()
		return
	}
	b.lostAt = at.UnixNano()
	b.written.Purge()
	b.mu.Unlock()
	b.losses.Add(1)
	if b.onLost != nil {
		b.onLost(at)
	}
}

// Lost counts a loss of the marks found elsewhere (a damaged or lost file
// at start).
func (b *Book) Lost() { b.losses.Add(1) }

// Stats are a Book's counts since it was made.
type Stats struct {
	Writes      uint64 // marks written
	WriteErrors uint64 // marks the store could not write
	ReadErrors  uint64 // isuser answers the store could not give (answered no)
	Losses      uint64 // times the marks may have been lost
	Evictions   uint64 // marks forced out by the store's capacity before their end
	Marks       int    // marks held (-1: the store cannot tell cheaply)
}

// evictor is a store of marks bounded by a capacity.
type evictor interface{ Evictions() uint64 }

// Stats returns the Book's counts.
func (b *Book) Stats() Stats {
	st := Stats{Writes: b.writes.Load(), WriteErrors: b.writeErrors.Load(), ReadErrors: b.readErrors.Load(),
		Losses: b.losses.Load(), Marks: b.marks.Len()}
	if e, ok := b.marks.(evictor); ok {
		st.Evictions = e.Evictions()
	}
	return st
}

// Close closes the marks' store.
func (b *Book) Close() error { return b.marks.Close() }
