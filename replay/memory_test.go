package replay

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func key(i int) Key { return HashKey([]byte(fmt.Sprint("key ", i))) }

func TestMemoryRecord(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(MemoryOptions{Capacity: 100, TTL: 2 * time.Minute, Now: c.now})
	ctx := context.Background()
	steps := []struct {
		advance   time.Duration
		key       Key
		wantFresh bool
	}{
		{0, key(1), true},                                // first use
		{0, key(1), false},                               // replay at once
		{0, key(2), true},                                // another key is independent
		{119 * time.Second, key(1), false},               // still inside the TTL
		{time.Second, key(1), true},                      // TTL over: expired, recorded anew
		{0, key(1), false},                               // and that new record holds
		{2*time.Minute - time.Nanosecond, key(1), false}, // a nanosecond before it expires
		{time.Nanosecond, key(1), true},                  // exactly at expiry: gone
	}
	for i, s := range steps {
		c.add(s.advance)
		fresh, err := m.Record(ctx, s.key)
		if err != nil || fresh != s.wantFresh {
			t.Errorf("step %d: Record = %v, %v; want %v", i, fresh, err, s.wantFresh)
		}
		if seen, err := m.Seen(ctx, s.key); err != nil || !seen {
			t.Errorf("step %d: Seen after Record = %v, %v", i, seen, err)
		}
	}
	if m.LiveEvictions() != 0 {
		t.Errorf("LiveEvictions = %d, want 0", m.LiveEvictions())
	}
	if m.TTL() != 2*time.Minute {
		t.Errorf("TTL = %v", m.TTL())
	}
	if err := m.Close(); err != nil {
		t.Error(err)
	}
}

func TestMemorySeen(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(MemoryOptions{Capacity: 100, TTL: time.Minute, Now: c.now})
	ctx := context.Background()
	if seen, _ := m.Seen(ctx, key(1)); seen {
		t.Error("Seen on an empty store")
	}
	// Seen does not record.
	if fresh, _ := m.Record(ctx, key(1)); !fresh {
		t.Error("Record after Seen: not fresh")
	}
	c.add(time.Minute)
	if seen, _ := m.Seen(ctx, key(1)); seen {
		t.Error("Seen after expiry")
	}
}

// The capacity guard: forcing out a record that has not expired is counted
// and reported; forcing out an expired one is not.
func TestMemoryLiveEviction(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	calls := 0
	m := NewMemory(MemoryOptions{Capacity: 3, TTL: time.Minute, Now: c.now, OnLiveEviction: func() { calls++ }})
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
	c.add(time.Minute)
	for i := 10; i < 13; i++ {
		m.Record(ctx, key(i))
	}
	if m.LiveEvictions() != 2 || calls != 2 {
		t.Fatalf("evicting expired records counted: LiveEvictions %d, calls %d; want 2, 2", m.LiveEvictions(), calls)
	}
}

func TestMemoryRestore(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMemory(MemoryOptions{Capacity: 100, TTL: time.Minute, Now: c.now})
	ctx := context.Background()
	now := c.now()
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
	c.add(8 * time.Second)
	if seen, _ := m.Seen(ctx, key(4)); !seen {
		t.Error("key(4) expired at its earlier restore time")
	}
	c.add(2 * time.Second)
	if fresh, _ := m.Record(ctx, key(4)); !fresh {
		t.Error("key(4) did not expire at its restored time")
	}
}

// Record is one atomic step: of many concurrent records of one key,
// exactly one is fresh.
func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(MemoryOptions{Capacity: 1000, TTL: time.Minute})
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh := 0
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ok, _ := m.Record(ctx, key(round)); ok {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if fresh != 1 {
			t.Fatalf("round %d: %d fresh records of one key, want 1", round, fresh)
		}
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

func TestMemoryDefaults(t *testing.T) {
	m := NewMemory(MemoryOptions{TTL: time.Minute})
	if fresh, _ := m.Record(context.Background(), key(1)); !fresh {
		t.Error("not fresh")
	}
	var _ Store = m
}

// The live-eviction callback runs after the store is unlocked, so that it
// may call back into the store (its count, Len): through Record and
// through Restore.
func TestMemoryLiveEvictionCallbackUnlocked(t *testing.T) {
	for _, via := range []string{"Record", "Restore"} {
		t.Run(via, func(t *testing.T) {
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			var m *Memory
			calls, locked := 0, 0
			m = NewMemory(MemoryOptions{Capacity: 2, TTL: time.Minute, Now: c.now, OnLiveEviction: func() {
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
					m.Restore(key(i), c.now().Add(time.Minute))
				}
			}
			if calls != 1 || locked != 0 {
				t.Errorf("%d callbacks, %d of them with the store locked; want 1, 0", calls, locked)
			}
		})
	}
}
