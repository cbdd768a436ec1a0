// Package redis provides a replay.Store kept in Redis, shared by every
// process that uses the same server: a key one records is seen by all.
//
// It is a package of its own so that importing replay, or the verifier,
// links no Redis client. Its name is go-redis's too: callers that use both
// (New takes a go-redis client) import this one under another name, such
// as redisstore.
//
// Like replay, it must never know what the keys stand for: no tokens, users
// or hosts, no wire format.
package redis

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/replay"
)

// DefaultTimeout bounds one Redis call when Options.Timeout is 0.
const DefaultTimeout = 500 * time.Millisecond

// DefaultPrefix namespaces the keys when Options.Prefix is "".
const DefaultPrefix = "tokenauthd:"

// DefaultCheckInterval is how often the marker is checked when
// Options.CheckInterval is 0, besides on every new connection.
const DefaultCheckInterval = time.Second

// markerSuffix names the marker key after the prefix (after the bucket's
// hash tag in a Cluster). Record keys are 32 hexadecimal digits there:
// they cannot collide.
const markerSuffix = "epoch"

// Buckets is how many buckets a Cluster's records are spread over. Each
// bucket is a hash tag ({b00} to {b63}): its records and its own marker
// live in one slot, on one master, so that each record's script checks the
// marker of the node that holds the record, atomically.
const Buckets = 64

// Options configures a Redis store.
type Options struct {
	// Prefix is put before every key (DefaultPrefix if "").
	Prefix string
	// TTL is how long a record lives. Required.
	TTL time.Duration
	// Timeout bounds each call, retries included (DefaultTimeout if 0).
	Timeout time.Duration
	// MinReplicas, if above 0, is how many replicas must have a new record
	// (WAIT, for at most half the Timeout) before Record reports it fresh:
	// a replica promoted by a failover then holds it. Fewer is reported as
	// replay.ErrUnavailable.
	MinReplicas int
	// CheckInterval is how often the marker is checked besides on every
	// new connection (DefaultCheckInterval if 0).
	CheckInterval time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OnReplicas, if set, is called when a shard (a Cluster's master, or
	// the one master) is found, by the check every CheckInterval, to have
	// fewer replicas online than MinReplicas (short), and again when it
	// has enough: once per shard and change. shard is the master's
	// address ("master" but in a Cluster). Same rules as OnForget.
	OnReplicas func(shard string, online int, short bool)
	// OnForget, if set, is called when the store finds it may have lost
	// records: at is the moment it takes as ForgottenAt, why how it knows.
	// It runs on the request path or while a connection is set up: it must
	// not block nor call the store.
	OnForget func(at time.Time, why string)
}

// Store is a replay.Store on a Redis server, a Sentinel-managed one or a
// Cluster, shared by every process that uses the same server and prefix: a
// key recorded by one is seen by all.
//
// Each Record runs one script on the record's key: SET key value NX PX ttl,
// where value is random for each Record call, and if the key exists, fresh
// all the same if it holds that value. A retry of the call (go-redis
// resends a command whose reply was lost) thus finds its own record and
// reports fresh; any other call finds a record and reports not fresh.
//
// Redis can lose records: a restart without persistence, FLUSHALL, a
// failover to a replica that had not received them. To notice, the store
// keeps a marker key (prefix + "epoch", no expiry, a random value) and
// checks it on every new connection, before its first command, every
// CheckInterval, and within every Record and Seen script. A missing
// marker, or another value than the one this store knows, means records
// may have been lost: ForgottenAt moves to now, and the marker is made
// again (SET NX, then GET: every process adopts one value). With no marker
// at the first start, a new Redis cannot be told from one that lost its
// data: that is a loss too.
//
// In a Cluster, records are spread over Buckets hash-tagged buckets
// (prefix + "{b17}" + the key), each with its own marker (prefix +
// "{b17}epoch") in the same slot: every master holds the markers of the
// buckets it serves, and a master that lost its data is noticed by the
// first script that touches one of its buckets, as on one server. A slot
// moved to another master (resharding) takes its keys with it, the marker
// included: not a loss. Every bucket is checked every CheckInterval.
//
// It is safe for concurrent use.
type Store struct {
	c           goredis.UniversalClient
	cluster     bool
	prefix      string
	ttl         time.Duration
	timeout     time.Duration
	minReplicas int
	now         func() time.Time
	onForget    func(time.Time, string)

	markers  []string                 // the markers' keys: one, or one per bucket in a Cluster
	epochs   []atomic.Pointer[string] // the markers' values this store knows
	forgot   replay.ForgetMark
	replicas replicaWatch

	checks    *replay.Ticker // the marker check, every CheckInterval
	closeOnce sync.Once
	closed    atomic.Bool
}

var _ replay.Store = (*Store)(nil)

// recordScript records KEYS[1] for ARGV[2] ms with the value ARGV[1]: 1 if
// it was not recorded or holds ARGV[1] (a retry of this call), 0 if it
// holds another value. It returns -1 and records nothing unless KEYS[2]
// (the marker of KEYS[1]'s bucket) holds ARGV[3].
var recordScript = goredis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`)

// seenScript returns 1 if KEYS[1] is recorded, else 0; -1 unless KEYS[2]
// (the marker of its bucket) holds ARGV[1].
var seenScript = goredis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
return redis.call('EXISTS', KEYS[1])
`)

