package replay

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
	"github.com/tokenauthd/tokenauthd/internal/testclock"
)

// FuzzJournalLoad opens a journal whose file holds any bytes (a crash,
// a disk error, someone else's file): OpenJournal must either refuse it
// (not a journal) or load it, never panic; once loaded, the file is cut to
// whole records, a loss it reports is dated at the open, and what is
// recorded next survives a reopen, which finds no new loss and the same
// forgotten moment. Seeds in testdata/fuzz/FuzzJournalLoad, among them
// journals with forget and generation records, damage in the middle and
// damage at the end.
func FuzzJournalLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "j")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		clk := testclock.New(time.Unix(1_700_000_000, 0))
		mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL, Now: clk.Now})
		j, st, err := OpenJournal(path, mem, JournalOptions{})
		isJournal := len(data) >= journalHdrSize && string(data[:journalHdrSize]) == journalMagic
		torn := len(data) < journalHdrSize && bytes.HasPrefix([]byte(journalMagic), data)
		if err != nil {
			if isJournal || torn {
				t.Fatalf("OpenJournal refused a journal: %v", err)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, data) {
				t.Fatal("a refused file was changed")
			}
			return
		}
		if !isJournal && !torn {
			t.Fatal("OpenJournal took a file that is not a journal")
		}
		if size := j.Size(); (size-int64(journalHdrSize))%journalRecSize != 0 {
			t.Fatalf("size %d is not a header and whole records", size)
		}
		if st.Loaded < 0 || st.Loaded > mem.Len() {
			t.Fatalf("stats %+v with %d records in memory", *st, mem.Len())
		}
		if st.Lost != "" && !st.Forgotten.Equal(clk.Now()) {
			t.Fatalf("a loss (%s) dated %v, not at the open", st.Lost, st.Forgotten)
		}
		if !j.ForgottenAt().Equal(st.Forgotten) {
			t.Fatalf("store forgotten at %v, stats say %v", j.ForgottenAt(), st.Forgotten)
		}
		k := HashKey(append([]byte("fuzz "), data...))
		fresh, err := j.Record(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		mem2 := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL, Now: clk.Now})
		j2, st2, err := OpenJournal(path, mem2, JournalOptions{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer j2.Close()
		if st2.Lost != "" || st2.Torn != 0 || !st2.Forgotten.Equal(st.Forgotten) {
			t.Fatalf("reopen of a journal closed cleanly: stats %+v; first open %+v", *st2, *st)
		}
		if seen, _ := j2.Seen(t.Context(), k); fresh && !seen {
			t.Fatal("a record appended after loading was lost at reopen")
		}
	})
}

// Every fuzz target of the package has seeds that `go test` runs.
func TestJournalFuzzCorpus(t *testing.T) { fuzzcorpus.Check(t) }
