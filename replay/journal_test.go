package replay

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const testTTL = 2 * time.Minute

func openTestJournal(t *testing.T, path string, clk *clock) (*Journal, *JournalStats) {
	t.Helper()
	mem := NewMemory(MemoryOptions{Capacity: 10_000, TTL: testTTL, Now: clk.now})
	j, st, err := OpenJournal(path, mem, JournalOptions{})
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j, st
}

func mustRecord(t *testing.T, s Store, k Key, wantFresh bool) {
	t.Helper()
	fresh, err := s.Record(context.Background(), k)
	if err != nil {
		t.Fatalf("Record(%v): %v", k, err)
	}
	if fresh != wantFresh {
		t.Fatalf("Record(%v) fresh = %v, want %v", k, fresh, wantFresh)
	}
}

// TestJournalSurvivesReopen: what was accepted before a restart is refused
// after it, without Close having run (as after SIGKILL: every record was
// written before Record returned).
func TestJournalSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j1, _ := openTestJournal(t, path, clk)
	for i := 0; i < 10; i++ {
		mustRecord(t, j1, key(i), true)
	}
	mustRecord(t, j1, key(3), false)
	// No Close: release only the lock, as the death of the process would.
	j1.lock.Close()

	j2, st := openTestJournal(t, path, clk)
	if st.Loaded != 10 || st.Torn != 0 || st.Expired != 0 {
		t.Errorf("stats = %+v, want 10 loaded", *st)
	}
	for i := 0; i < 10; i++ {
		mustRecord(t, j2, key(i), false)
	}
	mustRecord(t, j2, key(10), true)
}

// TestJournalTornTail: a record cut short by a crash is dropped, the file is
// cut back, and later records stay readable.
func TestJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j1, _ := openTestJournal(t, path, clk)
	mustRecord(t, j1, key(1), true)
	mustRecord(t, j1, key(2), true)
	j1.Close()

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) // a torn record
	f.Close()

	j2, st := openTestJournal(t, path, clk)
	if st.Loaded != 2 || st.Torn != 10 {
		t.Errorf("stats = %+v, want 2 loaded, 10 torn bytes", *st)
	}
	if fi, _ := os.Stat(path); fi.Size() != int64(journalHdrSize+2*journalRecSize) {
		t.Errorf("size after load = %d, want %d", fi.Size(), journalHdrSize+2*journalRecSize)
	}
	mustRecord(t, j2, key(1), false)
	mustRecord(t, j2, key(3), true)
	j2.Close()

	_, st = openTestJournal(t, path, clk)
	if st.Loaded != 3 || st.Torn != 0 {
		t.Errorf("after appending past the cut: stats = %+v, want 3 loaded", *st)
	}
}

// TestJournalCorruptRecord: a record whose checksum fails is skipped; the
// others load.
func TestJournalCorruptRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j1, _ := openTestJournal(t, path, clk)
	for i := 0; i < 3; i++ {
		mustRecord(t, j1, key(i), true)
	}
	j1.Close()
	data, _ := os.ReadFile(path)
	data[journalHdrSize+journalRecSize+5] ^= 0xff // the second record's key
	os.WriteFile(path, data, 0o600)

	j2, st := openTestJournal(t, path, clk)
	if st.Loaded != 2 || st.Torn != 1 {
		t.Errorf("stats = %+v, want 2 loaded, 1 torn", *st)
	}
	mustRecord(t, j2, key(0), false)
	mustRecord(t, j2, key(2), false)
}

// TestJournalExpired: records past their expiry are not loaded.
func TestJournalExpired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j1, _ := openTestJournal(t, path, clk)
	mustRecord(t, j1, key(1), true)
	clk.add(testTTL / 2)
	mustRecord(t, j1, key(2), true)
	j1.Close()

	clk.add(testTTL/2 + time.Second) // key 1 expired, key 2 not
	j2, st := openTestJournal(t, path, clk)
	if st.Loaded != 1 || st.Expired != 1 {
		t.Errorf("stats = %+v, want 1 loaded, 1 expired", *st)
	}
	mustRecord(t, j2, key(1), true)
	mustRecord(t, j2, key(2), false)
}

