package replay

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A marks file keeps a MemoryMarks's marks across restarts. It is a file
// of its own beside a journal (by convention the journal's path with
// ".seen" appended), so that the journal's rotation never drops a mark,
// and a mark never holds back the journal's rotation.
//
// File format: an 8-byte header (marksMagic), then fixed-size records of
// 36 bytes: the key (16 bytes), the moment and the end (8 bytes each,
// big-endian Unix nanoseconds) and a CRC-32C of those 32 bytes (4 bytes,
// big-endian). Loading reads them in order; a later record of a key
// replaces an earlier one by Mark's rule. A torn last record (a crash
// during a write) is cut off; records that fail their checksum elsewhere
// are lost marks, counted.
//
// The file is compacted when it holds more than twice the live marks (and
// at least marksCompactMin records): the live marks are written to
// PATH.tmp, fsynced, and renamed over PATH. So it holds at most about twice
// the marks kept, whatever the time a process runs.

const (
	marksMagic      = "TASEEN01"
	marksRecSize    = KeySize + 8 + 8 + 4
	marksCompactMin = 4096
)

// MarksFile is a Marks: a MemoryMarks whose marks are also appended to a
// file, and loaded back from it by OpenMarksFile. It is safe for concurrent
// use.
type MarksFile struct {
	mem   *MemoryMarks
	path  string
	lock  *os.File // holds an exclusive flock on PATH.lock
	owner int      // the user besides root its files may belong to

	mu      sync.Mutex
	f       *os.File
	size    int64 // bytes of header and whole records in f
	records int   // records in f
	dirty   bool
	err     error // sticky: the file is in an unknown state
	closed  bool
	syncs   *Ticker
}

var _ Marks = (*MarksFile)(nil)

// MarksStats reports what OpenMarksFile found.
type MarksStats struct {
	Loaded  int  // live marks restored
	Expired int  // records whose end had passed, or replaced by a later one
	Torn    int  // bytes cut off the end: a write a crash interrupted
	Corrupt int  // records that failed their checksum elsewhere: marks lost
	Created bool // the file was absent or empty: a first start, or a lost file
}

// OpenMarksFile loads the live marks of the file at path into mem, then
// opens it for appending. Its files (path, path.lock, path.tmp) are held
// to the journal's rule (CheckJournal, with o.Owner) and opened without
// following a symbolic link. Only one process may hold it.
func OpenMarksFile(path string, mem *MemoryMarks, o JournalOptions) (*MarksFile, *MarksStats, error) {
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	owner := o.owner()
	if err := checkJournalDirs(filepath.Dir(path), owner); err != nil {
		return nil, nil, err
	}
	lock, err := openJournalFile(path+".lock", os.O_RDWR|os.O_CREATE, owner)
	if err != nil {
		return nil, nil, fmt.Errorf("replay: marks: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("replay: marks file %s is in use by another process: %w", path, err)
	}
	m := &MarksFile{mem: mem, path: path, lock: lock, owner: owner}
	st, err := m.load()
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	m.syncs = StartTicker(o.SyncInterval, m.syncIfDirty)
	return m, st, nil
}

// load reads the file into the memory store and leaves it open for
// appending, its torn tail cut off and a header written if it had none.
func (m *MarksFile) load() (*MarksStats, error) {
	f, err := openJournalFile(m.path, os.O_RDWR|os.O_CREATE, m.owner)
	if err != nil {
		return nil, fmt.Errorf("replay: marks: %w", err)
	}
	st := &MarksStats{}
	good, end, err := m.read(f, st)
	if err == nil {
		err = m.ready(f, st, good, end)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	st.Loaded = m.mem.Len()
	m.f, m.size = f, good
	if st.Created {
		m.size = int64(len(marksMagic))
	}
	m.records = int(m.size-int64(len(marksMagic))) / marksRecSize
	return st, nil
}

// ready cuts a torn tail, or writes the header of a new file.
func (m *MarksFile) ready(f *os.File, st *MarksStats, good, end int64) error {
	switch {
	case end < int64(len(marksMagic)):
		st.Created = true
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("replay: marks %s: %w", m.path, err)
		}
		if _, err := f.WriteAt([]byte(marksMagic), 0); err != nil {
			return fmt.Errorf("replay: marks %s: %w", m.path, err)
		}
	case end != good:
		st.Torn = int(end - good)
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("replay: marks %s: %w", m.path, err)
		}
	default:
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("replay: marks %s: %w", m.path, err)
	}
	return nil
}