// New returns a Store on the client that newClient builds, which it
// owns from then on (Close closes it). newClient must set onConnect as the
// client's OnConnect option (goredis.Options, UniversalOptions...): it checks
// the marker on every new connection before its first use, so that a
// restarted Redis is noticed before the Record that reconnects to it.
func New(newClient func(onConnect func(context.Context, *goredis.Conn) error) goredis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Store{prefix: o.Prefix, ttl: o.TTL, timeout: o.Timeout,
		minReplicas: o.MinReplicas, now: o.Now, onForget: o.OnForget}
	r.replicas.on = o.OnReplicas
	r.c = newClient(r.onConnect)
	_, r.cluster = r.c.(*goredis.ClusterClient)
	r.markers = MarkerKeys(o.Prefix, r.cluster)
	r.epochs = make([]atomic.Pointer[string], len(r.markers))
	r.checks = replay.StartTicker(o.CheckInterval, r.checkNow)
	return r
}

// MarkerKeys returns the keys of the markers a store with prefix keeps:
// one, or one per bucket in a Cluster, in bucket order.
func MarkerKeys(prefix string, cluster bool) []string {
	if !cluster {
		return []string{prefix + markerSuffix}
	}
	m := make([]string, Buckets)
	for b := range m {
		m[b] = prefix + bucketTag(b) + markerSuffix
	}
	return m
}

// bucketTag is bucket b's hash tag.
func bucketTag(b int) string { return fmt.Sprintf("{b%02d}", b) }

// bucket is the bucket of k: 0 but in a Cluster.
func (r *Store) bucket(k replay.Key) int {
	if !r.cluster {
		return 0
	}
	return int(k[0]) % Buckets
}

// key is k's record key: in a Cluster, in its bucket.
func (r *Store) key(k replay.Key) string {
	if r.cluster {
		return r.prefix + bucketTag(r.bucket(k)) + k.String()
	}
	return r.prefix + k.String()
}

// unavailable wraps a Redis failure in replay.ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: redis: %v", replay.ErrUnavailable, err)
}

// errMarker is returned when a script found the marker missing or changed.
var errMarker = errors.New("the marker is missing or changed: records may have been lost")

// scriptArgs returns the keys of a script on k (its record and its
// bucket's marker, in one slot), and the marker value this store knows.
// Before the first look at the marker that value is not known: the
// markers are checked first.
func (r *Store) scriptArgs(ctx context.Context, k replay.Key) ([]string, string) {
	b := r.bucket(k)
	e := r.epochs[b].Load()
	if e == nil {
		r.checkMarkers(ctx)
		e = r.epochs[b].Load()
	}
	epoch := ""
	if e != nil {
		epoch = *e
	}
	return []string{r.key(k), r.markers[b]}, epoch
}

