package replay_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// A key is fresh once, then not until its record expires; a closed store
// refuses.
func ExampleMemory() {
	now := time.Unix(1_700_000_000, 0)
	m := replay.NewMemory(replay.MemoryOptions{TTL: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	key := replay.HashKey([]byte("what the caller records, encoded without ambiguity"))

	fresh, _ := m.Record(ctx, key)
	fmt.Println("first use:", fresh)
	fresh, _ = m.Record(ctx, key)
	fmt.Println("again:", fresh)
	now = now.Add(time.Minute)
	fresh, _ = m.Record(ctx, key)
	fmt.Println("a TTL later:", fresh)

	m.Close()
	fresh, err := m.Record(ctx, key)
	fmt.Println("closed:", fresh, err)
	// Output:
	// first use: true
	// again: false
	// a TTL later: true
	// closed: false replay: store unavailable: closed
}
