package testclock

import (
	"sync"
	"testing"
	"time"
)

// The clock reads what it was set to and moves only when told, and may be
// read while it is moved (go test -race).
func TestClock(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	c := New(start)
	for _, step := range []struct {
		move func()
		want time.Time
	}{
		{func() {}, start},
		{func() { c.Add(30 * time.Second) }, start.Add(30 * time.Second)},
		{func() { c.Add(-time.Minute) }, start.Add(-30 * time.Second)},
		{func() { c.Set(start.Add(time.Hour)) }, start.Add(time.Hour)},
	} {
		step.move()
		if got := c.Now(); !got.Equal(step.want) {
			t.Errorf("Now() = %v, want %v", got, step.want)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 100 {
			c.Add(time.Second)
		}
	})
	for range 100 {
		c.Now()
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(time.Hour+100*time.Second); !got.Equal(want) {
		t.Errorf("after 100 steps of 1 s: %v, want %v", got, want)
	}
}
