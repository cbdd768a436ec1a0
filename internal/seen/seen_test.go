package seen

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/testclock"
	"github.com/tokenauthd/tokenauthd/replay"
)

const day = 24 * time.Hour

func newBook(t *testing.T, o Options) (*Book, *testclock.Clock) {
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	o.Now = clk.Now
	b := New(replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: 100, Now: clk.Now}), o)
	t.Cleanup(func() { b.Close() })
	return b, clk
}

// TestKnown: who is known after which logins, table-driven. Each step
// moves the clock, then logs a user in or asks.
func TestKnown(t *testing.T) {
	type step struct {
		after       time.Duration // clock moved first
		login       string        // "user@host" logged in, or ""
		ask         string        // "user@host" asked, or ""
		want, wrote bool
	}
	const seenFor = 90 * day
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"never logged in", []step{{ask: "alice@a"}}},
		{"logged in", []step{{login: "alice@a", wrote: true}, {ask: "alice@a", want: true}}},
		{"another host", []step{{login: "alice@a", wrote: true}, {ask: "alice@b"}}},
		{"another user", []step{{login: "alice@a", wrote: true}, {ask: "carol@a"}}},
		{"names as passed", []step{{login: "alice@a", wrote: true}, {ask: "Alice@a"}}},
		{"no ambiguous split", []step{{login: "lice@ba", wrote: true}, {ask: "alice@b"}}},
		{"until seen_for", []step{{login: "alice@a", wrote: true}, {after: seenFor - time.Second, ask: "alice@a", want: true},
			{after: time.Second, ask: "alice@a"}}},
		{"one write a day", []step{{login: "alice@a", wrote: true}, {after: day - time.Second, login: "alice@a"},
			{after: time.Second, login: "alice@a", wrote: true}}},
		{"a later login extends", []step{{login: "alice@a", wrote: true}, {after: 2 * day, login: "alice@a", wrote: true},
			{after: seenFor - day, ask: "alice@a", want: true}}},
		{"an unwritten login does not extend", []step{{login: "alice@a", wrote: true}, {after: day / 2, login: "alice@a"},
			{after: seenFor - day/2, ask: "alice@a"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, clk := newBook(t, Options{})
			ctx := context.Background()
			for i, s := range c.steps {
				clk.Add(s.after)
				if s.login != "" {
					user, host := split(s.login)
					wrote, err := b.Login(ctx, host, user, seenFor)
					if err != nil || wrote != s.wrote {
						t.Fatalf("step %d: Login(%s) = %v, %v; want %v", i, s.login, wrote, err, s.wrote)
					}
				}
				if s.ask != "" {
					user, host := split(s.ask)
					if got, err := b.Known(ctx, host, user, seenFor); err != nil || got != s.want {
						t.Fatalf("step %d: Known(%s) = %v, %v; want %v", i, s.ask, got, err, s.want)
					}
				}
			}
		})
	}
}

func split(jid string) (user, host string) {
	for i := range jid {
		if jid[i] == '@' {
			return jid[:i], jid[i+1:]
		}
	}
	return jid, ""
}

// TestShortSeenFor: with seen_for shorter than 16 days a mark is written
// again every sixteenth of it, and seen_for 0 marks nothing.
func TestShortSeenFor(t *testing.T) {
	b, clk := newBook(t, Options{})
	ctx := context.Background()
	b.Login(ctx, "a", "alice", 16*time.Hour)
	clk.Add(time.Hour)
	if wrote, _ := b.Login(ctx, "a", "alice", 16*time.Hour); !wrote {
		t.Error("a login an hour later wrote nothing, with seen_for 16 h")
	}
	if wrote, _ := b.Login(ctx, "a", "bob", 0); wrote {
		t.Error("seen_for 0 wrote a mark")
	}
	if ok, _ := b.Known(ctx, "a", "bob", time.Hour); ok {
		t.Error("bob known after a login with seen_for 0")
	}
}

// failingMarks is a store that cannot answer.
type failingMarks struct{ replay.Marks }

func (failingMarks) Mark(context.Context, replay.Key, time.Time, time.Time) error {
	return replay.ErrUnavailable
}
func (failingMarks) Marked(context.Context, replay.Key) (time.Time, error) {
	return time.Time{}, replay.ErrUnavailable
}

// TestUnavailable: a store that cannot answer makes no user known, and
// its errors are counted.
func TestUnavailable(t *testing.T) {
	b := New(failingMarks{replay.NewMemoryMarks(replay.MemoryMarksOptions{})}, Options{})
	ctx := context.Background()
	if _, err := b.Login(ctx, "a", "alice", day); !errors.Is(err, replay.ErrUnavailable) {
		t.Errorf("Login = %v, want ErrUnavailable", err)
	}
	if ok, err := b.Known(ctx, "a", "alice", day); ok || err == nil {
		t.Errorf("Known = %v, %v; want false and an error", ok, err)
	}
	if s := b.Stats(); s.WriteErrors != 1 || s.ReadErrors != 1 || s.Writes != 0 {
		t.Errorf("Stats = %+v, want one error each, no write", s)
	}
}

// TestLost: when the store reports a loss, the next login writes its mark
// again at once, and the loss is counted and reported once.
func TestLost(t *testing.T) {
	var lost time.Time
	var reports int
	b, clk := newBook(t, Options{LostSince: func() time.Time { return lost }, OnLost: func(time.Time) { reports++ }})
	ctx := context.Background()
	b.Login(ctx, "a", "alice", 90*day)
	clk.Add(time.Minute)
	lost = clk.Now()
	for range 2 {
		clk.Add(time.Minute)
		b.Login(ctx, "a", "alice", 90*day)
	}
	if s := b.Stats(); s.Writes != 2 || s.Losses != 1 || reports != 1 {
		t.Errorf("Stats = %+v, reports %d; want 2 writes, 1 loss, 1 report", s, reports)
	}
}

// TestEvictions: users forced out of a store by its capacity are counted.
func TestEvictions(t *testing.T) {
	clk := testclock.New(time.Unix(1_700_000_000, 0))
	b := New(replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: 2, Now: clk.Now}), Options{Now: clk.Now})
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol"} {
		b.Login(ctx, "a", u, day)
	}
	if ok, _ := b.Known(ctx, "a", "alice", day); ok {
		t.Error("alice known past the capacity")
	}
	if s := b.Stats(); s.Evictions != 1 || s.Marks != 2 {
		t.Errorf("Stats = %+v, want 1 eviction, 2 marks", s)
	}
}
