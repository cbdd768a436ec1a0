// Package replay remembers which one-time credentials have already been used.
//
// A Store records opaque fixed-size keys for a fixed time to live and answers,
// in one atomic step, whether a key was new. This package holds the Store
// contract and the in-process stores: Memory, and Journal, which keeps a
// Memory store's records in a file across restarts. The Redis store is in
// replay/redis, so that what imports replay links no Redis client; the
// conformance suite every store must pass is in replay/storetest.
//
// Apart from the Store, Marks keeps each key's latest moment until an end
// its caller chooses: MemoryMarks, and MarksFile, a file of its own beside
// a journal. Marks never evict a Store's records nor are evicted by them.
//
// It must never know what the keys stand for: no tokens, users or hosts, no
// wire format. Its callers hash those into a Key.
package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// KeySize is the size in bytes of a Key.
const KeySize = 16

// Key identifies one recorded credential. It is a truncated hash, so it has a
// fixed size whatever the size of what it identifies.
type Key [KeySize]byte

// String returns the key in lowercase hexadecimal.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// HashKey derives a Key from b, the unambiguous encoding of what it stands
// for (the caller's to define).
func HashKey(b []byte) Key {
	sum := sha256.Sum256(b)
	return Key(sum[:KeySize])
}

// ErrUnavailable wraps every error caused by a store that cannot answer
// (a backend that is down or too slow). Callers must treat it as "refuse".
var ErrUnavailable = errors.New("replay: store unavailable")

// ErrClosed is returned by Record and Seen on a store that was closed. It
// wraps ErrUnavailable: a closed store cannot answer.
var ErrClosed = fmt.Errorf("%w: closed", ErrUnavailable)

// Store records keys for the store's time to live. Its methods are safe for
// concurrent use. The conformance suite in replay/storetest checks every
// promise below.
type Store interface {
	// Record marks key as used. It reports fresh == true if the key was not
	// recorded (or its record had expired), and false if it was already
	// recorded. The check and the record are one atomic step: of concurrent
	// Records of one key, at most one is fresh. A record lives for the
	// store's time to live: it is not fresh again before that, and is once
	// it has passed. On error Record reports false, and the caller must
	// treat the key as not fresh whatever it reports.
	Record(ctx context.Context, key Key) (fresh bool, err error)
	// Seen reports whether key is recorded, without recording it. On error
	// the caller must not take the key for unrecorded.
	Seen(ctx context.Context, key Key) (bool, error)
	// Len returns the number of records this store holds (expired ones not
	// yet dropped may be counted), or -1 if it cannot tell cheaply; a store
	// that returns -1 always does.
	Len() int
	// ForgottenAt returns the latest moment at which the store may have
	// lost records it had acknowledged (a restarted Redis without
	// persistence, a lost journal, a process that starts empty), or the
	// zero time if it never did. A key recorded before that moment may be
	// gone: Record can then report it fresh, and Seen report it unseen. The
	// caller must refuse every credential that could have been recorded
	// before it. ForgottenAt never decreases and does no I/O.
	ForgottenAt() time.Time
	// Close releases the store's resources. Once it has returned, Record
	// and Seen fail with an error wrapping ErrClosed (Record reporting not fresh);
	// Len and ForgottenAt still answer. Closing a closed store does nothing
	// and returns nil.
	Close() error
}

// ForgetMark holds a store's ForgottenAt, for stores to embed: it only
// moves forward, as Store promises, and is safe for concurrent use. The
// zero value has never been raised.
type ForgetMark struct{ ns atomic.Int64 }

// Raise moves the mark to at, unless it is already later.
func (f *ForgetMark) Raise(at time.Time) {
	n := at.UnixNano()
	for {
		old := f.ns.Load()
		if old >= n || f.ns.CompareAndSwap(old, n) {
			return
		}
	}
}

// Load returns the mark, the zero time if it was never raised.
func (f *ForgetMark) Load() time.Time {
	if n := f.ns.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
