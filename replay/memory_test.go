package replay

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
)

func key(i int) Key { return HashKey([]byte(fmt.Sprint("key ", i))) }

// The capacity guard: forcing out a record that has not expired is counted
// and reported; forcing out an expired one is not.
func TestMemoryLiveEviction(t *testing.T) {
	c := testclock.New(time.Unix(1_700_000_000, 0))
	calls := 0
	m := NewMemory(MemoryOptions{Capacity: 3, TTL: time.Minute, Now: c.Now, OnLiveEviction: func() { calls++ }})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		m.Record(ctx, key(i))
	}
	if m.Len() != 3 || m.LiveEvictions() != 0 || calls != 0 {
		t.Fatalf("full store: Len %d, LiveEvictions %d, calls %d", m.Len(), m.LiveEvictions(), calls)
	}
	// A fourth record forces out key(0), still live.
	if fresh, _ := m.Record(ctx, key(3)); !fresh {
		t.Fatal("key(3) not fresh")
	}
	if m.LiveEvictions() != 1 || calls != 1 {
		t.Fatalf("after one live eviction: LiveEvictions %d, calls %d; want 1, 1", m.LiveEvictions(), calls)
	}
	// This is the danger the guard reports: key(0) is now taken as fresh.
	if fresh, _ := m.Record(ctx, key(0)); !fresh {
		t.Fatal("key(0) was not evicted")
	}
	if m.LiveEvictions() != 2 || calls != 2 {
		t.Fatalf("LiveEvictions %d, calls %d; want 2, 2", m.LiveEvictions(), calls)
	}
	// Once every record has expired, making room is no security event.
	c.Add(time.Minute)
	for i := 10; i < 13; i++ {
		m.Record(ctx, key(i))
	}
	if m.LiveEvictions() != 2 || calls != 2 {
		t.Fatalf("evicting expired records counted: LiveEvictions %d, calls %d; want 2, 2", m.LiveEvictions(), calls)
	}
}

func TestMemoryRestore(t *testing.T) {
	c := testclock.New(time.Unix(1_700_000_000, 0))
	m := NewMemory(MemoryOptions{Capacity: 100, TTL: time.Minute, Now: c.Now})
	ctx := context.Background()
	now := c.Now()
	m.Restore(key(1), now.Add(30*time.Second)) // live: restored
	m.Restore(key(2), now)                     // expires now: dropped
	m.Restore(key(3), now.Add(-time.Second))   // expired: dropped
	m.Restore(key(4), now.Add(10*time.Second))
	m.Restore(key(4), now.Add(5*time.Second)) // an earlier expiry does not shorten it
	for _, tt := range []struct {
		k    Key
		seen bool
	}{{key(1), true}, {key(2), false}, {key(3), false}, {key(4), true}} {
		if seen, _ := m.Seen(ctx, tt.k); seen != tt.seen {
			t.Errorf("Seen(%s) = %v, want %v", tt.k, seen, tt.seen)
		}
	}
	if fresh, _ := m.Record(ctx, key(1)); fresh {
		t.Error("a restored key was fresh")
	}
	c.Add(8 * time.Second)
	if seen, _ := m.Seen(ctx, key(4)); !seen {
		t.Error("key(4) expired at its earlier restore time")
	}
	c.Add(2 * time.Second)
	if fresh, _ := m.Record(ctx, key(4)); !fresh {
		t.Error("key(4) did not expire at its restored time")
	}
}

func TestHashKey(t *testing.T) {
	a, b := HashKey([]byte("a\x00b")), HashKey([]byte("a\x00b"))
	if a != b || a == HashKey([]byte("a\x00c")) {
		t.Error("HashKey is not a function of its input")
	}
	if len(a.String()) != 2*KeySize {
		t.Errorf("String() = %q", a.String())
	}
}

