package replay_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/replay/storetest"
)

// TestMarksFileDamage: what a reopen finds in a damaged file, table-driven.
func TestMarksFileDamage(t *testing.T) {
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, path string) // nil: none
		created bool
		loaded  int
		torn    int
		corrupt int
	}{
		// A clean stop keeps every live mark.
		{name: "clean", loaded: 3},
		// A crash in the middle of a write: the torn record is cut off.
		{name: "torn", damage: func(t *testing.T, p string) { appendBytes(t, p, make([]byte, 10)) }, loaded: 3, torn: 10},
		// A flipped byte in the second record: that mark is lost, counted.
		{name: "corrupt", damage: func(t *testing.T, p string) { flipByte(t, p, 8+36+20) }, loaded: 2, corrupt: 1},
		// A lost file: a new one, every mark gone.
		{name: "lost", damage: func(t *testing.T, p string) { os.Remove(p) }, created: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := testclock.New(time.Unix(1_700_000_000, 0))
			path := filepath.Join(t.TempDir(), "j.seen")
			m := openMarks(t, path, clk.Now)
			for i := range 3 {
				if err := m.Mark(context.Background(), storetest.Key(i), clk.Now(), clk.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			m.Close()
			if c.damage != nil {
				c.damage(t, path)
			}
			m2, st, err := replay.OpenMarksFile(path, replay.NewMemoryMarks(replay.MemoryMarksOptions{Now: clk.Now}), replay.JournalOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m2.Close()
			if st.Created != c.created || st.Loaded != c.loaded || st.Torn != c.torn || st.Corrupt != c.corrupt {
				t.Errorf("stats = %+v, want created %v loaded %d torn %d corrupt %d", *st, c.created, c.loaded, c.torn, c.corrupt)
			}
			if m2.Size() != int64(8+36*c.loaded) && c.corrupt == 0 {
				t.Errorf("size = %d, want %d", m2.Size(), 8+36*c.loaded)
			}
		})
	}
}

// TestMarksFileBounded: marks of the same keys made again and again keep
// the file within about twice the live marks (compaction), and a reopen
// still finds every one of them.
func TestMarksFileBounded(t *testing.T) {
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	path := filepath.Join(t.TempDir(), "j.seen")
	m := openMarks(t, path, clk.Now)
	const keys, rounds = 100, 100
	for range rounds {
		clk.Add(time.Minute)
		for i := range keys {
			if err := m.Mark(context.Background(), storetest.Key(i), clk.Now(), clk.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if max := int64(8 + 36*(4096+keys+1)); m.Size() > max {
		t.Errorf("size = %d after %d marks of %d keys, want at most %d", m.Size(), keys*rounds, keys, max)
	}
	m.Close()
	m2 := openMarks(t, path, clk.Now)
	defer m2.Close()
	for i := range keys {
		if at, err := m2.Marked(context.Background(), storetest.Key(i)); err != nil || !at.Equal(clk.Now()) {
			t.Fatalf("Marked(%d) after reopen = %v, %v; want %v", i, at, err, clk.Now())
		}
	}
}

// TestMarksApartFromRecords: a full replay store does not push marks out,
// and marks past their capacity do not push replay records out.
func TestMarksApartFromRecords(t *testing.T) {
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	mem := replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute, Now: clk.Now})
	marks := replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: 10, Now: clk.Now})
	ctx := context.Background()
	marks.Mark(ctx, storetest.Key(0), clk.Now(), clk.Now().Add(time.Hour))
	for i := range 100 {
		mem.Record(ctx, storetest.Key(1000+i))
	}
	if at, _ := marks.Marked(ctx, storetest.Key(0)); at.IsZero() {
		t.Error("a full replay store pushed a mark out")
	}
	mem2 := replay.NewMemory(replay.MemoryOptions{Capacity: 10, TTL: time.Minute, Now: clk.Now})
	mem2.Record(ctx, storetest.Key(0))
	for i := range 100 {
		marks.Mark(ctx, storetest.Key(2000+i), clk.Now(), clk.Now().Add(time.Hour))
	}
	if seen, _ := mem2.Seen(ctx, storetest.Key(0)); !seen {
		t.Error("marks pushed a replay record out")
	}
	if marks.Evictions() != 91 {
		t.Errorf("Evictions() = %d, want 91", marks.Evictions())
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMarksFileRule: the marks file is held to the journal's rule: no
// symbolic link followed, no file others may write; CheckJournal says so
// too.
func TestMarksFileRule(t *testing.T) {
	for _, c := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"symlink", func(t *testing.T, p string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(p), "elsewhere"), p); err != nil {
				t.Fatal(err)
			}
		}},
		{"others may write", func(t *testing.T, p string) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o622); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			journal := filepath.Join(dir, "j")
			c.make(t, journal+".seen")
			mem := replay.NewMemoryMarks(replay.MemoryMarksOptions{})
			if m, _, err := replay.OpenMarksFile(journal+".seen", mem, replay.JournalOptions{}); err == nil {
				m.Close()
				t.Error("OpenMarksFile opened it")
			}
			if err := replay.CheckJournal(journal, os.Geteuid()); err == nil {
				t.Error("CheckJournal found nothing")
			}
		})
	}
}
