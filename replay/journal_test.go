package replay

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
)

const testTTL = 2 * time.Minute

func openTestJournal(t *testing.T, path string, clk *testclock.Clock) (*Journal, *JournalStats) {
	t.Helper()
	mem := NewMemory(MemoryOptions{Capacity: 10_000, TTL: testTTL, Now: clk.Now})
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
	path, clk, j1 := newTestJournal(t)
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
	path, clk, j1 := newTestJournal(t)
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
	// The header, the first start's forget record, two records.
	if fi, _ := os.Stat(path); fi.Size() != int64(journalHdrSize+3*journalRecSize) {
		t.Errorf("size after load = %d, want %d", fi.Size(), journalHdrSize+3*journalRecSize)
	}
	if st.Lost != "" {
		t.Errorf("a torn tail taken for a loss: %q", st.Lost)
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
	path, clk, j1 := newTestJournal(t)
	for i := 0; i < 3; i++ {
		mustRecord(t, j1, key(i), true)
	}
	j1.Close()
	data, _ := os.ReadFile(path)
	// The first record is the forget record of the first start, then
	// keys 0, 1, 2: damage key 1.
	data[journalHdrSize+2*journalRecSize+5] ^= 0xff
	os.WriteFile(path, data, 0o600)

	clk.Add(time.Second)
	j2, st := openTestJournal(t, path, clk)
	if st.Loaded != 2 || st.Corrupt != 1 || st.Torn != 0 {
		t.Errorf("stats = %+v, want 2 loaded, 1 corrupt", *st)
	}
	// Key 1 is forgotten, and the store says so.
	if st.Lost == "" || !st.Forgotten.Equal(clk.Now()) || !j2.ForgottenAt().Equal(clk.Now()) {
		t.Errorf("lost %q, forgotten at %v (store: %v); want a loss at %v", st.Lost, st.Forgotten, j2.ForgottenAt(), clk.Now())
	}
	mustRecord(t, j2, key(0), false)
	mustRecord(t, j2, key(2), false)
}

// TestJournalExpired: records past their expiry are not loaded.
func TestJournalExpired(t *testing.T) {
	path, clk, j1 := newTestJournal(t)
	mustRecord(t, j1, key(1), true)
	clk.Add(testTTL / 2)
	mustRecord(t, j1, key(2), true)
	j1.Close()

	clk.Add(testTTL/2 + time.Second) // key 1 expired, key 2 not
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
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	j, _ := openTestJournal(t, path, clk)
	const perStep = 50
	step := testTTL / 4
	n := 0
	for round := 0; round < 40; round++ { // 10 TTLs
		for i := 0; i < perStep; i++ {
			mustRecord(t, j, key(n), true)
			n++
		}
		clk.Add(step)
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
	path, clk, j := newTestJournal(t)
	mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL, Now: clk.Now})
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
	// The header, the first start's forget record, the record.
	if got := j.Size(); got != int64(journalHdrSize+2*journalRecSize) {
		t.Errorf("size = %d, want %d", got, journalHdrSize+2*journalRecSize)
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
	path, clk, j := newTestJournal(t)
	clk.Add(testTTL / 2)
	for i := 0; i < 5; i++ {
		mustRecord(t, j, key(i), true)
	}
	clk.Add(testTTL/2 + time.Second) // the next append rotates; 0 to 4 are live
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

// journalBytes returns the size of both generations of the journal at path.
func journalBytes(t *testing.T, path string) int64 {
	t.Helper()
	var total int64
	for _, p := range []string{path, path + ".old"} {
		if fi, err := os.Stat(p); err == nil {
			total += fi.Size()
		}
	}
	return total
}

// TestJournalRestartsBounded: a daemon restarted more often than a record
// lives still rotates its journal, which rotates on what it holds, not on
// how long the process has run. Restarts every 0.4 TTL, 50 records between
// them, for 20 TTLs: the files hold about two TTLs of records.
func TestJournalRestartsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	const perRun = 50
	n := 0
	for run := range 50 {
		mem := NewMemory(MemoryOptions{Capacity: 10_000, TTL: testTTL, Now: clk.Now})
		j, _, err := OpenJournal(path, mem, JournalOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for range perRun {
			mustRecord(t, j, key(n), true)
			n++
		}
		j.Close()
		clk.Add(testTTL * 4 / 10)
		// Two TTLs are 5 runs; one more for a generation that has just
		// expired, and room for the journal's own records.
		if total, max := journalBytes(t, path), int64(2*journalHdrSize+(6*perRun+12)*journalRecSize); total > max {
			t.Fatalf("run %d: journal holds %d bytes, more than %d", run, total, max)
		}
	}
	// Nothing live was dropped by a rotation.
	mem := NewMemory(MemoryOptions{Capacity: 10_000, TTL: testTTL, Now: clk.Now})
	j, st, err := OpenJournal(path, mem, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if st.Lost != "" {
		t.Errorf("restarts taken for a loss: %q", st.Lost)
	}
	for i := n - 2*perRun; i < n; i++ { // the last two runs, 0.8 TTL
		mustRecord(t, j, key(i), false)
	}
}

// writeJournal writes a journal file of n records expiring at exp.
func writeJournal(t *testing.T, path string, n int, exp time.Time) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	w.WriteString(journalMagic)
	for i := range n {
		rec := journalRecord(key(i), exp.UnixNano())
		w.Write(rec[:])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestJournalLoadsStreaming: loading a journal reads it record by record:
// what it allocates does not grow with the file. 300,000 expired records
// (8 MB) load with less than 1 MB allocated; the whole file read at once
// would be 8 MB.
func TestJournalLoadsStreaming(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	const n = 300_000
	writeJournal(t, path, n, clk.Now().Add(-time.Second))
	mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL, Now: clk.Now})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	j, st, err := OpenJournal(path, mem, JournalOptions{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if st.Expired != n {
		t.Errorf("stats = %+v, want %d expired", *st, n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("loading %d bytes allocated %d bytes", n*journalRecSize, alloc)
	}
}

// TestJournalLoadsLiveIntoCapacity: a journal of more live records than
// the store holds loads with the store's capacity in memory (the capacity
// guard counts what it forces out, and the store forgets up to their
// expiry: when those records were made is not known), not the file's size.
func TestJournalLoadsLiveIntoCapacity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	const n, capacity = 100_000, 1000
	writeJournal(t, path, n, clk.Now().Add(time.Minute))
	mem := NewMemory(MemoryOptions{Capacity: capacity, TTL: testTTL, Now: clk.Now})
	j, st, err := OpenJournal(path, mem, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if st.Loaded != n || mem.Len() != capacity || mem.LiveEvictions() != n-capacity {
		t.Errorf("loaded %d, holds %d, live evictions %d; want %d, %d, %d",
			st.Loaded, mem.Len(), mem.LiveEvictions(), n, capacity, n-capacity)
	}
	// When a restored record was made is unknown: before it expires.
	if exp := clk.Now().Add(time.Minute); !st.Forgotten.Equal(exp) || !j.ForgottenAt().Equal(exp) {
		t.Errorf("forgotten at %v (stats %v), want the records' expiry %v", j.ForgottenAt(), st.Forgotten, exp)
	}
}

// usedJournal makes a journal that has rotated once: PATH.old holds keys 0
// to 4 (1 to 4 still live), PATH key 5. Its first start, which had no file
// and so recorded a loss, is more than a TTL ago when it returns.
func usedJournal(t *testing.T, path string, clk *testclock.Clock) {
	t.Helper()
	t0 := clk.Now()
	mem := NewMemory(MemoryOptions{Capacity: 1000, TTL: testTTL, Now: clk.Now})
	j, _, err := OpenJournal(path, mem, JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustRecord(t, j, key(0), true)
	clk.Add(testTTL * 6 / 10)
	for i := 1; i < 5; i++ {
		mustRecord(t, j, key(i), true)
	}
	clk.Set(t0.Add(testTTL + time.Second))
	mustRecord(t, j, key(5), true) // rotates: key 0 has expired
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".old"); err != nil {
		t.Fatalf("no rotation: %v", err)
	}
	clk.Add(time.Second)
}

// flipByte returns a function that damages the byte at off of a file.
func flipByte(off int64) func(string) error {
	return func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[off] ^= 0xff
		return os.WriteFile(p, b, 0o600)
	}
}

// truncateTo returns a function that cuts a file to size bytes.
func truncateTo(size int64) func(string) error {
	return func(p string) error { return os.Truncate(p, size) }
}

// appendBytes returns a function that appends b to a file.
func appendBytes(b []byte) func(string) error {
	return func(p string) error {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = f.Write(b)
		return err
	}
}

// TestJournalLoss: a journal that may have lost records says so: the store
// is marked forgotten at the moment it is opened. Damage that only a crash
// while writing explains (a torn tail) is no loss.
func TestJournalLoss(t *testing.T) {
	rec := int64(journalRecSize)
	hdr := int64(journalHdrSize)
	for _, tc := range []struct {
		name   string
		file   string // "" for PATH, ".old" for PATH.old
		damage func(string) error
		lost   bool
		torn   int
	}{
		{name: "intact", damage: func(string) error { return nil }},
		{name: "active file deleted", damage: os.Remove, lost: true},
		{name: "active file emptied", damage: truncateTo(0), lost: true},
		{name: "active header torn", damage: truncateTo(3), lost: true},
		{name: "active file cut to its header", damage: truncateTo(hdr), lost: true},
		{name: "active file cut inside its first record", damage: truncateTo(hdr + rec - 1), lost: true, torn: int(rec - 1)},
		{name: "active record damaged", damage: flipByte(hdr + 3), lost: true}, // the generation record
		{name: "active tail torn", damage: appendBytes(make([]byte, rec+5)), torn: int(rec + 5)},
		{name: "active tail cut short", damage: truncateTo(hdr + 2*rec - 7), torn: int(rec - 7)},
		{name: "old generation deleted", file: ".old", damage: os.Remove, lost: true},
		{name: "old record damaged", file: ".old", damage: flipByte(hdr + 2*rec + 1), lost: true},
		{name: "old tail damaged", file: ".old", damage: flipByte(hdr + 5*rec + 1), lost: true},
		{name: "old tail cut short", file: ".old", damage: truncateTo(hdr + 6*rec - 1), lost: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "replay.journal")
			clk := testclock.New(time.Unix(1_700_000_000, 0))
			usedJournal(t, path, clk)
			if err := tc.damage(path + tc.file); err != nil {
				t.Fatal(err)
			}
			j, st := openTestJournal(t, path, clk)
			if got := st.Lost != ""; got != tc.lost || st.Torn != tc.torn {
				t.Fatalf("stats %+v; want lost %v, torn %d", *st, tc.lost, tc.torn)
			}
			want := time.Time{}
			if tc.lost {
				want = clk.Now()
			}
			if !st.Forgotten.Equal(want) || !j.ForgottenAt().Equal(want) {
				t.Errorf("forgotten at %v (store: %v), want %v", st.Forgotten, j.ForgottenAt(), want)
			}
			j.Close()
			// A restart soon after still knows, from the journal's forget
			// record: it finds no new loss, and keeps the moment.
			clk.Add(time.Second)
			j2, st2 := openTestJournal(t, path, clk)
			if st2.Lost != "" || st2.Torn != 0 || !j2.ForgottenAt().Equal(want) {
				t.Errorf("restart: stats %+v, forgotten at %v; want no loss, forgotten at %v", *st2, j2.ForgottenAt(), want)
			}
			if !tc.lost { // (key 5's write is the one a torn tail cut)
				for i := 1; i < 5; i++ {
					mustRecord(t, j2, key(i), false)
				}
			}
		})
	}
}

// TestJournalForgetRecordExpires: the loss a start records matters for a
// TTL: a later start is not marked forgotten by it.
func TestJournalForgetRecordExpires(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	j, st := openTestJournal(t, path, clk)
	if st.Lost == "" || !j.ForgottenAt().Equal(clk.Now()) {
		t.Fatalf("first start (no file): stats %+v", *st)
	}
	j.Close()
	clk.Add(testTTL - time.Second)
	j, _ = openTestJournal(t, path, clk)
	if j.ForgottenAt().IsZero() {
		t.Error("a start within the TTL of a loss does not know it")
	}
	j.Close()
	clk.Add(time.Second)
	j, _ = openTestJournal(t, path, clk)
	if !j.ForgottenAt().IsZero() {
		t.Errorf("forgotten at %v a TTL after the loss", j.ForgottenAt())
	}
}

// A forget record dated after now (written before the clock was set back)
// counts as a loss now, not as refusals until that future moment.
func TestJournalForgetRecordInTheFuture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	future := journalRecord(forgetKey, clk.Now().Add(time.Hour).UnixNano())
	if err := os.WriteFile(path, append([]byte(journalMagic), future[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	j, st := openTestJournal(t, path, clk)
	if !j.ForgottenAt().Equal(clk.Now()) || st.Lost != "" {
		t.Errorf("forgotten at %v (lost %q), want %v", j.ForgottenAt(), st.Lost, clk.Now())
	}
}

// newTestJournal opens a fresh journal in a temporary directory on a clock
// the test moves, at 1,700,000,000.
func newTestJournal(t *testing.T) (string, *testclock.Clock, *Journal) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "replay.journal")
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	j, _ := openTestJournal(t, path, clk)
	return path, clk, j
}

// TestJournalRefusesFilesNotItsOwn: OpenJournal refuses a journal whose
// directory others than its owner (root or the journal's user) may write,
// and a journal, previous generation or lock that is not a regular file
// of that owner, writable by it alone; it follows no symbolic link, and
// writes nothing where one points.
func TestJournalRefusesFilesNotItsOwn(t *testing.T) {
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name     string
		asRoot   bool // needs root (to give files away)
		set      func(t *testing.T, dir, path, target string) error
		wantText string
	}{
		{name: "directory writable by every user", set: func(_ *testing.T, dir, _, _ string) error { return os.Chmod(dir, 0o777) }, wantText: "write"},
		{name: "directory writable by its group", set: func(_ *testing.T, dir, _, _ string) error { return os.Chmod(dir, 0o770) }, wantText: "write"},
		{name: "directory writable by every user, sticky", set: func(_ *testing.T, dir, _, _ string) error { return os.Chmod(dir, 0o1777) }, wantText: "write"},
		{name: "directory owned by another user", asRoot: true, set: func(_ *testing.T, dir, _, _ string) error { return os.Chown(dir, 65534, 65534) }, wantText: "owned"},
		{name: "parent writable by every user", set: func(_ *testing.T, dir, _, _ string) error { return os.Chmod(filepath.Dir(dir), 0o777) }, wantText: "write"},
		{name: "directory missing, its parent writable by every user", set: func(_ *testing.T, dir, _, _ string) error {
			if err := os.Remove(dir); err != nil {
				return err
			}
			return os.Chmod(filepath.Dir(dir), 0o777)
		}, wantText: "write"},
		{name: "lock a symbolic link", set: func(_ *testing.T, _, path, target string) error { return os.Symlink(target, path+".lock") }, wantText: "lock"},
		{name: "journal a symbolic link", set: func(_ *testing.T, _, path, target string) error { return os.Symlink(target, path) }, wantText: "replay.journal"},
		{name: "old generation a symbolic link", set: func(_ *testing.T, _, path, target string) error { return os.Symlink(target, path+".old") }, wantText: ".old"},
		{name: "journal a FIFO", set: func(_ *testing.T, _, path, _ string) error { return syscall.Mkfifo(path, 0o600) }, wantText: "regular"},
		{name: "journal a directory", set: func(_ *testing.T, _, path, _ string) error { return os.Mkdir(path, 0o700) }, wantText: "directory"},
		{name: "journal writable by every user", set: func(_ *testing.T, _, path, _ string) error { return os.WriteFile(path, nil, 0o666) }, wantText: "write"},
		{name: "journal owned by another user", asRoot: true, set: func(_ *testing.T, _, path, _ string) error {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				return err
			}
			return os.Chown(path, 65534, 65534)
		}, wantText: "owned"},
		{name: "lock owned by another user", asRoot: true, set: func(_ *testing.T, _, path, _ string) error {
			if err := os.WriteFile(path+".lock", nil, 0o600); err != nil {
				return err
			}
			return os.Chown(path+".lock", 65534, 65534)
		}, wantText: "owned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.asRoot && !root {
				t.Skip("needs root")
			}
			top := filepath.Join(t.TempDir(), "top")
			dir := filepath.Join(top, "state")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "replay.journal")
			target := filepath.Join(t.TempDir(), "target") // elsewhere, closed to others
			umask := syscall.Umask(0)
			err := tc.set(t, dir, path, target)
			syscall.Umask(umask)
			if err != nil {
				t.Fatal(err)
			}
			clk := testclock.New(time.Unix(1_700_000_000, 0))
			mem := NewMemory(MemoryOptions{Capacity: 10, TTL: testTTL, Now: clk.Now})
			j, _, err := OpenJournal(path, mem, JournalOptions{})
			if err == nil {
				j.Close()
				t.Fatal("OpenJournal accepted it")
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not say %q", err, tc.wantText)
			}
			if _, err := os.Lstat(target); err == nil {
				t.Error("OpenJournal created a file through a symbolic link")
			}
		})
	}
}

