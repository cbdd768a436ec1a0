package replay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A journal is an append-only file of the records a Memory store accepted,
// so that a restarted process (even one killed with SIGKILL) still refuses
// what it accepted before.
//
// File format: an 8-byte header (journalMagic), then fixed-size records of
// 28 bytes: the key (16 bytes), a time (8 bytes, big-endian Unix
// nanoseconds) and a CRC-32C of those 24 bytes (4 bytes, big-endian). For a
// credential's record the time is its expiry. Three reserved keys, which
// HashKey never makes (a 2^-128 chance), mark the journal's own records: a
// forget record (its time: a moment the store may have lost what it had
// recorded before), a generation record (its time: the latest expiry in
// the previous generation, PATH.old) and a birth record (its time: when
// CreateJournal made the journal, before any process used it).
//
// Loading reads the file record by record, so that memory is bounded by the
// store's capacity, not by the file's size. Records that fail their
// checksum at the end of the active file are a write a crash interrupted
// (never acknowledged): they are cut off. Anywhere else they are records
// lost; so is an active file that is absent, or holds no record at all
// (every journal holds one from its start: its birth record, a forget
// record, or a generation record), or a previous generation that is
// missing. A journal that CreateJournal made is thus the one first start
// that is no loss: any other cannot be told from a lost file. The
// store may then have forgotten credentials it accepted: OpenJournal marks
// the store forgotten at the moment it opens the file (Memory.ForgottenAt)
// and appends a forget record, so that a restart soon after still knows it.
// A forget record covers every loss found before it in the file.
//
// The file never grows without bound: records expire after the store's
// time to live, so the journal rotates, on what the files hold (not on
// how long the process has run, which restarts reset). Once every record of
// the previous generation (PATH.old) has expired and so has the oldest
// record of the active file, PATH is renamed to PATH.old (dropping the
// expired generation) and a new PATH is started. Both generations are
// loaded at start-up. The files thus hold the records of about two TTLs.
//
// Durability: every record is written with write(2) before Record returns,
// so it survives the process being killed at any point (SIGKILL, a crash,
// the OOM killer): the kernel has it. Surviving a power loss or a kernel
// crash needs the data on disk: with SyncEvery the file is fsynced before
// Record returns (one disk flush per accepted token); otherwise it is
// fsynced at most SyncInterval after a write, and on Close.

const (
	journalMagic   = "TAJRNL01"
	journalHdrSize = len(journalMagic)
	journalRecSize = KeySize + 8 + 4
)

// The reserved keys of the journal's own records.
var (
	forgetKey  = Key{KeySize - 1: 1}
	prevGenKey = Key{KeySize - 1: 2}
	birthKey   = Key{KeySize - 1: 3}
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// JournalOptions configures a Journal.
type JournalOptions struct {
	// SyncEvery fsyncs the file before every Record returns.
	SyncEvery bool
	// SyncInterval is the longest a written record waits for its fsync when
	// SyncEvery is off (1 s if 0).
	SyncInterval time.Duration
	// Owner, if not nil, is the user besides root that the journal's
	// files and directories may belong to (see CheckJournal); nil: the
	// user the process runs as.
	Owner *int
}

// Journal is a Store: a Memory store whose accepted records are also
// appended to a file, and loaded back from it by OpenJournal. It is safe for
// concurrent use.
type Journal struct {
	mem      *Memory
	path     string
	lock     *os.File // holds an exclusive flock on PATH.lock
	owner    int      // the user besides root its files may belong to
	now      func() time.Time
	syncEach bool

	mu        sync.Mutex
	f         *os.File
	size      int64 // bytes of whole records and header in f
	oldMax    int64 // latest expiry in PATH.old, Unix nanoseconds
	activeMin int64 // earliest expiry in PATH (0: no record)
	activeMax int64 // latest expiry in PATH
	dirty     bool  // written since the last fsync
	err       error // sticky: the file is in an unknown state
	closed    bool

	// openFile opens files for rotation (os.OpenFile; tests inject faults).
	openFile func(name string, flag int, perm os.FileMode) (*os.File, error)

	syncs *Ticker // fsyncs at most every SyncInterval after a write
}

var _ Store = (*Journal)(nil)

// JournalStats reports what OpenJournal found.
type JournalStats struct {
	Loaded  int // unexpired records restored into the store
	Expired int // records that had expired
	Torn    int // bytes cut off the end of the active file: a write a crash interrupted
	Corrupt int // records that failed their checksum elsewhere: lost
	// Lost says why this start found that records may have been lost (""
	// if it found none).
	Lost string
	// Forgotten is the store's ForgottenAt once loaded: the open time if
	// Lost is set, or a moment a recent start recorded; zero if none.
	Forgotten time.Time
	// Made is when CreateJournal made the journal, if its birth record is
	// still in the active file (zero if not).
	Made time.Time
	// Absent says that the active file was not there: Lost says so too.
	Absent bool
}

// OpenJournal loads the unexpired records of the journal at path (and of
// its previous generation, path.old) into mem, then opens path for
// appending. The file and its directory must be writable; the directory
// must exist. It refuses what CheckJournal refuses, and follows no
// symbolic link. Only one process may hold a journal: a second
// OpenJournal on the same path fails until the first is closed.
func OpenJournal(path string, mem *Memory, o JournalOptions) (*Journal, *JournalStats, error) {
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	owner := o.owner()
	if err := checkJournalDirs(filepath.Dir(path), owner); err != nil {
		return nil, nil, err
	}
	lock, err := openJournalFile(path+".lock", os.O_RDWR|os.O_CREATE, owner)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("replay: journal %s is in use by another process: %w", path, err)
	}
	j := &Journal{mem: mem, path: path, lock: lock, now: mem.now, syncEach: o.SyncEvery,
		owner: owner, openFile: os.OpenFile}
	now := j.now()
	l := &loader{j: j, owner: owner, st: &JournalStats{}, now: now.UnixNano(), ttl: int64(mem.TTL())}
	if err := l.loadOld(path + ".old"); err != nil {
		lock.Close()
		return nil, nil, err
	}
	if err := l.loadActive(path, now); err != nil {
		lock.Close()
		return nil, nil, err
	}
	if l.forgot != 0 {
		mem.MarkForgotten(time.Unix(0, l.forgot))
	}
	l.st.Forgotten = mem.ForgottenAt()
	j.syncs = StartTicker(o.SyncInterval, j.syncIfDirty)
	return j, l.st, nil
}

