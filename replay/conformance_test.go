package replay_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/replay/storetest"
)

// TestMemoryConformance runs the Store contract on a Memory store. Its
// loss is the one its owner declares (a start with no journal).
func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, storetest.Suite{
		New: func(t *testing.T, o storetest.Options) replay.Store {
			return replay.NewMemory(replay.MemoryOptions{Capacity: storetest.Capacity, TTL: o.TTL, Now: o.Now})
		},
		Forget: func(t *testing.T, s replay.Store, now time.Time) { s.(*replay.Memory).MarkForgotten(now) },
	})
}

// TestJournalConformance runs the Store contract on a Journal, opened
// after a clean stop an hour before (a first start is a loss).
func TestJournalConformance(t *testing.T) {
	storetest.Run(t, storetest.Suite{
		New: func(t *testing.T, o storetest.Options) replay.Store {
			path := filepath.Join(t.TempDir(), "replay.journal")
			then := o.Now().Add(-time.Hour)
			openJournal(t, path, o.TTL, func() time.Time { return then }).Close()
			return openJournal(t, path, o.TTL, o.Now)
		},
	})
}

// openJournal opens the journal at path on a new Memory store.
func openJournal(t *testing.T, path string, ttl time.Duration, now func() time.Time) *replay.Journal {
	t.Helper()
	mem := replay.NewMemory(replay.MemoryOptions{Capacity: storetest.Capacity, TTL: ttl, Now: now})
	j, _, err := replay.OpenJournal(path, mem, replay.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestMemoryMarksConformance runs the Marks contract on a MemoryMarks.
func TestMemoryMarksConformance(t *testing.T) {
	storetest.RunMarks(t, storetest.MarksSuite{
		New: func(t *testing.T, now func() time.Time) replay.Marks {
			return replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: storetest.Capacity, Now: now})
		},
	})
}

// TestMarksFileConformance runs the Marks contract on a MarksFile,
// reopened once so that what the suite sees went through the file.
func TestMarksFileConformance(t *testing.T) {
	storetest.RunMarks(t, storetest.MarksSuite{
		New: func(t *testing.T, now func() time.Time) replay.Marks {
			path := filepath.Join(t.TempDir(), "replay.journal.seen")
			openMarks(t, path, now).Close()
			return openMarks(t, path, now)
		},
	})
}

// openMarks opens the marks file at path on a new MemoryMarks.
func openMarks(t *testing.T, path string, now func() time.Time) *replay.MarksFile {
	t.Helper()
	m, _, err := replay.OpenMarksFile(path, replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: storetest.Capacity, Now: now}), replay.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