// Record implements replay.Store. If Redis does not answer within the
// timeout, or fewer than MinReplicas replicas acknowledge a new record, or
// the marker shows a loss, the key is reported not fresh, with an error
// wrapping replay.ErrUnavailable.
func (r *Store) Record(ctx context.Context, key replay.Key) (bool, error) {
	if r.closed.Load() {
		return false, replay.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	value := rand.Text()
	var acks int
	var shard string
	n, err := r.withMarker(ctx, key, func(keys []string, epoch string) (n int64, err error) {
		n, acks, shard, err = r.runRecord(ctx, keys, []any{value, r.ttl.Milliseconds(), epoch})
		return n, err
	})
	switch {
	case err != nil:
		return false, err
	case n == 0:
		return false, nil
	case acks < r.minReplicas:
		return false, unavailable(fmt.Errorf("%s: %d of the %d replicas required acknowledged the record (see redis_min_replicas)", shard, acks, r.minReplicas))
	}
	return true, nil
}

// runRecord runs the record script and, with MinReplicas, WAIT after it on
// the same connection: the script's reply, the replicas' count and the
// shard that answered.
func (r *Store) runRecord(ctx context.Context, keys []string, args []any) (n int64, acks int, shard string, err error) {
	if r.minReplicas <= 0 {
		n, err = scriptReply(recordScript.Run(ctx, r.c, keys, args...))
		return n, 0, "", err
	}
	var c goredis.Cmdable = r.c
	shard = "the master"
	if cc, ok := r.c.(*goredis.ClusterClient); ok {
		mc, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return 0, 0, "", err
		}
		c, shard = mc, "the master at "+mc.Options().Addr
		defer func() {
			if err != nil {
				cc.ReloadState(ctx) // a failover or a slot moved: ask the Cluster again next time
			}
		}()
	}
	// EVAL, not EVALSHA: a script Redis does not hold would cost a second
	// pipeline, and its WAIT.
	pipe := c.Pipeline()
	res := recordScript.Eval(ctx, pipe, keys, args...)
	wait := pipe.Do(ctx, "wait", r.minReplicas, (r.timeout / 2).Milliseconds())
	pipe.Exec(ctx)
	if n, err = scriptReply(res); err != nil {
		return 0, 0, shard, err
	}
	w, err := wait.Int64()
	if err != nil {
		return 0, 0, shard, describe(err, "WAIT")
	}
	return n, int(w), shard, nil
}