// loader reads the records of both generations, the older first: the
// order they were written in.
type loader struct {
	j        *Journal
	owner    int
	st       *JournalStats
	now, ttl int64
	lost     string // why records may be lost, if no later forget record covers it
	forgot   int64  // the latest forget record still in effect
	active   bool   // reading the active file
}

// scan is what reading one file found.
type scan struct {
	hdr      bool  // the file starts with a whole header
	good     int64 // offset just past the header and the last record that passed its checksum
	end      int64 // bytes read
	bad      int   // records that failed their checksum since the last good one
	recs     int   // records that passed their checksum
	min, max int64 // earliest and latest expiry of its records (0: none)
}

func (sc *scan) note(exp int64) {
	if sc.min == 0 || exp < sc.min {
		sc.min = exp
	}
	sc.max = max(sc.max, exp)
}

// loadOld restores the records of the previous generation, if there is one.
func (l *loader) loadOld(name string) error {
	f, err := openJournalFile(name, os.O_RDONLY, l.owner)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	defer f.Close()
	sc, err := l.read(f, name)
	if err != nil {
		return err
	}
	// PATH.old was whole and fsynced when it was renamed: anything short
	// of whole records is damage, not a torn write.
	if !sc.hdr || sc.end != sc.good {
		l.st.Corrupt += sc.bad
		l.lose(name + " is damaged")
	}
	l.j.oldMax = sc.max
	return nil
}

// loadActive restores the records of the active file, then makes it ready
// for appending: a header in a new or empty file, a torn tail cut off, a
// forget record if records may have been lost. It keeps the file open.
func (l *loader) loadActive(name string, now time.Time) error {
	l.active = true
	f, err := openJournalFile(name, os.O_RDWR, l.owner)
	if errors.Is(err, os.ErrNotExist) {
		l.st.Absent = true
		l.lose(name + " was absent (a lost file, or a first start on a journal nobody made beforehand)")
		f, err = openJournalFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, l.owner)
	}
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	sc, err := l.read(f, name)
	if err == nil {
		err = l.prepare(f, name, &sc, now)
	}
	if err != nil {
		f.Close()
		return err
	}
	l.j.f, l.j.size, l.j.activeMin, l.j.activeMax = f, sc.good, sc.min, sc.max
	return nil
}

