package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// testFreshThenReplayed: a new key is fresh; the same key again, however
// often, is not.
func testFreshThenReplayed(t *testing.T, e *env) {
	e.mustRecord(t, Key(1), true)
	for range 3 {
		e.mustRecord(t, Key(1), false)
	}
}

// testSeen: Seen is false for a new key and records nothing; it is true
// once the key is recorded, and consumes nothing either.
func testSeen(t *testing.T, e *env) {
	e.mustSeen(t, Key(1), false)
	e.mustSeen(t, Key(1), false)
	e.mustRecord(t, Key(1), true)
	e.mustSeen(t, Key(1), true)
	e.mustSeen(t, Key(1), true)
	e.mustRecord(t, Key(1), false)
	e.mustSeen(t, Key(2), false)
}

// testDistinctKeys: keys are independent, down to one bit: recording some
// leaves the others fresh, and each is fresh once.
func testDistinctKeys(t *testing.T, e *env) {
	const n = 100
	for i := 0; i < n; i += 2 {
		e.mustRecord(t, Key(i), true)
	}
	for i := 1; i < n; i += 2 {
		e.mustSeen(t, Key(i), false)
		e.mustRecord(t, Key(i), true)
	}
	for i := range n {
		e.mustRecord(t, Key(i), false)
	}
	near := Key(0)
	near[replay.KeySize-1] ^= 1
	e.mustSeen(t, near, false)
	e.mustRecord(t, near, true)
}

// testTTL: a record holds until its TTL has passed, and not after.
func testTTL(t *testing.T, e *env) {
	if e.clk == nil {
		testRealTTL(t, e)
		return
	}
	e.mustRecord(t, Key(1), true)
	e.clk.Add(e.ttl / 2)
	e.mustRecord(t, Key(2), true)
	e.clk.Add(e.ttl/2 - time.Nanosecond) // Key(1): a nanosecond before it expires
	e.mustSeen(t, Key(1), true)
	e.clk.Add(time.Nanosecond) // Key(1): its TTL has passed
	e.mustSeen(t, Key(1), false)
	e.mustSeen(t, Key(2), true)
	e.mustRecord(t, Key(1), true)
	e.mustRecord(t, Key(1), false) // the new record holds
	e.clk.Add(e.ttl / 2)           // Key(2) expires, the new Key(1) not
	e.mustRecord(t, Key(2), true)
	e.mustRecord(t, Key(1), false)
}

// testRealTTL is testTTL on real time. That a record holds is asserted only
// if the test ran within the TTL, as it does but on a stalled machine;
// that it expires, after waiting for it.
func testRealTTL(t *testing.T, e *env) {
	start := time.Now()
	e.mustRecord(t, Key(1), true)
	recorded := time.Now()
	seen, serr := e.store.Seen(t.Context(), Key(1))
	fresh, rerr := e.store.Record(t.Context(), Key(1))
	if time.Since(start) < e.ttl {
		if !seen || serr != nil || fresh || rerr != nil {
			t.Fatalf("within the TTL: Seen = %v, %v; Record = %v, %v; want seen, not fresh", seen, serr, fresh, rerr)
		}
	} else {
		t.Logf("the calls took more than the TTL (%v): whether the record held is not checked", e.ttl)
	}
	time.Sleep(time.Until(recorded.Add(e.ttl + e.ttl/5)))
	e.mustSeen(t, Key(1), false)
	e.mustRecord(t, Key(1), true)
}

// testConcurrentOneKey: of many concurrent Records of one key, exactly one
// is fresh.
func testConcurrentOneKey(t *testing.T, e *env) {
	const rounds, goroutines = 20, 16
	for r := range rounds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh := 0
		var errs []error
		start := make(chan struct{})
		for range goroutines {
			wg.Go(func() {
				<-start
				ok, err := e.store.Record(t.Context(), Key(r))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if ok {
					fresh++
				}
			})
		}
		close(start)
		wg.Wait()
		if fresh != 1 || len(errs) > 0 {
			t.Fatalf("round %d: %d of %d concurrent Records of one key fresh, errors %v; want 1, none", r, fresh, goroutines, errs)
		}
	}
}

