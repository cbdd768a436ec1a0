// Package storetest is the conformance suite of replay.Store: each store
// runs it from its own tests, a few lines calling Run, and a store that
// does not pass it is not done. RunMarks is replay.Marks's likewise.
//
// It checks the promises of the Store interface only, through the
// interface: it must never know a particular store (they come to it
// through Suite.New), nor, like replay, what the keys stand for.
package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// TTL is the time to live the suite gives a store on its clock.
const TTL = 2 * time.Minute

// RealTTL is the time to live the suite gives a store on real time
// (Suite.RealTime): short, since the suite waits for records to expire.
const RealTTL = 500 * time.Millisecond

// Capacity is the least number of records a store under test must hold.
const Capacity = 1000

// Options is what the suite makes a store with.
type Options struct {
	// TTL is the time to live the store must give its records.
	TTL time.Duration
	// Now is the clock the store must read: the suite's, which it moves
	// forward, or time.Now on real time.
	Now func() time.Time
}

// Suite describes the store under test.
type Suite struct {
	// New returns a new, empty store made with o. It must hold at least
	// Capacity records, and have forgotten nothing (ForgottenAt zero): a
	// store that takes its first start for a loss is set up as a restart
	// after a clean stop. The suite closes it.
	New func(t *testing.T, o Options) replay.Store
	// RealTime is set for a store whose records expire on a clock the
	// suite cannot move (Redis's): it is then given RealTTL and time.Now,
	// and the suite waits for its records to expire.
	RealTime bool
	// RealTTL, if set, replaces the package's RealTTL on real time: for a
	// store whose calls are slower (a Redis Cluster's first connections),
	// so that a subtest's records do not expire while it runs.
	RealTTL time.Duration
	// Forget, if set, makes s lose the records it holds, as it can in
	// service (a flushed Redis), or declares that it did; now is the
	// moment of the loss on the store's clock. The suite then checks that
	// the store reports it. If nil, that check is skipped.
	Forget func(t *testing.T, s replay.Store, now time.Time)
	// ForgetSome, if set, makes s lose some of the records it holds but
	// not all of them, as a store spread over several servers does when
	// one of them loses its data (a Redis Cluster's master restarted
	// empty). The suite then checks that every record the store may take
	// for fresh again is covered by ForgottenAt. If nil, that check is
	// skipped.
	ForgetSome func(t *testing.T, s replay.Store)
}

// Run runs the suite: each promise of replay.Store in a subtest of its
// own, each on a new store.
func Run(t *testing.T, s Suite) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"FreshThenReplayed", testFreshThenReplayed},
		{"Seen", testSeen},
		{"DistinctKeys", testDistinctKeys},
		{"TTL", testTTL},
		{"ConcurrentOneKey", testConcurrentOneKey},
		{"ConcurrentDistinctKeys", testConcurrentDistinctKeys},
		{"Len", testLen},
		{"ForgottenAt", testForgottenAt},
		{"Forget", testForget},
		{"ForgetSome", testForgetSome},
		{"Close", testClose},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newEnv(t, s)) })
	}
}

// env is one subtest's store and clock.
type env struct {
	suite Suite
	store replay.Store
	clk   *testclock.Clock // nil on real time
	ttl   time.Duration
}

// newEnv makes a store for one subtest, and closes it at the end.
func newEnv(t *testing.T, s Suite) *env {
	e := &env{suite: s, ttl: RealTTL}
	o := Options{TTL: RealTTL, Now: time.Now}
	if s.RealTime && s.RealTTL > 0 {
		e.ttl, o.TTL = s.RealTTL, s.RealTTL
	}
	if !s.RealTime {
		e.clk = testclock.New(time.Unix(1_700_000_000, 0))
		e.ttl = TTL
		o = Options{TTL: TTL, Now: e.clk.Now}
	}
	e.store = s.New(t, o)
	t.Cleanup(func() { e.store.Close() })
	return e
}

// now reads the store's clock.
func (e *env) now() time.Time {
	if e.clk == nil {
		return time.Now()
	}
	return e.clk.Now()
}

// Key returns a key of its own for each i.
func Key(i int) replay.Key { return replay.HashKey([]byte(fmt.Sprint("storetest ", i))) }

// record calls Record, which must not fail, and returns whether key was
// fresh.
func (e *env) record(t *testing.T, key replay.Key) bool {
	t.Helper()
	fresh, err := e.store.Record(t.Context(), key)
	if err != nil {
		t.Fatalf("Record(%v) = %v, %v; want no error", key, fresh, err)
	}
	return fresh
}

// mustRecord records key and fails unless its freshness is want.
func (e *env) mustRecord(t *testing.T, key replay.Key, want bool) {
	t.Helper()
	if fresh := e.record(t, key); fresh != want {
		t.Fatalf("Record(%v) = %v, want %v", key, fresh, want)
	}
}

// mustSeen asks Seen, which must not fail, and fails unless it is want.
func (e *env) mustSeen(t *testing.T, key replay.Key, want bool) {
	t.Helper()
	seen, err := e.store.Seen(t.Context(), key)
	if err != nil || seen != want {
		t.Fatalf("Seen(%v) = %v, %v; want %v", key, seen, err, want)
	}
}