// A store with no capacity and no clock given works; TTL reports the one
// given.
func TestMemoryDefaults(t *testing.T) {
	m := NewMemory(MemoryOptions{TTL: time.Minute})
	if fresh, _ := m.Record(context.Background(), key(1)); !fresh {
		t.Error("not fresh")
	}
	if m.TTL() != time.Minute {
		t.Errorf("TTL = %v, want 1m", m.TTL())
	}
}

// The live-eviction callback runs after the store is unlocked, so that it
// may call back into the store (its count, Len): through Record and
// through Restore.
func TestMemoryLiveEvictionCallbackUnlocked(t *testing.T) {
	for _, via := range []string{"Record", "Restore"} {
		t.Run(via, func(t *testing.T) {
			c := testclock.New(time.Unix(1_700_000_000, 0))
			var m *Memory
			calls, locked := 0, 0
			m = NewMemory(MemoryOptions{Capacity: 2, TTL: time.Minute, Now: c.Now, OnLiveEviction: func() {
				calls++
				if !m.mu.TryLock() {
					locked++ // m.Len() would deadlock here
					return
				}
				m.mu.Unlock()
				if n := m.Len(); n != 2 {
					t.Errorf("Len in the callback = %d, want 2", n)
				}
			}})
			for i := range 3 {
				if via == "Record" {
					m.Record(t.Context(), key(i))
				} else {
					m.Restore(key(i), c.Now().Add(time.Minute))
				}
			}
			if calls != 1 || locked != 0 {
				t.Errorf("%d callbacks, %d of them with the store locked; want 1, 0", calls, locked)
			}
		})
	}
}

// A record forced out is forgotten from the moment it was made, even when
// the clock has since stepped back: a token accepted before the step must
// not be taken again once the clock is back in its window. A restored
// record was made at the latest when it expires.
func TestMemoryForgetsAcrossClockSteps(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1_700_000_000, 0)
	c := testclock.New(t0)
	m := NewMemory(MemoryOptions{Capacity: 3, TTL: 2 * time.Minute, Now: c.Now})
	m.Record(ctx, key(0))
	c.Set(t0.Add(-90 * time.Second))
	for i := 1; i <= 3; i++ {
		m.Record(ctx, key(i))
	}
	if m.LiveEvictions() != 1 || m.ForgottenAt().Before(t0) {
		t.Errorf("key(0), made at %v, forced out after the clock stepped back: forgotten at %v (live evictions %d)", t0, m.ForgottenAt(), m.LiveEvictions())
	}

	c.Set(t0)
	r := NewMemory(MemoryOptions{Capacity: 3, TTL: 2 * time.Minute, Now: c.Now})
	exp := t0.Add(5 * time.Minute) // written by a process whose clock was ahead
	r.Restore(key(0), exp)
	for i := 1; i <= 3; i++ {
		r.Record(ctx, key(i))
	}
	if r.LiveEvictions() != 1 || r.ForgottenAt().Before(exp.Add(-2*time.Minute)) {
		t.Errorf("a restored record expiring at %v forced out: forgotten at %v (live evictions %d)", exp, r.ForgottenAt(), r.LiveEvictions())
	}
}

// A restored record lives no longer than the store's TTL from its
// restoring: one written under a longer TTL must not hold back the
// records made after it, whose expiring then could not make room.
func TestMemoryRestoreHoldsNoneBack(t *testing.T) {
	ctx := context.Background()
	c := testclock.New(time.Unix(1_700_000_000, 0))
	m := NewMemory(MemoryOptions{Capacity: 3, TTL: time.Minute, Now: c.Now})
	m.Restore(key(0), c.Now().Add(time.Hour))
	m.Record(ctx, key(1))
	m.Record(ctx, key(2))
	c.Add(2 * time.Minute) // every record has expired at the store's TTL
	m.Record(ctx, key(3))
	m.Record(ctx, key(4))
	if m.LiveEvictions() != 0 || !m.ForgottenAt().IsZero() {
		t.Errorf("expired records held back behind a restored one: live evictions %d, forgotten at %v", m.LiveEvictions(), m.ForgottenAt())
	}
}
