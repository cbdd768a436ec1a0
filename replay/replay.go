// Package replay remembers which one-time credentials have already been used.
//
// A Store records opaque fixed-size keys for a fixed time to live and answers,
// in one atomic step, whether a key was new. It knows nothing about what the
// keys stand for.
package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

// Store records keys for the store's time to live.
type Store interface {
	// Record marks key as used. It reports fresh == true if the key was not
	// recorded (or its record had expired), and false if it was already
	// recorded. The check and the record are one atomic step. On error the
	// key must be treated as not fresh.
	Record(ctx context.Context, key Key) (fresh bool, err error)
	// Seen reports whether key is recorded, without recording it.
	Seen(ctx context.Context, key Key) (bool, error)
	// Len returns the number of live records this store holds, or -1 if it
	// cannot tell cheaply.
	Len() int
	// ForgottenAt returns the latest moment at which the store may have
	// lost records it had acknowledged (a restarted Redis without
	// persistence, a lost journal, a process that starts empty), or the
	// zero time if it never did. A key recorded before that moment may be
	// gone: Record can then report it fresh, and Seen report it unseen. The
	// caller must refuse every credential that could have been recorded
	// before it. ForgottenAt never decreases and does no I/O.
	ForgottenAt() time.Time
	// Close releases the store's resources.
	Close() error
}

// forgetMark holds a store's ForgottenAt, in Unix nanoseconds (0: never).
type forgetMark struct{ ns atomic.Int64 }

// raise moves the mark to at, unless it is already later.
func (f *forgetMark) raise(at time.Time) {
	n := at.UnixNano()
	for {
		old := f.ns.Load()
		if old >= n || f.ns.CompareAndSwap(old, n) {
			return
		}
	}
}

// load returns the mark, the zero time if it was never raised.
func (f *forgetMark) load() time.Time {
	if n := f.ns.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