// TestJournalRotation: the journal never holds more than about two TTLs of
// records, and a rotation loses no live record.
func TestJournalRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j, _ := openTestJournal(t, path, clk)
	const perStep = 50
	step := testTTL / 4
	n := 0
	for round := 0; round < 40; round++ { // 10 TTLs
		for i := 0; i < perStep; i++ {
			mustRecord(t, j, key(n), true)
			n++
		}
		clk.add(step)
		var total int64
		for _, p := range []string{path, path + ".old"} {
			if fi, err := os.Stat(p); err == nil {
				total += fi.Size()
			}
		}
		// At most 2 TTLs of records in the active file (it rotates when
		// the old generation expired) plus the old one's TTL, and headers.
		max := int64(2*journalHdrSize + 12*perStep*journalRecSize)
		if total > max {
			t.Fatalf("round %d: journal holds %d bytes, more than %d", round, total, max)
		}
	}
	if _, err := os.Stat(path + ".old"); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	// Everything recorded within the last TTL is still refused after a
	// restart: it is in one of the two generations.
	j.Close()
	j2, _ := openTestJournal(t, path, clk)
	recent := (int(testTTL/step) - 1) * perStep // the oldest round expires just now
	for i := n - recent; i < n; i++ {
		mustRecord(t, j2, key(i), false)
	}
}

// TestJournalExclusive: one process at a time holds a journal.
func TestJournalExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j, _ := openTestJournal(t, path, clk)
	mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL, Now: clk.now})
	if _, _, err := OpenJournal(path, mem, JournalOptions{}); err == nil {
		t.Fatal("a second OpenJournal on a held journal succeeded")
	}
	j.Close()
	j2, _, err := OpenJournal(path, mem, JournalOptions{})
	if err != nil {
		t.Fatalf("OpenJournal after Close: %v", err)
	}
	j2.Close()
}

// TestJournalBadHeader: a file that is not a journal is not overwritten.
func TestJournalBadHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	os.WriteFile(path, []byte("precious data, not a journal"), 0o600)
	mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL})
	if _, _, err := OpenJournal(path, mem, JournalOptions{}); err == nil {
		t.Fatal("OpenJournal accepted a file that is not a journal")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious data, not a journal" {
		t.Errorf("file changed to %q", b)
	}
}

// TestJournalSyncEvery: with SyncEvery the records are there as well.
func TestJournalSyncEvery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL})
	j, _, err := OpenJournal(path, mem, JournalOptions{SyncEvery: true})
	if err != nil {
		t.Fatal(err)
	}
	mustRecord(t, j, key(1), true)
	if got := j.Size(); got != int64(journalHdrSize+journalRecSize) {
		t.Errorf("size = %d, want %d", got, journalHdrSize+journalRecSize)
	}
	j.Close()
}

// BenchmarkJournalRecord is the cost of a Record that appends to the
// journal: write(2) only, or write(2) and fsync.
func BenchmarkJournalRecord(b *testing.B) {
	for _, every := range []bool{false, true} {
		b.Run(map[bool]string{false: "sync=interval", true: "sync=always"}[every], func(b *testing.B) {
			mem := NewMemory(MemoryOptions{Capacity: 1_000_000, TTL: testTTL})
			j, _, err := OpenJournal(filepath.Join(b.TempDir(), "j"), mem, JournalOptions{SyncEvery: every})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			keys := make([]Key, b.N)
			for i := range keys {
				keys[i] = HashKey([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := j.Record(ctx, keys[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestJournalRotationRetried: a rotation that fails (here: no space for the
// new file) refuses the record that hit it, and the next append tries
// again instead of refusing every record until a restart. Nothing recorded
// before or after is lost.
func TestJournalRotationRetried(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	j, _ := openTestJournal(t, path, clk)
	clk.add(testTTL / 2)
	for i := 0; i < 5; i++ {
		mustRecord(t, j, key(i), true)
	}
	clk.add(testTTL/2 + time.Second) // the next append rotates; 0 to 4 are live
	fails := 2
	j.openFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if fails > 0 {
			fails--
			return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
		}
		return os.OpenFile(name, flag, perm)
	}
	for i := 5; i < 7; i++ {
		if fresh, err := j.Record(context.Background(), key(i)); fresh || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Record during a failed rotation = %v, %v; want false, ErrUnavailable", fresh, err)
		}
	}
	for i := 7; i < 10; i++ {
		mustRecord(t, j, key(i), true)
	}
	for i := 0; i < 10; i++ {
		mustRecord(t, j, key(i), false)
	}
	if _, err := os.Stat(path + ".old"); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	// After a restart, both generations hold what was accepted.
	j.Close()
	j2, st := openTestJournal(t, path, clk)
	if st.Loaded != 8 || st.Torn != 0 {
		t.Errorf("stats after restart = %+v, want 8 loaded", *st)
	}
	for _, i := range []int{0, 4, 7, 9} {
		mustRecord(t, j2, key(i), false)
	}
}