// TestJournalCreated: a journal CreateJournal made is the one first start
// that is no loss; once it has vanished or been emptied, the next start
// counts a loss as ever. Its birth record holds no rotation back and
// brings none forward.
func TestJournalCreated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(string) error // after the first start's use and close; nil: none
		lost   bool
	}{
		{name: "used and reopened"},
		{name: "vanished", damage: os.Remove, lost: true},
		{name: "cut to its header", damage: truncateTo(int64(journalHdrSize)), lost: true},
		{name: "cut to its birth record", damage: truncateTo(int64(journalHdrSize + journalRecSize)), lost: false}, // cannot be told from a new one,
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "replay.journal")
			clk := testclock.New(time.Unix(1_700_000_000, 0))
			made := clk.Now().Add(-time.Hour)
			if err := CreateJournal(path, made, -1, -1); err != nil {
				t.Fatal(err)
			}
			j, st := openTestJournal(t, path, clk)
			if st.Lost != "" || !j.ForgottenAt().IsZero() || !st.Made.Equal(made) {
				t.Fatalf("first start on a made journal: stats %+v, forgotten at %v", *st, j.ForgottenAt())
			}
			mustRecord(t, j, key(1), true)
			clk.Add(testTTL / 2)
			mustRecord(t, j, key(2), true)
			if _, err := os.Stat(path + ".old"); err == nil {
				t.Error("rotated before any record expired")
			}
			j.Close()
			if tc.damage != nil {
				if err := tc.damage(path); err != nil {
					t.Fatal(err)
				}
			}
			clk.Add(time.Second)
			j, st = openTestJournal(t, path, clk)
			if got := st.Lost != ""; got != tc.lost {
				t.Fatalf("restart: stats %+v, want lost %v", *st, tc.lost)
			}
			if tc.damage == nil {
				mustRecord(t, j, key(1), false)
				// Past key 1's expiry the file rotates, and the new
				// generation loads without a loss.
				clk.Add(testTTL/2 + time.Second)
				mustRecord(t, j, key(3), true)
				if _, err := os.Stat(path + ".old"); err != nil {
					t.Errorf("no rotation once the oldest record expired: %v", err)
				}
				j.Close()
				j, st = openTestJournal(t, path, clk)
				if st.Lost != "" || st.Loaded != 2 {
					t.Errorf("after rotation: stats %+v, want no loss, 2 loaded", *st)
				}
				mustRecord(t, j, key(2), false)
			}
		})
	}
}

