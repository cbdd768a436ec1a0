package replay

import (
	"sync/atomic"
	"testing"
	"time"
)

// The ticker calls its function until Stop, and none after Stop returns.
func TestTicker(t *testing.T) {
	var n atomic.Int64
	tk := StartTicker(time.Millisecond, func() { n.Add(1) })
	for n.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	tk.Stop()
	after := n.Load()
	time.Sleep(20 * time.Millisecond)
	if n.Load() != after {
		t.Errorf("called %d times after Stop", n.Load()-after)
	}
}
