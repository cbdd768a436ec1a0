package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
// 28 bytes: the key (16 bytes), the expiry (8 bytes, big-endian Unix
// nanoseconds) and a CRC-32C of those 24 bytes (4 bytes, big-endian). A
// record torn by a crash (a short tail, or a record whose checksum fails) is
// skipped at load time and the file is cut back to its last whole record.
//
// The file never grows without bound: records expire after the store's
// time to live, so the journal rotates. Once the active file is at least
// one TTL old and every record of the previous generation (PATH.old) has
// expired, PATH is renamed to PATH.old (dropping the expired generation)
// and a new PATH is started. Both generations are loaded at start-up. The
// file thus holds at most the records of about two TTLs.
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

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// JournalOptions configures a Journal.
type JournalOptions struct {
	// SyncEvery fsyncs the file before every Record returns.
	SyncEvery bool
	// SyncInterval is the longest a written record waits for its fsync when
	// SyncEvery is off (1 s if 0).
	SyncInterval time.Duration
}

// Journal is a Store: a Memory store whose accepted records are also
// appended to a file, and loaded back from it by OpenJournal. It is safe for
// concurrent use.
type Journal struct {
	mem      *Memory
	path     string
	lock     *os.File // holds an exclusive flock on PATH.lock
	now      func() time.Time
	syncEach bool

	mu        sync.Mutex
	f         *os.File
	size      int64     // bytes of whole records and header in f
	started   time.Time // when f was started (or loaded)
	oldMax    int64     // latest expiry in PATH.old, Unix nanoseconds
	activeMax int64     // latest expiry in PATH
	dirty     bool      // written since the last fsync
	err       error     // sticky: the file is in an unknown state
	closed    bool

	// openFile opens files for rotation (os.OpenFile; tests inject faults).
	openFile func(name string, flag int, perm os.FileMode) (*os.File, error)

	stop chan struct{}
	done chan struct{}
}

var _ Store = (*Journal)(nil)

// JournalStats reports what OpenJournal found.
type JournalStats struct {
	Loaded  int // unexpired records restored into the store
	Expired int // records that had expired
	Torn    int // bytes or records skipped as torn or corrupt
}

// OpenJournal loads the unexpired records of the journal at path (and of
// its previous generation, path.old) into mem, then opens path for
// appending. The file and its directory must be writable; the directory
// must exist. Only one process may hold a journal: a second OpenJournal on
// the same path fails until the first is closed.
func OpenJournal(path string, mem *Memory, o JournalOptions) (*Journal, *JournalStats, error) {
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("replay: journal %s is in use by another process: %w", path, err)
	}
	j := &Journal{mem: mem, path: path, lock: lock, now: mem.now, syncEach: o.SyncEvery,
		openFile: os.OpenFile, stop: make(chan struct{}), done: make(chan struct{})}
	st := &JournalStats{}
	if j.oldMax, err = j.load(path+".old", st, false); err != nil {
		lock.Close()
		return nil, nil, err
	}
	if j.activeMax, err = j.load(path, st, true); err != nil {
		lock.Close()
		return nil, nil, err
	}
	j.started = j.now()
	go j.syncer(o.SyncInterval)
	return j, st, nil
}

// load restores the records of the file at name into the store and returns
// their latest expiry. For the active file it also cuts a torn tail off,
// writes a header into a new or empty file, and keeps it open for
// appending.
func (j *Journal) load(name string, st *JournalStats, active bool) (int64, error) {
	flags := os.O_RDONLY
	if active {
		flags = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(name, flags, 0o600)
	if err != nil {
		if !active && errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, fmt.Errorf("replay: journal: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("replay: journal %s: %w", name, err)
	}
	var latest int64
	size := int64(journalHdrSize)
	switch {
	case len(data) == 0:
	case len(data) < journalHdrSize || string(data[:journalHdrSize]) != journalMagic:
		if len(data) >= journalHdrSize || string(data) != journalMagic[:len(data)] {
			return 0, fmt.Errorf("replay: journal %s: not a tokenauthd journal (bad header)", name)
		}
		st.Torn += len(data) // a header torn while being written
	default:
		now := j.now().UnixNano()
		recs := data[journalHdrSize:]
		for len(recs) >= journalRecSize {
			rec := recs[:journalRecSize]
			recs = recs[journalRecSize:]
			size += journalRecSize
			if crc32.Checksum(rec[:KeySize+8], crcTable) != binary.BigEndian.Uint32(rec[KeySize+8:]) {
				st.Torn++
				continue
			}
			var k Key
			copy(k[:], rec)
			exp := int64(binary.BigEndian.Uint64(rec[KeySize:]))
			latest = max(latest, exp)
			if exp <= now {
				st.Expired++
				continue
			}
			j.mem.Restore(k, time.Unix(0, exp))
			st.Loaded++
		}
		st.Torn += len(recs)
	}
	if !active {
		return latest, nil
	}
	switch {
	case len(data) < journalHdrSize: // new, empty, or its header torn
		if err := f.Truncate(0); err != nil {
			return 0, fmt.Errorf("replay: journal %s: %w", name, err)
		}
		if _, err := f.WriteAt([]byte(journalMagic), 0); err != nil {
			return 0, fmt.Errorf("replay: journal %s: %w", name, err)
		}
	case int64(len(data)) != size: // a torn tail: cut back to whole records
		if err := f.Truncate(size); err != nil {
			return 0, fmt.Errorf("replay: journal %s: %w", name, err)
		}
	default:
		j.f, j.size, keep = f, size, true
		return latest, nil
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("replay: journal %s: %w", name, err)
	}
	j.f, j.size, keep = f, size, true
	return latest, nil
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

func (j *Journal) append(key Key, exp int64) error {
	var rec [journalRecSize]byte
	copy(rec[:], key[:])
	binary.BigEndian.PutUint64(rec[KeySize:], uint64(exp))
	binary.BigEndian.PutUint32(rec[KeySize+8:], crc32.Checksum(rec[:KeySize+8], crcTable))

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
	j.activeMax = max(j.activeMax, exp)
	if j.syncEach {
		if err := j.f.Sync(); err != nil {
			return err
		}
		return nil
	}
	j.dirty = true
	return nil
}

// maybeRotate starts a new generation when the active one is a TTL old and
// the previous one has wholly expired. A rotation that fails is tried again
// by the next append: the append that hit the failure is refused, not every
// later one. Called with j.mu held.
func (j *Journal) maybeRotate() error {
	now := j.now()
	if j.f != nil {
		if now.Sub(j.started) < j.mem.TTL() || j.oldMax > now.UnixNano() {
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
		j.oldMax, j.activeMax = j.activeMax, 0
	}
	f, err := j.openFile(j.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.WriteAt([]byte(journalMagic), 0)
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
	j.f, j.size, j.started = f, int64(journalHdrSize), now
	j.dirty = true
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

// syncer fsyncs the file at most every interval after a write.
func (j *Journal) syncer(every time.Duration) {
	defer close(j.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			j.mu.Lock()
			if j.dirty && j.err == nil && !j.closed && j.f != nil {
				if j.f.Sync() == nil {
					j.dirty = false
				}
			}
			j.mu.Unlock()
		case <-j.stop:
			return
		}
	}
}

// ForgottenAt implements Store: the memory store's.
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

// Close implements Store: it fsyncs and closes the file and releases it.
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
	close(j.stop)
	<-j.done
	j.lock.Close() // releases the flock
	if err != nil {
		return fmt.Errorf("replay: journal: %w", err)
	}
	return j.mem.Close()
}
