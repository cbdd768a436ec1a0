package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

// MarksSuite describes the replay.Marks under test.
type MarksSuite struct {
	// New returns a new, empty Marks reading the clock now (the suite's,
	// or time.Now on real time). It must hold at least Capacity marks.
	// The suite closes it.
	New func(t *testing.T, now func() time.Time) replay.Marks
	// RealTime is set for marks that expire on a clock the suite cannot
	// move (Redis's): the suite then waits for them to expire.
	RealTime bool
	// Precision is the finest time the store keeps (0: a nanosecond);
	// moments are compared truncated to it.
	Precision time.Duration
}

// RunMarks runs the suite of replay.Marks: each promise in a subtest of its
// own, each on a new store.
func RunMarks(t *testing.T, s MarksSuite) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, *marksEnv)
	}{
		{"UnmarkedIsZero", testMarksUnmarked},
		{"LaterWins", testMarksLaterWins},
		{"DistinctKeys", testMarksDistinct},
		{"Until", testMarksUntil},
		{"Concurrent", testMarksConcurrent},
		{"Close", testMarksClose},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newMarksEnv(t, s)) })
	}
}

// marksEnv is one subtest's store and clock.
type marksEnv struct {
	suite MarksSuite
	m     replay.Marks
	clk   *testclock.Clock // nil on real time
}

func newMarksEnv(t *testing.T, s MarksSuite) *marksEnv {
	e := &marksEnv{suite: s}
	now := time.Now
	if !s.RealTime {
		e.clk = testclock.New(time.Unix(1_700_000_000, 0))
		now = e.clk.Now
	}
	e.m = s.New(t, now)
	t.Cleanup(func() { e.m.Close() })
	return e
}

func (e *marksEnv) now() time.Time {
	if e.clk == nil {
		return time.Now()
	}
	return e.clk.Now()
}

// trunc cuts t to the store's precision.
func (e *marksEnv) trunc(t time.Time) time.Time {
	if e.suite.Precision > 0 {
		return t.Truncate(e.suite.Precision)
	}
	return t
}

// mark calls Mark, which must not fail.
func (e *marksEnv) mark(t *testing.T, k replay.Key, at, until time.Time) {
	t.Helper()
	if err := e.m.Mark(t.Context(), k, at, until); err != nil {
		t.Fatalf("Mark(%v) = %v", k, err)
	}
}

// mustMarked fails unless Marked(k) is want (the zero time: unmarked).
func (e *marksEnv) mustMarked(t *testing.T, k replay.Key, want time.Time) {
	t.Helper()
	got, err := e.m.Marked(t.Context(), k)
	if err != nil || !got.Equal(e.trunc(want)) {
		t.Fatalf("Marked(%v) = %v, %v; want %v", k, got, err, e.trunc(want))
	}
}

// testMarksUnmarked: a key never marked has no moment, and asking marks
// nothing.
func testMarksUnmarked(t *testing.T, e *marksEnv) {
	e.mustMarked(t, Key(1), time.Time{})
	e.mustMarked(t, Key(1), time.Time{})
}

// testMarksLaterWins: the latest moment is kept; an earlier mark (a slower
// node's) never moves it back; an equal one may only extend its end.
func testMarksLaterWins(t *testing.T, e *marksEnv) {
	now := e.now()
	until := now.Add(time.Hour)
	e.mark(t, Key(1), now.Add(-time.Minute), until)
	e.mustMarked(t, Key(1), now.Add(-time.Minute))
	e.mark(t, Key(1), now, until)
	e.mustMarked(t, Key(1), now)
	e.mark(t, Key(1), now.Add(-2*time.Minute), until.Add(time.Hour))
	e.mustMarked(t, Key(1), now)
	e.mark(t, Key(1), now, until.Add(time.Hour))
	e.mustMarked(t, Key(1), now)
}

// testMarksDistinct: keys are independent.
func testMarksDistinct(t *testing.T, e *marksEnv) {
	now := e.now()
	for i := 0; i < 100; i += 2 {
		e.mark(t, Key(i), now, now.Add(time.Hour))
	}
	for i := range 100 {
		want := time.Time{}
		if i%2 == 0 {
			want = now
		}
		e.mustMarked(t, Key(i), want)
	}
	if n := e.m.Len(); n != -1 && n != 50 {
		t.Errorf("Len() = %d, want 50 (or -1)", n)
	}
}

// testMarksUntil: a mark is kept until its end and not after; a mark whose
// end has passed records nothing.
func testMarksUntil(t *testing.T, e *marksEnv) {
	now := e.now()
	span := time.Hour
	if e.clk == nil {
		span = 300 * time.Millisecond
	}
	e.mark(t, Key(1), now, now.Add(span))
	e.mark(t, Key(2), now, now.Add(-time.Second))
	e.mustMarked(t, Key(1), now)
	e.mustMarked(t, Key(2), time.Time{})
	if e.clk != nil {
		e.clk.Add(span - time.Nanosecond)
		e.mustMarked(t, Key(1), now)
		e.clk.Add(time.Nanosecond)
	} else {
		time.Sleep(span + 50*time.Millisecond)
	}
	e.mustMarked(t, Key(1), time.Time{})
}

// testMarksConcurrent: of concurrent marks of one key the latest moment is
// kept, whatever the order they arrive in.
func testMarksConcurrent(t *testing.T, e *marksEnv) {
	now := e.now()
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := now.Add(time.Duration(i) * time.Second)
			errs <- e.m.Mark(t.Context(), Key(1), at, at.Add(time.Hour))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.mustMarked(t, Key(1), now.Add((n-1)*time.Second))
}

// testMarksClose: once closed, Mark and Marked fail with ErrClosed, and
// closing again does nothing.
func testMarksClose(t *testing.T, e *marksEnv) {
	now := e.now()
	e.mark(t, Key(1), now, now.Add(time.Hour))
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Mark(t.Context(), Key(2), now, now.Add(time.Hour)); !errors.Is(err, replay.ErrClosed) {
		t.Errorf("Mark after Close = %v, want ErrClosed", err)
	}
	if at, err := e.m.Marked(t.Context(), Key(1)); !errors.Is(err, replay.ErrClosed) || !at.IsZero() {
		t.Errorf("Marked after Close = %v, %v; want zero, ErrClosed", at, err)
	}
	if err := e.m.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
