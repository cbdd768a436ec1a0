package replay

import (
	"context"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
)

// Expired records are dropped from the old end as new ones are made, so
// Len counts live records, and dropping them is no live eviction; a record
// made before the clock stepped back, expiring late, holds back only the
// records behind it.
func TestMemoryDropsExpired(t *testing.T) {
	c := testclock.New(time.Unix(1_700_000_000, 0))
	m := NewMemory(MemoryOptions{Capacity: 100, TTL: time.Minute, Now: c.Now})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		m.Record(ctx, scaleKey(i))
	}
	c.Add(30 * time.Second)
	m.Record(ctx, scaleKey(5))
	if m.Len() != 6 {
		t.Fatalf("before expiry: Len %d, want 6", m.Len())
	}
	c.Add(30 * time.Second) // the first five expire
	m.Record(ctx, scaleKey(6))
	if m.Len() != 2 || m.LiveEvictions() != 0 {
		t.Fatalf("after expiry: Len %d, LiveEvictions %d; want 2, 0", m.Len(), m.LiveEvictions())
	}
	if seen, _ := m.Seen(ctx, scaleKey(5)); !seen {
		t.Error("a live record was dropped with the expired ones")
	}

	// key 7 is recorded, then the clock steps back 50 s: key 8, recorded
	// after it, expires first.
	c.Add(time.Minute) // 5 and 6 expire too
	m.Record(ctx, scaleKey(7))
	c.Add(-50 * time.Second)
	m.Record(ctx, scaleKey(8))
	c.Add(80 * time.Second)
	m.Record(ctx, scaleKey(9))
	if m.Len() != 3 { // 7 (live) blocks 8 (expired); 5 and 6 are gone
		t.Fatalf("behind a late record: Len %d, want 3", m.Len())
	}
	if fresh, _ := m.Record(ctx, scaleKey(8)); !fresh {
		t.Error("an expired record held back was not fresh")
	}
	if fresh, _ := m.Record(ctx, scaleKey(7)); fresh {
		t.Error("the restored record was dropped")
	}
}