// prepare readies the loaded active file for appending.
func (l *loader) prepare(f *os.File, name string, sc *scan, now time.Time) error {
	changed := false
	var out []byte // written at sc.good: a header, then a forget record
	switch {
	case !sc.hdr: // absent, empty, or its header torn
		l.lose(name + " was empty")
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("replay: journal %s: %w", name, err)
		}
		out, sc.good, changed = []byte(journalMagic), 0, true
	case sc.recs == 0: // every journal holds a record from its start
		l.lose(name + " holds no record: it was emptied")
	}
	if sc.hdr && sc.end != sc.good { // a torn tail: cut back to whole records
		if err := f.Truncate(sc.good); err != nil {
			return fmt.Errorf("replay: journal %s: %w", name, err)
		}
		l.st.Torn += int(sc.end - sc.good)
		changed = true
	}
	if l.lost != "" {
		l.st.Lost = l.lost
		l.forgot = max(l.forgot, now.UnixNano())
		rec := journalRecord(forgetKey, now.UnixNano())
		// One write: a start killed in between leaves no bare header.
		if _, err := f.WriteAt(append(out, rec[:]...), sc.good); err != nil {
			return fmt.Errorf("replay: journal %s: %w", name, err)
		}
		sc.good += int64(len(out))
		sc.good += journalRecSize
		sc.note(now.UnixNano() + l.ttl)
		changed = true
	}
	if changed {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("replay: journal %s: %w", name, err)
		}
	}
	return nil
}

// lose notes that records may have been lost.
func (l *loader) lose(why string) {
	if l.lost == "" {
		l.lost = why
	}
}

// read restores the records of one file, reading it through a small
// buffer, record by record.
func (l *loader) read(f io.Reader, name string) (scan, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	var sc scan
	var hdr [journalHdrSize]byte
	n, err := io.ReadFull(br, hdr[:])
	sc.end = int64(n)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if string(hdr[:n]) != journalMagic[:n] {
			return sc, fmt.Errorf("replay: journal %s: not a tokenauthd journal (bad header)", name)
		}
		return sc, nil // empty, or a header torn while being written
	case err != nil:
		return sc, fmt.Errorf("replay: journal %s: %w", name, err)
	case string(hdr[:]) != journalMagic:
		return sc, fmt.Errorf("replay: journal %s: not a tokenauthd journal (bad header)", name)
	}
	sc.hdr, sc.good = true, int64(journalHdrSize)
	var rec [journalRecSize]byte
	for {
		n, err := io.ReadFull(br, rec[:])
		sc.end += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return sc, nil
		}
		if err != nil {
			return sc, fmt.Errorf("replay: journal %s: %w", name, err)
		}
		if crc32.Checksum(rec[:KeySize+8], crcTable) != binary.BigEndian.Uint32(rec[KeySize+8:]) {
			sc.bad++
			continue
		}
		if sc.bad > 0 { // damage followed by whole records: not a torn write
			l.st.Corrupt += sc.bad
			sc.bad = 0
			l.lose(name + " has records that fail their checksum")
		}
		l.restore(&sc, &rec)
		sc.recs++
		sc.good = sc.end
	}
}

// restore acts on one record that passed its checksum.
func (l *loader) restore(sc *scan, rec *[journalRecSize]byte) {
	k := Key(rec[:KeySize])
	t := int64(binary.BigEndian.Uint64(rec[KeySize:]))
	switch k {
	case forgetKey:
		// Everything written before it was accounted for when it was
		// written: it either expired or is refused until t's tokens are.
		end := t + l.ttl
		if end < t { // overflow: a time no clock gives
			end = math.MaxInt64
		}
		sc.note(end)
		l.lost = ""
		if end > l.now { // a moment past now (the clock went back) is now
			l.forgot = max(l.forgot, min(t, l.now))
		}
		return
	case birthKey:
		// No expiry to note: it does not hold the file back from rotating.
		if l.active {
			l.st.Made = time.Unix(0, t)
		}
		return
	case prevGenKey:
		sc.note(t)
		if l.active && t > l.now && l.j.oldMax < t {
			l.lose(l.j.path + ".old is missing or incomplete")
		}
		return
	}
	sc.note(t)
	if t <= l.now {
		l.st.Expired++
		return
	}
	l.j.mem.Restore(k, time.Unix(0, t))
	l.st.Loaded++
}

// journalRecord encodes one record.
func journalRecord(key Key, t int64) [journalRecSize]byte {
	var rec [journalRecSize]byte
	copy(rec[:], key[:])
	binary.BigEndian.PutUint64(rec[KeySize:], uint64(t))
	binary.BigEndian.PutUint32(rec[KeySize+8:], crc32.Checksum(rec[:KeySize+8], crcTable))
	return rec
}