// testConcurrentDistinctKeys: concurrent Records of distinct keys are each
// fresh, and each key then is not.
func testConcurrentDistinctKeys(t *testing.T, e *env) {
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				k := Key(g*each + i)
				if fresh, err := e.store.Record(t.Context(), k); err != nil || !fresh {
					errs <- errors.Join(err, errors.New("a new key, recorded concurrently with others, was not fresh"))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range goroutines * each {
		e.mustRecord(t, Key(i), false)
	}
}

// testLen: Len counts the records made, or is -1 throughout; replays and
// Seen add nothing.
func testLen(t *testing.T, e *env) {
	n := e.store.Len()
	if n != 0 && n != -1 {
		t.Fatalf("new store: Len = %d, want 0 (or -1)", n)
	}
	check := func(what string, want int) {
		t.Helper()
		if n == -1 {
			want = -1
		}
		if got := e.store.Len(); got != want {
			t.Fatalf("%s: Len = %d, want %d", what, got, want)
		}
	}
	for i := range 10 {
		e.mustRecord(t, Key(i), true)
	}
	check("after 10 records", 10)
	e.mustRecord(t, Key(3), false)
	check("after a replay", 10)
	e.mustSeen(t, Key(10), false)
	check("after Seen", 10)
}

// testForgottenAt: a store that lost nothing reports no loss, through
// records, replays, Seen and expiry.
func testForgottenAt(t *testing.T, e *env) {
	check := func(what string) {
		t.Helper()
		if at := e.store.ForgottenAt(); !at.IsZero() {
			t.Fatalf("%s: ForgottenAt = %v, want zero: nothing was lost", what, at)
		}
	}
	check("new store")
	e.mustRecord(t, Key(1), true)
	check("after a record")
	e.mustRecord(t, Key(1), false)
	e.mustSeen(t, Key(1), true)
	check("after a replay and Seen")
	if e.clk != nil {
		e.clk.Add(e.ttl)
		e.mustRecord(t, Key(1), true)
		check("after expiry")
	}
}

// testForget: once the store lost records, the Record that could take one
// for fresh finds ForgottenAt at or after that record was made, and not
// in the future; a later loss moves it on, never back.
func testForget(t *testing.T, e *env) {
	if e.suite.Forget == nil {
		t.Skip("the store under test has no way to lose records here")
	}
	last := time.Time{}
	for i := range 2 {
		made := e.now()
		e.mustRecord(t, Key(i), true)
		if e.clk != nil {
			e.clk.Add(e.ttl / 4)
		}
		e.suite.Forget(t, e.store, e.now())
		if fresh, err := e.store.Record(t.Context(), Key(i)); err != nil && fresh {
			t.Fatalf("loss %d: Record = fresh with the error %v", i+1, err)
		}
		at := e.store.ForgottenAt()
		if at.Before(made) || at.After(e.now()) || at.Before(last) {
			t.Fatalf("loss %d: ForgottenAt = %v; want from %v (the record it may have lost, and %v, the previous loss) to %v (now)",
				i+1, at, made, last, e.now())
		}
		e.mustSeen(t, Key(i), true) // recorded again, or kept
		if again := e.store.ForgottenAt(); !again.Equal(at) {
			t.Fatalf("loss %d: ForgottenAt moved from %v to %v with no further loss", i+1, at, again)
		}
		last = at
	}
}

// testForgetSome: once the store lost some of its records, each key it
// reports fresh again (or cannot answer for) is covered by ForgottenAt,
// and every key it reports recorded stays so: a loss of a part is no less
// a loss than a loss of all.
func testForgetSome(t *testing.T, e *env) {
	if e.suite.ForgetSome == nil {
		t.Skip("the store under test cannot lose a part of its records")
	}
	const n = 200
	made := e.now()
	for i := range n {
		e.mustRecord(t, Key(i), true)
	}
	if e.clk != nil {
		e.clk.Add(e.ttl / 4)
	}
	e.suite.ForgetSome(t, e.store)
	again := 0
	for i := range n {
		fresh, err := e.store.Record(t.Context(), Key(i))
		if !fresh && err == nil {
			continue
		}
		again++
		if at := e.store.ForgottenAt(); at.Before(made) || at.After(e.now()) {
			t.Fatalf("Record(%v) after a partial loss = %v, %v, with ForgottenAt = %v: want ForgottenAt from %v (its record) to %v (now)",
				Key(i), fresh, err, at, made, e.now())
		}
	}
	if again == 0 {
		t.Fatalf("none of the %d records was lost: the suite's ForgetSome lost nothing", n)
	}
}

// testClose: Close succeeds; from then on Record and Seen fail with
// ErrClosed (an ErrUnavailable), Record never fresh; Len and ForgottenAt
// still answer; a second Close does nothing.
func testClose(t *testing.T, e *env) {
	e.mustRecord(t, Key(1), true)
	if err := e.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, k := range []replay.Key{Key(1), Key(2)} {
		fresh, err := e.store.Record(t.Context(), k)
		if fresh || !errors.Is(err, replay.ErrClosed) || !errors.Is(err, replay.ErrUnavailable) {
			t.Errorf("Record(%v) after Close = %v, %v; want false, ErrClosed", k, fresh, err)
		}
		if _, err := e.store.Seen(t.Context(), k); !errors.Is(err, replay.ErrClosed) {
			t.Errorf("Seen(%v) after Close: error %v, want ErrClosed", k, err)
		}
	}
	if n := e.store.Len(); n < -1 {
		t.Errorf("Len after Close = %d", n)
	}
	e.store.ForgottenAt()
	if err := e.store.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
