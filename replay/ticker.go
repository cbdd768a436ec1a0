package replay

import "time"

// Ticker runs a store's background work (a journal's fsync, the Redis
// store's marker check) every interval, in a goroutine of its own, until
// Stop.
type Ticker struct {
	stop chan struct{}
	done chan struct{}
}

// StartTicker calls fn every interval until Stop.
func StartTicker(every time.Duration, fn func()) *Ticker {
	t := &Ticker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				fn()
			case <-t.stop:
				return
			}
		}
	}()
	return t
}

// Stop ends the calls and waits for one in progress to return. It must be
// called once.
func (t *Ticker) Stop() {
	close(t.stop)
	<-t.done
}