// Record implements Store: a fresh key is recorded in memory and appended
// to the journal before Record returns. If the append fails the key is
// reported not fresh, with an error wrapping ErrUnavailable.
func (j *Journal) Record(ctx context.Context, key Key) (bool, error) {
	fresh, err := j.mem.Record(ctx, key)
	if err != nil || !fresh {
		return fresh, err
	}
	exp := j.now().Add(j.mem.TTL()).UnixNano()
	if err := j.append(key, exp); err != nil {
		return false, fmt.Errorf("%w: journal: %v", ErrUnavailable, err)
	}
	return true, nil
}

// append writes the record of key, which expires at exp, to the file.
func (j *Journal) append(key Key, exp int64) error {
	rec := journalRecord(key, exp)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return errors.New("closed")
	}
	if j.err != nil {
		return j.err
	}
	if err := j.maybeRotate(); err != nil {
		return err
	}
	if err := j.write(rec); err != nil {
		return err
	}
	j.activeMax = max(j.activeMax, exp)
	if j.activeMin == 0 {
		j.activeMin = exp
	}
	if j.syncEach {
		return j.f.Sync()
	}
	j.dirty = true
	return nil
}

// write appends one record to the active file. Called with j.mu held.
func (j *Journal) write(rec [journalRecSize]byte) error {
	if n, err := j.f.WriteAt(rec[:], j.size); err != nil {
		if n > 0 {
			// Cut the partial record off, or stop writing: a record out
			// of alignment would hide every later one.
			if terr := j.f.Truncate(j.size); terr != nil {
				j.err = fmt.Errorf("write failed and file could not be cut back: %v", terr)
			}
		}
		return err
	}
	j.size += journalRecSize
	return nil
}

// maybeRotate starts a new generation when the previous one has wholly
// expired and so has the oldest record of the active one. It looks at what
// the files hold, so restarts do not put it off. A rotation that fails is
// tried again by the next append: the append that hit the failure is
// refused, not every later one. Called with j.mu held.
func (j *Journal) maybeRotate() error {
	now := j.now().UnixNano()
	if j.f != nil {
		if j.activeMin == 0 || j.activeMin > now || j.oldMax > now {
			return nil
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("rotation failed: %v", err)
		}
		if err := os.Rename(j.path, j.path+".old"); err != nil {
			return fmt.Errorf("rotation failed: %v", err)
		}
		// PATH.old now holds every live record. Until a new PATH is
		// started (j.f == nil), nothing more can be journaled.
		j.f.Close()
		j.f, j.dirty = nil, false
		j.oldMax, j.activeMin, j.activeMax = j.activeMax, 0, 0
	}
	// The new generation starts with the latest expiry of the previous
	// one, so that a load can tell if PATH.old went missing.
	f, err := j.openFile(j.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err == nil {
		rec := journalRecord(prevGenKey, j.oldMax)
		_, err = f.WriteAt(append([]byte(journalMagic), rec[:]...), 0)
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = syncDir(filepath.Dir(j.path))
		}
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("rotation failed: %v", err)
	}
	j.f, j.size = f, int64(journalHdrSize+journalRecSize)
	j.activeMin, j.activeMax = j.oldMax, j.oldMax
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncIfDirty fsyncs the file if a write came since the last fsync.
func (j *Journal) syncIfDirty() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dirty && j.err == nil && !j.closed && j.f != nil {
		if j.f.Sync() == nil {
			j.dirty = false
		}
	}
}

// ForgottenAt implements Store: the moment OpenJournal found records may
// have been lost (or a recent start did), zero if none.
func (j *Journal) ForgottenAt() time.Time { return j.mem.ForgottenAt() }

// Seen implements Store.
func (j *Journal) Seen(ctx context.Context, key Key) (bool, error) { return j.mem.Seen(ctx, key) }

// Len implements Store.
func (j *Journal) Len() int { return j.mem.Len() }

// LiveEvictions returns the memory store's count of records forced out by
// its capacity before they expired.
func (j *Journal) LiveEvictions() uint64 { return j.mem.LiveEvictions() }

// Size returns the size in bytes of the active journal file.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// Close implements Store: it fsyncs and closes the file, releases it, and
// closes the memory store.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	var err error
	if j.f != nil { // nil: a rotation failed, and PATH.old holds everything
		err = j.f.Sync()
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
	}
	j.mu.Unlock()
	j.syncs.Stop()
	j.lock.Close() // releases the flock
	merr := j.mem.Close()
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	return merr
}
