package jwks

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenauthd/tokenauthd/verifier"
)

// Host is what a host's keys need: where they are, and the settings whose
// algorithms say which keys of a set are usable.
type Host struct {
	Spec Spec
	JWT  *verifier.JWT
}

// Pool keeps the fetchers of a serving process, one per host whose keys
// are fetched, across reloads: a host whose Spec (but keys_max_stale) and
// algorithms did not change keeps its fetcher, and so its set.
type Pool struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	fetchers map[string]*poolEntry // by host
	closed   bool
}

type poolEntry struct {
	key string // what must not change for the fetcher to be kept
	f   *Fetcher
}

// NewPool returns an empty pool. now is time.Now if nil.
func NewPool(log *slog.Logger, now func() time.Time) *Pool {
	return &Pool{log: log, now: now, fetchers: map[string]*poolEntry{}}
}

// Attach gives each host's JWT settings its fetcher as key source
// (verifier.JWT.Keys): the one it had, or a new one, started. It returns
// done, to call once the verifier built on the settings is in use
// (done(true): the fetchers no host uses any more stop) or is not
// (done(false): the fetchers this call started stop). Its errors are the
// configuration's (a CA file that cannot be read).
func (p *Pool) Attach(hosts map[string]Host) (done func(inUse bool), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("jwks: the pool is closed")
	}
	next := map[string]*poolEntry{}
	var started []*Fetcher
	for _, name := range slices.Sorted(maps.Keys(hosts)) {
		h := hosts[name]
		key := entryKey(h)
		e := p.fetchers[name]
		if e == nil || e.key != key {
			f, err := New(h.Spec, Options{Parse: h.JWT.ParseKeySet, Now: p.now, Log: p.log.With("host", name)})
			if err != nil {
				for _, s := range started {
					s.Stop()
				}
				return nil, fmt.Errorf("hosts.%q.jwt: %w", name, err)
			}
			e = &poolEntry{key: key, f: f}
			started = append(started, f)
		} else {
			e.f.setMaxStale(h.Spec.MaxStale)
		}
		next[name] = e
		h.JWT.Keys = e.f
	}
	for _, f := range started {
		f.Start()
	}
	return func(inUse bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !inUse || p.closed {
			for _, f := range started {
				f.Stop()
			}
			return
		}
		for name, e := range p.fetchers {
			if n := next[name]; n == nil || n.f != e.f {
				e.f.Stop()
			}
		}
		p.fetchers = next
	}, nil
}

// entryKey is what must not change for a host's fetcher to be kept.
func entryKey(h Host) string {
	s := h.Spec
	return strings.Join([]string{s.URL, fmt.Sprint(s.Discovery), s.Issuer, s.CAFile, strings.Join(h.JWT.Algorithms, ",")}, "\x00")
}

// Close stops every fetcher.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, e := range p.fetchers {
		e.f.Stop()
	}
	p.fetchers = nil
}