// Seen implements replay.Store.
func (r *Store) Seen(ctx context.Context, key replay.Key) (bool, error) {
	if r.closed.Load() {
		return false, replay.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.withMarker(ctx, key, func(keys []string, epoch string) (int64, error) {
		return scriptReply(seenScript.Run(ctx, r.c, keys, epoch))
	})
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// withMarker runs a script on key with the marker value this store knows,
// once more if the script found another marker and checking it showed a
// loss this store had not noticed yet (the script then ran against a value
// that is now stale). A negative result, the marker still missing or
// changed, is an error, as is any failure: both wrap ErrUnavailable.
func (r *Store) withMarker(ctx context.Context, key replay.Key, run func(keys []string, epoch string) (int64, error)) (int64, error) {
	b := r.bucket(key)
	for try := 0; ; try++ {
		keys, epoch := r.scriptArgs(ctx, key)
		n, err := run(keys, epoch)
		switch {
		case err != nil:
			return 0, unavailable(err)
		case n >= 0:
			return n, nil
		case try > 0 || !r.marked(ctx, b, epoch):
			return 0, unavailable(errMarker)
		}
	}
}

// marked is called when a script found bucket b's marker other than
// epoch, the value it was given. It checks the marker (which notes any
// loss) and reports whether this store now knows another value: the script
// ran on a value that was out of date (the first call, or a loss found
// meanwhile) and may run again on the new one. It recorded nothing.
func (r *Store) marked(ctx context.Context, b int, epoch string) bool {
	if r.checkMarker(ctx, r.c, b) != nil {
		return false
	}
	e := r.epochs[b].Load()
	return e != nil && *e != epoch
}

// ForgottenAt implements replay.Store: the last time a marker was found missing
// or changed, zero if never.
func (r *Store) ForgottenAt() time.Time { return r.forgot.Load() }

// onConnect checks the marker on a new connection. Two kinds of connection
// cannot: one to a Sentinel (go-redis runs OnConnect there too), which
// knows no GET, and one to a node of a Cluster, which holds some buckets'
// markers only: there every script checks its own bucket's marker, and
// the periodic check, through the client, checks them all. Any other error
// fails the connection: a store that cannot check its marker is not used.
func (r *Store) onConnect(ctx context.Context, cn *goredis.Conn) error {
	if r.cluster {
		return nil
	}
	err := r.checkMarker(ctx, cn, 0)
	if goredis.HasErrorPrefix(err, "unknown command") {
		return nil
	}
	return err
}

// checkMarker reads bucket b's marker through c and compares it with the
// value this store knows; a missing marker is made again.
func (r *Store) checkMarker(ctx context.Context, c goredis.Cmdable, b int) error {
	v, err := c.Get(ctx, r.markers[b]).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	return r.adopt(ctx, c, b, v, err == nil)
}

// checkMarkers checks every bucket's marker through the client: one
// pipeline of GETs (one round trip to each master), one of SETNX and one
// of GETs for the missing ones, and one loss noted for all the buckets
// found missing, one for those changed. It returns the first error.
func (r *Store) checkMarkers(ctx context.Context) error {
	if !r.cluster {
		return r.checkMarker(ctx, r.c, 0)
	}
	all := make([]int, len(r.markers))
	for b := range all {
		all[b] = b
	}
	vals, errs := r.getMarkers(ctx, all)
	var missing []int
	for b, err := range errs {
		if errors.Is(err, goredis.Nil) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		r.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, b := range missing {
				p.SetNX(ctx, r.markers[b], newMarker(r.now()), 0)
			}
			return nil
		})
		again, againErrs := r.getMarkers(ctx, missing)
		for i, b := range missing {
			vals[b], errs[b] = again[i], againErrs[i]
		}
		r.forget(fmt.Sprintf("the Redis Cluster's masters serving %d of the %d buckets (%s) hold no marker: new, or they lost their data (a restart without persistence, a flush, a failover to a replica without it)",
			len(missing), Buckets, tags(missing)))
	}
	var first error
	var changed, recent []int
	var latest time.Time
	for b, err := range errs {
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		ch, at := r.settle(b, vals[b], slices.Contains(missing, b))
		if ch {
			changed = append(changed, b)
		}
		if !at.IsZero() {
			recent = append(recent, b)
			if at.After(latest) {
				latest = at
			}
		}
	}
	if len(changed) > 0 {
		r.forget(fmt.Sprintf("the markers of %d of the %d buckets (%s) changed: the Redis Cluster's masters serving them lost their data and another process marked them again",
			len(changed), Buckets, tags(changed)))
	}
	if len(recent) > 0 {
		r.forgetAt(latest, fmt.Sprintf("the markers of %d of the %d buckets (%s) were made recently: the Redis Cluster's masters serving them were new or lost their data then, and another process marked them again",
			len(recent), Buckets, tags(recent)))
	}
	return first
}

// getMarkers reads the markers of buckets in one pipeline.
func (r *Store) getMarkers(ctx context.Context, buckets []int) ([]string, []error) {
	cmds := make([]*goredis.StringCmd, len(buckets))
	r.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, b := range buckets {
			cmds[i] = p.Get(ctx, r.markers[b])
		}
		return nil
	})
	vals, errs := make([]string, len(buckets)), make([]error, len(buckets))
	for i, cmd := range cmds {
		vals[i], errs[i] = cmd.Result()
	}
	return vals, errs
}

// settle adopts v as bucket b's marker and reports whether it changed
// from a value this store knew, and, at a first look at a marker made
// less than a record's lifetime ago (and not by this store: made is
// false), when it was made: a loss then.
func (r *Store) settle(b int, v string, made bool) (changed bool, recent time.Time) {
	known := ""
	if e := r.epochs[b].Load(); e != nil {
		known = *e
	}
	switch {
	case made:
	case known != "" && v != known:
		changed = true
	case known == "":
		if at, ok := markerTime(v); ok && r.now().Sub(at) < r.ttl {
			recent = at
		}
	}
	if v != known {
		r.epochs[b].Store(&v)
	}
	return changed, recent
}

