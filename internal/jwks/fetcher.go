package jwks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenauthd/tokenauthd/verifier"
)

// The refresh rules.
const (
	// MinRefresh and MaxRefresh clamp a response's max-age; no max-age,
	// or no-store, counts as MinRefresh.
	MinRefresh = 5 * time.Minute
	MaxRefresh = 24 * time.Hour
	// MinRefetch is the least time between two fetches asked for by JWTs
	// of an unknown kid: any fetch counts.
	MinRefetch = 60 * time.Second
	// DefaultMaxStale is how long after the last successful fetch a set
	// stays in use when fetching fails.
	DefaultMaxStale = 24 * time.Hour
	// maxRetry bounds the wait between failed fetches, which starts at
	// one second and doubles.
	maxRetry = MinRefetch
	// maxWait bounds how long a request waits for a fetch under way (the
	// first one, or one its unknown kid asked for); the fetch goes on.
	maxWait = 2 * time.Second
)

// Spec says where a host's keys are.
type Spec struct {
	// URL is the JWK Set's (keys_url); with Discovery, "".
	URL string
	// Discovery: the URL is the jwks_uri of Issuer's discovery document.
	Discovery bool
	Issuer    string
	// CAFile is a PEM bundle of the CAs to trust ("" for the system's).
	CAFile string
	// MaxStale is how long the last good set stays in use after the last
	// successful fetch (DefaultMaxStale if 0).
	MaxStale time.Duration
}

// Where returns what the keys are fetched from, for logs.
func (s Spec) Where() string {
	if s.Discovery {
		return DiscoveryURL(s.Issuer)
	}
	return redact(s.URL)
}

// Fetcher keeps one host's key set fresh. It is a verifier.KeySource.
type Fetcher struct {
	spec   Spec
	parse  func([]byte) (*verifier.KeySet, error)
	client *http.Client
	now    func() time.Time
	log    *slog.Logger
	kick   chan struct{} // wakes the background loop

	mu       sync.Mutex
	maxStale time.Duration
	set      *verifier.KeySet
	fetched  time.Time     // of the last successful fetch
	attempt  time.Time     // the last fetch's start
	next     time.Time     // when the background loop fetches next
	failures int           // since the last success
	lastErr  error         // of the last fetch, nil after a success
	inflight chan struct{} // closed when the fetch under way ends
	stale    bool          // the set was said to be stale
	cancel   context.CancelFunc
	ctx      context.Context // the fetches'; ended by Stop
}

var _ verifier.KeySource = (*Fetcher)(nil)

// Options are a Fetcher's collaborators.
type Options struct {
	// Parse parses a fetched set (the host's verifier.JWT.ParseKeySet).
	Parse func([]byte) (*verifier.KeySet, error)
	// Client, if set, replaces the client made from the Spec (tests).
	Client *http.Client
	Now    func() time.Time // time.Now if nil
	Log    *slog.Logger     // discarded if nil
}

// New returns a fetcher of spec that has fetched nothing yet: Start
// fetches in the background, FetchOnce in the foreground. It reads the CA
// file; its errors are the configuration's.
func New(spec Spec, o Options) (*Fetcher, error) {
	if spec.Discovery {
		if err := CheckIssuer(spec.Issuer); err != nil {
			return nil, fmt.Errorf("issuer: %w", err)
		}
	} else if err := CheckURL(spec.URL); err != nil {
		return nil, fmt.Errorf("keys_url: %w", err)
	}
	if spec.MaxStale <= 0 {
		spec.MaxStale = DefaultMaxStale
	}
	f := &Fetcher{spec: spec, parse: o.Parse, client: o.Client, now: o.Now, log: o.Log,
		kick: make(chan struct{}, 1), maxStale: spec.MaxStale}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.client == nil {
		c, err := newClient(spec.CAFile, plainHTTP(spec))
		if err != nil {
			return nil, err
		}
		f.client = c
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	return f, nil
}

// plainHTTP reports whether the spec's URL (or issuer) is http://: then
// every address dialled must be a loopback one.
func plainHTTP(s Spec) bool {
	u := s.URL
	if s.Discovery {
		u = s.Issuer
	}
	p, err := url.Parse(u)
	return err == nil && p.Scheme == "http"
}

// Start fetches now and then as the refresh rules say, in the background,
// until Stop. The first fetch is under way when it returns: a JWT that
// comes right after waits for it (KeySet).
func (f *Fetcher) Start() {
	go f.loop(f.start())
}

// Stop ends the background fetches. The set stays readable.
func (f *Fetcher) Stop() { f.cancel() }

// setMaxStale changes keys_max_stale (a reload).
func (f *Fetcher) setMaxStale(d time.Duration) {
	if d <= 0 {
		d = DefaultMaxStale
	}
	f.mu.Lock()
	f.maxStale = d
	f.mu.Unlock()
}

// loop waits for the fetch under way (done), then fetches when due, or
// when kicked, until Stop.
func (f *Fetcher) loop(done chan struct{}) {
	for {
		select {
		case <-done:
		case <-f.ctx.Done():
			return
		}
		f.mu.Lock()
		wait := f.next.Sub(f.now())
		f.mu.Unlock()
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-f.ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-f.kick:
			timer.Stop()
		}
		done = f.start()
	}
}

