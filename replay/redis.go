package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisTimeout bounds one Redis call when RedisOptions.Timeout is 0.
const DefaultRedisTimeout = 500 * time.Millisecond

// DefaultRedisPrefix namespaces the keys when RedisOptions.Prefix is "".
const DefaultRedisPrefix = "tokenauthd:"

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// Prefix is put before every key (DefaultRedisPrefix if "").
	Prefix string
	// TTL is how long a record lives. Required.
	TTL time.Duration
	// Timeout bounds each call, retries included (DefaultRedisTimeout if 0).
	Timeout time.Duration
}

// Redis is a Store on a Redis server, a Sentinel-managed one or a Cluster,
// shared by every process that uses the same server and prefix: a key
// recorded by one is seen by all. Each Record is one atomic
// `SET prefix+key 1 NX PX ttl`. It is safe for concurrent use.
type Redis struct {
	c       redis.UniversalClient
	prefix  string
	ttl     time.Duration
	timeout time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis returns a Store on the client c, which it owns from then on
// (Close closes it).
func NewRedis(c redis.UniversalClient, o RedisOptions) *Redis {
	if o.Prefix == "" {
		o.Prefix = DefaultRedisPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	return &Redis{c: c, prefix: o.Prefix, ttl: o.TTL, timeout: o.Timeout}
}

func (r *Redis) key(k Key) string { return r.prefix + k.String() }

// unavailable wraps a Redis failure in ErrUnavailable.
func unavailable(err error) error {
	return fmt.Errorf("%w: redis: %v", ErrUnavailable, err)
}

// Record implements Store. If Redis does not answer within the timeout the
// key is reported not fresh, with an error wrapping ErrUnavailable.
func (r *Redis) Record(ctx context.Context, key Key) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	fresh, err := r.c.SetNX(ctx, r.key(key), 1, r.ttl).Result()
	if err != nil {
		return false, unavailable(err)
	}
	return fresh, nil
}

// Seen implements Store.
func (r *Redis) Seen(ctx context.Context, key Key) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	n, err := r.c.Exists(ctx, r.key(key)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, unavailable(err)
	}
	return n > 0, nil
}

// Ping reports whether Redis answers within the timeout.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// ForgottenAt implements Store. It does not tell yet when Redis lost
// records: zero.
func (r *Redis) ForgottenAt() time.Time { return time.Time{} }

// Len implements Store: -1, Redis being shared and not cheaply counted.
func (r *Redis) Len() int { return -1 }

// Close implements Store: it closes the client.
func (r *Redis) Close() error { return r.c.Close() }
