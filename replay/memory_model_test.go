package replay

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
)

// modelRecord is what a store that never forgets would hold of a key.
type modelRecord struct{ made, expires time.Time }

// memoryModel runs ops on a Memory store and checks each answer against a
// store that never forgets: the Memory store may differ only where it says
// it forgot (ForgottenAt at or after the record's making, a live eviction
// counted), and holds at most its capacity. ops is read two bytes at a
// time: what to do, then its argument.
func memoryModel(t *testing.T, capacity int, keys int, ops []byte) {
	t.Helper()
	const ttl = time.Minute
	c := testclock.New(time.Unix(1_700_000_000, 0))
	m := NewMemory(MemoryOptions{Capacity: capacity, TTL: ttl, Now: c.Now})
	model := map[int]modelRecord{}
	ctx := context.Background()
	live := func(k int) (modelRecord, bool) {
		r, ok := model[k]
		return r, ok && r.expires.After(c.Now())
	}
	// forgot reports whether the store admits it may have lost r.
	forgot := func(r modelRecord) bool {
		return m.LiveEvictions() > 0 && !m.ForgottenAt().Before(r.made)
	}
	for i := 0; i+1 < len(ops); i += 2 {
		arg := int(ops[i+1])
		k := arg % keys
		switch ops[i] % 4 {
		case 0:
			fresh, err := m.Record(ctx, scaleKey(k))
			if err != nil {
				t.Fatalf("op %d: Record: %v", i/2, err)
			}
			r, held := live(k)
			switch {
			case !held && !fresh:
				t.Fatalf("op %d: key %d, never recorded or expired, was not fresh", i/2, k)
			case held && fresh && !forgot(r):
				t.Fatalf("op %d: key %d, recorded at %v, was fresh again and the store does not say it forgot", i/2, k, r.made)
			}
			if fresh {
				model[k] = modelRecord{made: c.Now(), expires: c.Now().Add(ttl)}
			}
		case 1:
			seen, _ := m.Seen(ctx, scaleKey(k))
			r, held := live(k)
			if seen && !held || !seen && held && !forgot(r) {
				t.Fatalf("op %d: Seen(key %d) = %v, want %v", i/2, k, seen, held)
			}
		case 2:
			exp := c.Now().Add(time.Duration(arg%150) * time.Second)
			m.Restore(scaleKey(k), exp)
			if most := c.Now().Add(ttl); exp.After(most) {
				exp = most // a record lives at most the TTL from now
			}
			if r, held := live(k); exp.After(c.Now()) && (!held || r.expires.Before(exp)) {
				model[k] = modelRecord{made: c.Now(), expires: exp}
			}
		case 3:
			c.Add(time.Duration(arg%40) * time.Second / 4)
		}
		if n := m.Len(); n > capacity {
			t.Fatalf("op %d: Len %d over the capacity %d", i/2, n, capacity)
		}
	}
}

// The ring and its index against a store that never forgets: small
// capacities, where records are forced out and keys collide in the index,
// and one the ring must grow to, where nothing may be forgotten.
func TestMemoryModel(t *testing.T) {
	for _, tt := range []struct {
		capacity, keys int
		noLoss         bool
	}{{3, 8, false}, {64, 200, false}, {1000, 3000, false}, {5000, 4000, true}} {
		r := rand.New(rand.NewPCG(uint64(tt.capacity), 1))
		ops := make([]byte, 400_000)
		for i := range ops {
			ops[i] = byte(r.Uint32())
		}
		if tt.noLoss {
			// Clock steps rare enough that every key lives: the ring grows
			// past minRing and must keep them all.
			for i := 0; i < len(ops); i += 2 {
				if ops[i]%4 == 3 {
					ops[i] = 0
				}
			}
		}
		memoryModel(t, tt.capacity, tt.keys, ops)
	}
}

func FuzzMemory(f *testing.F) {
	f.Add(uint8(3), []byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 1, 1, 1, 3, 200, 0, 1})
	f.Fuzz(func(t *testing.T, capacity uint8, ops []byte) {
		memoryModel(t, 1+int(capacity%40), 50, ops)
	})
}