// FetchOnce fetches now and waits for the result (check-config).
func (f *Fetcher) FetchOnce(ctx context.Context) error {
	done := f.start()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// Status is what a fetcher has, for reports.
type Status struct {
	Kids, Skipped []string
	Fetched       time.Time // of the last good set; zero if none
	Next          time.Time // the next background fetch
	Err           error     // of the last fetch
}

// Status returns what the fetcher has now.
func (f *Fetcher) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Status{Fetched: f.fetched, Next: f.next, Err: f.lastErr}
	if f.set != nil {
		s.Kids, s.Skipped = f.set.Kids(), f.set.Skipped()
	}
	return s
}

// start begins a fetch unless one is under way, and returns the channel
// closed when the fetch under way ends.
func (f *Fetcher) start() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.startLocked()
}

// startLocked is start, f.mu held.
func (f *Fetcher) startLocked() chan struct{} {
	if f.inflight != nil {
		return f.inflight
	}
	done := make(chan struct{})
	f.inflight, f.attempt = done, f.now()
	go f.fetch(done)
	return done
}

// fetch fetches and parses the set, and records the outcome.
func (f *Fetcher) fetch(done chan struct{}) {
	ctx, cancel := context.WithTimeout(f.ctx, FetchTimeout)
	defer cancel()
	set, header, err := f.get(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	defer close(done)
	f.inflight = nil
	now := f.now()
	if err != nil {
		f.failures++
		f.lastErr = err
		f.next = now.Add(retryAfter(f.failures))
		f.logFailure(now, err)
		return
	}
	changed := f.set == nil || !sameKids(f.set, set)
	f.set, f.fetched, f.failures, f.lastErr, f.stale = set, now, 0, nil, false
	f.next = now.Add(refreshAfter(header, f.maxStale))
	if changed {
		f.log.Info("JWT keys fetched", "from", f.spec.Where(), "kids", strings.Join(set.Kids(), ","),
			"skipped", len(set.Skipped()), "next_refresh", f.next.Sub(now).Round(time.Second).String())
		for _, s := range set.Skipped() {
			f.log.Debug("JWT key left out", "from", f.spec.Where(), "detail", s)
		}
	}
}

// get fetches the set: the discovery document first, with Discovery.
func (f *Fetcher) get(ctx context.Context) (*verifier.KeySet, http.Header, error) {
	u := f.spec.URL
	if f.spec.Discovery {
		var err error
		if u, err = discover(ctx, f.client, f.spec.Issuer); err != nil {
			return nil, nil, err
		}
	}
	r, err := get(ctx, f.client, u)
	if err != nil {
		return nil, nil, err
	}
	set, err := f.parse(r.body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s", redact(u), verifier.Detail(err))
	}
	return set, r.header, nil
}

// logFailure logs a failed fetch: a warning while the last good set is
// still in use, an error once there is none.
func (f *Fetcher) logFailure(now time.Time, err error) {
	switch {
	case f.set == nil:
		f.log.Error("cannot fetch JWT keys; the host's JWTs are refused until a fetch succeeds (keys_unavailable)",
			"from", f.spec.Where(), "err", err, "retry_in", f.next.Sub(now).String())
	case now.Sub(f.fetched) > f.maxStale:
		f.log.Error("cannot fetch JWT keys, and the last set is older than keys_max_stale: the host's JWTs are refused (keys_unavailable)",
			"from", f.spec.Where(), "err", err, "fetched", f.fetched.UTC().Format(time.RFC3339), "keys_max_stale", f.maxStale.String())
	default:
		f.log.Warn("cannot fetch JWT keys; the last set stays in use until keys_max_stale",
			"from", f.spec.Where(), "err", err, "fetched", f.fetched.UTC().Format(time.RFC3339),
			"keys_max_stale", f.maxStale.String(), "retry_in", f.next.Sub(now).String())
	}
}

// KeySet implements verifier.KeySource: the last good set, unless none
// was fetched yet (a request waits, within ctx and maxWait, for a first
// fetch under way) or it is older than keys_max_stale.
func (f *Fetcher) KeySet(ctx context.Context) (*verifier.KeySet, error) {
	f.mu.Lock()
	if f.set == nil && f.inflight != nil {
		done := f.inflight
		f.mu.Unlock()
		wait(ctx, done)
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	now := f.now()
	switch {
	case f.set == nil && f.lastErr != nil:
		return nil, fmt.Errorf("no key set fetched yet from %s: %v", f.spec.Where(), f.lastErr)
	case f.set == nil:
		return nil, fmt.Errorf("no key set fetched yet from %s", f.spec.Where())
	case now.Sub(f.fetched) > f.maxStale:
		if !f.stale {
			f.stale = true
			f.log.Error("the JWT key set is older than keys_max_stale: the host's JWTs are refused (keys_unavailable) until a fetch succeeds",
				"from", f.spec.Where(), "fetched", f.fetched.UTC().Format(time.RFC3339), "keys_max_stale", f.maxStale.String())
			f.kickLocked()
		}
		return nil, fmt.Errorf("the key set from %s was last fetched %v ago, more than keys_max_stale %v (last error: %v)",
			f.spec.Where(), now.Sub(f.fetched).Round(time.Second), f.maxStale, f.lastErr)
	}
	return f.set, nil
}

// Refresh implements verifier.KeySource: a JWT named a kid that set
// lacks. It fetches again unless a fetch started less than MinRefetch ago,
// and waits for it within ctx and maxWait.
func (f *Fetcher) Refresh(ctx context.Context, set *verifier.KeySet) *verifier.KeySet {
	f.mu.Lock()
	switch {
	case f.set != set && f.set != nil: // fetched since
		defer f.mu.Unlock()
		return f.set
	case f.inflight == nil && f.now().Sub(f.attempt) < MinRefetch:
		defer f.mu.Unlock()
		return set
	}
	// Under the same lock as the check: two requests never start two
	// fetches within MinRefetch.
	done := f.startLocked()
	f.mu.Unlock()
	wait(ctx, done)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.set == nil || f.now().Sub(f.fetched) > f.maxStale {
		return set
	}
	return f.set
}

// kickLocked wakes the background loop, if it sleeps.
func (f *Fetcher) kickLocked() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// wait waits for done, ctx's end or maxWait.
func wait(ctx context.Context, done <-chan struct{}) {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// sameKids reports whether two sets name the same keys.
func sameKids(a, b *verifier.KeySet) bool {
	return strings.Join(a.Kids(), "\x00") == strings.Join(b.Kids(), "\x00")
}

// retryAfter is the wait after the n-th failure in a row: 1 s, doubling,
// at most maxRetry.
func retryAfter(n int) time.Duration {
	if n > 7 {
		return maxRetry
	}
	return min(time.Duration(1<<(n-1))*time.Second, maxRetry)
}

// refreshAfter is when to fetch again after a success: the response's
// Cache-Control max-age clamped to [MinRefresh, MaxRefresh] (MinRefresh
// without one, or with no-store or no-cache), and at most half of
// maxStale, so that a set is refreshed twice before it goes stale.
func refreshAfter(h http.Header, maxStale time.Duration) time.Duration {
	d := MinRefresh
	if age, ok := maxAge(h.Values("Cache-Control")); ok {
		d = min(max(age, MinRefresh), MaxRefresh)
	}
	return min(d, maxStale/2)
}

// maxAge reads max-age from Cache-Control header values; ok is false
// without one, or with no-store or no-cache (RFC 9111 §5.2.2).
func maxAge(values []string) (time.Duration, bool) {
	var age time.Duration
	found := false
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0, false
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					return 0, false
				}
				age, found = time.Duration(min(n, int64(MaxRefresh/time.Second)))*time.Second, true
			}
		}
	}
	return age, found
}