// tags lists the buckets' hash tags, the first few of them.
func tags(buckets []int) string {
	var t []string
	for i, b := range buckets {
		if i == 4 {
			t = append(t, "...")
			break
		}
		t = append(t, bucketTag(b))
	}
	return strings.Join(t, " ")
}

// Why a single server's store forgot (a Cluster's name the bucket).
const (
	lossNoMarker = "Redis holds no marker: it is new, or it lost its data (a restart without persistence, a flush, a failover to a replica without it)"
	lossChanged  = "the Redis marker changed: Redis lost its data and another process marked it again"
	lossRecent   = "the Redis marker was made recently: Redis was new or lost its data then, and another process marked it again"
)

// adopt compares bucket b's marker, v (found false if there is none),
// with the value this store knows, notes a loss, makes a missing marker
// again through c, and adopts the value Redis holds.
func (r *Store) adopt(ctx context.Context, c goredis.Cmdable, b int, v string, found bool) error {
	missing, changed, recent := lossNoMarker, lossChanged, lossRecent
	if r.cluster {
		where := "the Redis Cluster's master serving bucket " + bucketTag(b)
		missing = where + " holds no marker: it is new, or it lost its data (a restart without persistence, a flush, a failover to a replica without it)"
		changed = "the marker of " + where + " changed: it lost its data and another process marked it again"
		recent = "the marker of " + where + " was made recently: it was new or lost its data then, and another process marked it again"
	}
	known := ""
	if e := r.epochs[b].Load(); e != nil {
		known = *e
	}
	switch {
	case !found:
		r.forget(missing)
		if err := c.SetNX(ctx, r.markers[b], newMarker(r.now()), 0).Err(); err != nil {
			return err
		}
		var err error
		if v, err = c.Get(ctx, r.markers[b]).Result(); err != nil {
			return err
		}
	case known != "" && v != known:
		r.forget(changed)
	case known == "":
		// The first look: a marker made less than a record's lifetime ago
		// was made after a loss whose lost records may still be replayed.
		if at, ok := markerTime(v); ok && r.now().Sub(at) < r.ttl {
			r.forgetAt(at, recent)
		}
	}
	if v != known {
		r.epochs[b].Store(&v)
	}
	return nil
}

// forget moves ForgottenAt to now.
func (r *Store) forget(why string) { r.forgetAt(r.now(), why) }

// forgetAt moves ForgottenAt to at, if later.
func (r *Store) forgetAt(at time.Time, why string) {
	r.forgot.Raise(at)
	if r.onForget != nil {
		r.onForget(at, why)
	}
}

// checkNow checks the markers and, with MinReplicas, the replicas (run
// every CheckInterval until Close): a FLUSHALL keeps the connections, so
// only this (and the scripts) can notice it.
func (r *Store) checkNow() {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	r.checkMarkers(ctx) // an error: Redis is down, Records fail anyway
	if r.minReplicas > 0 {
		r.checkReplicas(ctx)
	}
}

// Ping reports whether Redis answers within the timeout.
func (r *Store) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return replay.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Len implements replay.Store: -1, Redis being shared and not cheaply counted.
func (r *Store) Len() int { return -1 }

// Close implements replay.Store: it stops the marker checks and closes the
// client.
func (r *Store) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.checks.Stop()
		err = r.c.Close()
	})
	return err
}

// newMarker returns a marker value: when it was made (Unix nanoseconds on
// the maker's clock, which the OTP window already needs right) and a
// random part, so that two makers never agree by chance.
func newMarker(now time.Time) string {
	return strconv.FormatInt(now.UnixNano(), 10) + "-" + rand.Text()
}

// markerTime returns when a marker value was made; ok is false for a
// value without a time (one made by an older version or by hand).
func markerTime(v string) (time.Time, bool) {
	ns, _, found := strings.Cut(v, "-")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !found || err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}
