package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimit is the API's listener: it admits at most max connections at
// once. When every slot is taken and a new connection arrives, the
// connection idle the longest between two requests (kept alive) is closed
// to admit it, so that idle connections, which cost a client nothing to
// renew, cannot hold the API; without an idle one, the new connection
// waits for a slot, which the server's timeouts free.
type connLimit struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	idle map[net.Conn]time.Time // as http.Server's ConnState names them
}

func newConnLimit(l net.Listener, max int) *connLimit {
	return &connLimit{Listener: l, slots: make(chan struct{}, max), done: make(chan struct{}), idle: map[net.Conn]time.Time{}}
}

// Accept waits for a connection, then for a slot for it.
func (l *connLimit) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, free: func() { <-l.slots }}, nil
		default:
		}
		if l.closeIdlest() {
			continue // its Close freed a slot
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, free: func() { <-l.slots }}, nil
		case <-time.After(50 * time.Millisecond): // an idle one may have come
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close stops Accept.
func (l *connLimit) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// track is the server's ConnState: it keeps the connections idle between
// requests.
func (l *connLimit) track(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		l.idle[c] = time.Now()
	} else {
		delete(l.idle, c)
	}
}

// closeIdlest closes the connection idle the longest, if any.
func (l *connLimit) closeIdlest() bool {
	l.mu.Lock()
	var oldest net.Conn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// limitedConn frees its slot when it is first closed.
type limitedConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
