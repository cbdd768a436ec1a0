package replay

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// scaleKey is the i-th distinct key of the scaling benchmarks.
func scaleKey(i int) Key {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return HashKey(b[:])
}

// BenchmarkRecordLiveNonces measures Record of fresh keys in a store that
// already holds 0 or 1 M live records (capacity 2 M, so nothing is evicted):
// the cost must not grow with the records held.
func BenchmarkRecordLiveNonces(b *testing.B) {
	for _, live := range []int{0, 1_000_000} {
		b.Run(fmt.Sprintf("live=%d", live), func(b *testing.B) {
			m := NewMemory(MemoryOptions{Capacity: 2_000_000, TTL: time.Hour})
			for i := 0; i < live; i++ {
				m.Record(context.Background(), scaleKey(i))
			}
			// Fresh keys, recorded once each, made before the clock starts.
			keys := make([]Key, min(b.N, 1_000_000))
			for i := range keys {
				keys[i] = scaleKey(live + i)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%len(keys) == 0 {
					// Past a million new keys: start the store again.
					b.StopTimer()
					m = NewMemory(MemoryOptions{Capacity: 2_000_000, TTL: time.Hour})
					for j := 0; j < live; j++ {
						m.Record(context.Background(), scaleKey(j))
					}
					b.StartTimer()
				}
				if fresh, _ := m.Record(context.Background(), keys[i%len(keys)]); !fresh {
					b.Fatal("a fresh key was taken for a replay")
				}
			}
		})
	}
}

// BenchmarkMemoryHeldBytes reports the heap a store holding 1 M live
// records takes, per record and in total (b.N is not used: one fill).
func BenchmarkMemoryHeldBytes(b *testing.B) {
	const n = 1_000_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := NewMemory(MemoryOptions{Capacity: n, TTL: time.Hour})
	for i := 0; i < n; i++ {
		m.Record(context.Background(), scaleKey(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if m.Len() != n || m.LiveEvictions() != 0 {
		b.Fatalf("store holds %d records, %d evicted live; want %d, 0", m.Len(), m.LiveEvictions(), n)
	}
	held := float64(after.HeapAlloc - before.HeapAlloc)
	b.ReportMetric(held/n, "B/record")
	b.ReportMetric(held/(1<<20), "MiB/1M")
	runtime.KeepAlive(m)
}