// read restores the file's records, one at a time through a small buffer,
// and returns the offset past the last good record and the bytes read.
func (m *MarksFile) read(f io.Reader, st *MarksStats) (good, end int64, err error) {
	br := bufio.NewReaderSize(f, 64<<10)
	var hdr [len(marksMagic)]byte
	n, err := io.ReadFull(br, hdr[:])
	end = int64(n)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if string(hdr[:n]) != marksMagic[:n] {
			return 0, end, fmt.Errorf("replay: marks %s: not a tokenauthd marks file (bad header)", m.path)
		}
		return 0, end, nil
	case err != nil:
		return 0, end, fmt.Errorf("replay: marks %s: %w", m.path, err)
	case string(hdr[:]) != marksMagic:
		return 0, end, fmt.Errorf("replay: marks %s: not a tokenauthd marks file (bad header)", m.path)
	}
	good = end
	bad := 0
	var rec [marksRecSize]byte
	for {
		n, err := io.ReadFull(br, rec[:])
		end += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return good, end, nil
		}
		if err != nil {
			return good, end, fmt.Errorf("replay: marks %s: %w", m.path, err)
		}
		if crc32.Checksum(rec[:marksRecSize-4], crcTable) != binary.BigEndian.Uint32(rec[marksRecSize-4:]) {
			bad++
			continue
		}
		st.Corrupt += bad // damage followed by whole records: not a torn write
		bad = 0
		r := mark{int64(binary.BigEndian.Uint64(rec[KeySize:])), int64(binary.BigEndian.Uint64(rec[KeySize+8:]))}
		if !m.mem.put(Key(rec[:KeySize]), r) {
			st.Expired++
		}
		good = end
	}
}

// marksRecord encodes one record.
func marksRecord(key Key, r mark) [marksRecSize]byte {
	var rec [marksRecSize]byte
	copy(rec[:], key[:])
	binary.BigEndian.PutUint64(rec[KeySize:], uint64(r.at))
	binary.BigEndian.PutUint64(rec[KeySize+8:], uint64(r.until))
	binary.BigEndian.PutUint32(rec[marksRecSize-4:], crc32.Checksum(rec[:marksRecSize-4], crcTable))
	return rec
}

// Mark implements Marks: a mark that changes what is kept is appended to
// the file before Mark returns; if that fails, Mark returns an error
// wrapping ErrUnavailable (the mark is kept in memory all the same).
func (m *MarksFile) Mark(_ context.Context, key Key, at, until time.Time) error {
	r := mark{at.UnixNano(), until.UnixNano()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if !m.mem.put(key, r) {
		return nil
	}
	if err := m.append(key, r); err != nil {
		return fmt.Errorf("%w: marks: %v", ErrUnavailable, err)
	}
	return nil
}

// append writes one record, compacting the file first when it is due.
// Called with m.mu held.
func (m *MarksFile) append(key Key, r mark) error {
	if m.err != nil {
		return m.err
	}
	if m.records >= marksCompactMin && m.records > 2*m.mem.Len() {
		if err := m.compact(); err != nil {
			return err
		}
	}
	rec := marksRecord(key, r)
	if n, err := m.f.WriteAt(rec[:], m.size); err != nil {
		if n > 0 {
			if terr := m.f.Truncate(m.size); terr != nil {
				m.err = fmt.Errorf("write failed and file could not be cut back: %v", terr)
			}
		}
		return err
	}
	m.size += marksRecSize
	m.records++
	m.dirty = true
	return nil
}

// compact replaces the file with one holding the live marks only. A
// compaction that fails leaves the file as it was. Called with m.mu held.
func (m *MarksFile) compact() error {
	keys, vals := m.mem.live()
	tmp := m.path + ".tmp"
	f, err := openJournalFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, m.owner)
	if err != nil {
		return fmt.Errorf("compaction failed: %v", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	w.WriteString(marksMagic)
	for i := range keys {
		rec := marksRecord(keys[i], vals[i])
		w.Write(rec[:])
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, m.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(m.path))
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("compaction failed: %v", err)
	}
	m.f.Close()
	m.f, m.records, m.dirty = f, len(keys), false
	m.size = int64(len(marksMagic) + len(keys)*marksRecSize)
	return nil
}

// syncIfDirty fsyncs the file if a write came since the last fsync.
func (m *MarksFile) syncIfDirty() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirty && m.err == nil && !m.closed && m.f.Sync() == nil {
		m.dirty = false
	}
}

// Marked implements Marks.
func (m *MarksFile) Marked(ctx context.Context, key Key) (time.Time, error) {
	return m.mem.Marked(ctx, key)
}

// Len implements Marks.
func (m *MarksFile) Len() int { return m.mem.Len() }

// Evictions returns the memory store's count of marks forced out by its
// capacity.
func (m *MarksFile) Evictions() uint64 { return m.mem.Evictions() }

// Size returns the size in bytes of the file.
func (m *MarksFile) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// Close implements Marks: it fsyncs and closes the file, releases it, and
// closes the memory store.
func (m *MarksFile) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	err := m.f.Sync()
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	m.mu.Unlock()
	m.syncs.Stop()
	m.lock.Close()
	merr := m.mem.Close()
	if err != nil {
		return fmt.Errorf("replay: marks: %w", err)
	}
	return merr
}