// TestCreateJournalRefuses: CreateJournal makes no journal where one is
// or was (its lock or previous generation is left), or in a directory
// others than its owner may write; and leaves what was there untouched.
func TestCreateJournalRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    func(dir, path string) error
		exists bool // ErrJournalExists
	}{
		{"journal there", func(_, p string) error { return os.WriteFile(p, []byte("x"), 0o600) }, true},
		{"lock there", func(_, p string) error { return os.WriteFile(p+".lock", nil, 0o600) }, true},
		{"previous generation there", func(_, p string) error { return os.WriteFile(p+".old", []byte("x"), 0o600) }, true},
		// The seen users' file outlives a lost journal: a journal was there.
		{"seen users there", func(_, p string) error { return os.WriteFile(p+".seen", []byte("x"), 0o600) }, true},
		{"seen users' lock there", func(_, p string) error { return os.WriteFile(p+".seen.lock", nil, 0o600) }, true},
		{"journal a dangling link", func(d, p string) error { return os.Symlink(filepath.Join(d, "nowhere"), p) }, true},
		{"directory every user may write", func(d, _ string) error { return os.Chmod(d, 0o777) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "replay.journal")
			if err := tc.set(dir, path); err != nil {
				t.Fatal(err)
			}
			err := CreateJournal(path, time.Now(), -1, -1)
			if err == nil || errors.Is(err, ErrJournalExists) != tc.exists {
				t.Fatalf("CreateJournal = %v, want an error (exists: %v)", err, tc.exists)
			}
			if b, _ := os.ReadFile(path); len(b) > 1 {
				t.Errorf("the journal holds %d bytes", len(b))
			}
			if _, err := os.Lstat(filepath.Join(dir, "nowhere")); err == nil {
				t.Error("made a file through a link")
			}
		})
	}
}

// TestJournalLinkOfAnotherUser: a symbolic link on the way to the journal
// that another user owns (in a sticky directory, where only its owner may
// replace it) is refused: its owner could point it at another journal.
func TestJournalLinkOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a link to another user")
	}
	root := t.TempDir()
	sticky, real := filepath.Join(root, "sticky"), filepath.Join(root, "real")
	for _, d := range []string{sticky, real} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(sticky, "lnk")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(link, "replay.journal")
	if err := CheckJournal(path, 0); err != nil {
		t.Fatalf("a link of root's: %v", err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := CheckJournal(path, 0); err == nil || !strings.Contains(err.Error(), link) {
		t.Errorf("CheckJournal through a link of user 65534 = %v, want an error naming %s", err, link)
	}
	if err := CreateJournal(path, time.Now(), -1, -1); err == nil {
		t.Error("CreateJournal made a journal through a link of user 65534")
	}
}
