package seen

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// BenchmarkLogin is what an accepted login on a host with isuser = "seen"
// adds: "again", a user who logged in today (a lookup, no write);
// "first", a new user each time (a mark written), in memory and in the
// file beside the journal (one write(2) each).
func BenchmarkLogin(b *testing.B) {
	const seenFor = 90 * 24 * time.Hour
	ctx := context.Background()
	for _, store := range []string{"memory", "file"} {
		for _, again := range []bool{true, false} {
			name := store + "/" + map[bool]string{true: "again", false: "first"}[again]
			b.Run(name, func(b *testing.B) {
				var marks replay.Marks = replay.NewMemoryMarks(replay.MemoryMarksOptions{})
				if store == "file" {
					f, _, err := replay.OpenMarksFile(filepath.Join(b.TempDir(), "j.seen"), replay.NewMemoryMarks(replay.MemoryMarksOptions{}), replay.JournalOptions{})
					if err != nil {
						b.Fatal(err)
					}
					marks = f
				}
				book := New(marks, Options{})
				defer book.Close()
				users := make([]string, b.N)
				for i := range users {
					users[i] = fmt.Sprint("user", i)
					if again {
						users[i] = "alice"
					}
				}
				b.ResetTimer()
				for i := range b.N {
					if _, err := book.Login(ctx, "example.org", users[i], seenFor); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkKnown is isuser's cost on a host with isuser = "seen", in
// memory.
func BenchmarkKnown(b *testing.B) {
	ctx := context.Background()
	book := New(replay.NewMemoryMarks(replay.MemoryMarksOptions{}), Options{})
	book.Login(ctx, "example.org", "alice", time.Hour)
	b.ResetTimer()
	for range b.N {
		if ok, _ := book.Known(ctx, "example.org", "alice", time.Hour); !ok {
			b.Fatal("alice unknown")
		}
	}
}
