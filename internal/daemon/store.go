package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	redisstore "github.com/tokenauthd/tokenauthd/replay/redis"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// newStore returns the replay store the configuration asks for: memory,
// memory with its journal (daemon only: a journal has one writer), or Redis.
// Every store reports when it may have lost records (ForgottenAt); the
// verifier then refuses the tokens it can no longer vouch for, and this
// says so in the log.
func newStore(cfg *setup.Config, log *slog.Logger, daemon bool) (replay.Store, error) {
	switch {
	case cfg.Store == "redis":
		return newRedisStore(cfg, log)
	case cfg.Journal != "" && !daemon:
		log.Warn("[replay] journal is kept by tokenauthd serve only; this helper remembers tokens in memory")
	case cfg.Journal != "":
		return openJournal(cfg, log)
	}
	m := newMemoryStore(cfg, log)
	if cfg.RefuseAfterStart {
		// This process starts empty: an earlier one may have accepted
		// tokens that are still inside their window.
		now := time.Now()
		m.MarkForgotten(now)
		log.Info("refuse_after_start: the replay store starts empty, so tokens an earlier process could have accepted are refused",
			"refused_until", cfg.Verifier.RefusalEnds(now).Format(time.RFC3339))
	}
	return m, nil
}

// newMemoryStore returns the in-process replay store, with its capacity
// guard logging every record forced out while still live: the store then
// forgets from that record's making, and the verifier refuses the tokens
// it can no longer vouch for.
// The warning is rate limited (a flood of valid tokens would otherwise log
// one line per token); the store counts every eviction (LiveEvictions, and
// the tokenauthd_replay_live_evictions_total metric).
func newMemoryStore(cfg *setup.Config, log *slog.Logger) *replay.Memory {
	rl := logs.NewRateLog(log, nil)
	var m *replay.Memory
	m = replay.NewMemory(replay.MemoryOptions{
		Capacity: cfg.Capacity,
		TTL:      cfg.Verifier.Params.ReplayTTL(),
		OnLiveEviction: func() {
			// m.LiveEvictions is an atomic counter: no store lock taken.
			rl.Log(slog.LevelWarn, "live_eviction",
				"replay cache full: a record still inside its window was forced out, so tokens minted before refused_until are refused; raise [replay] capacity",
				"capacity", cfg.Capacity, "live_evictions", m.LiveEvictions(),
				"refused_until", cfg.Verifier.RefusalEnds(m.ForgottenAt()).Format(time.RFC3339))
		},
	})
	return m
}

// openJournal opens the memory store's journal and logs what it found.
func openJournal(cfg *setup.Config, log *slog.Logger) (replay.Store, error) {
	mem := newMemoryStore(cfg, log)
	j, st, err := replay.OpenJournal(cfg.Journal, mem, replay.JournalOptions{SyncEvery: cfg.JournalSyncEvery})
	if err != nil {
		return nil, err
	}
	attrs := []any{"path", cfg.Journal, "loaded", st.Loaded, "expired", st.Expired}
	if !st.Made.IsZero() {
		attrs = append(attrs, "made", st.Made.UTC().Format(time.RFC3339))
	}
	if st.Torn > 0 {
		log.Warn("replay journal ended in a write a crash interrupted: cut off", append(attrs, "torn_bytes", st.Torn)...)
	} else {
		log.Info("replay journal loaded", attrs...)
	}
	switch {
	case st.Lost != "" && st.Absent:
		logForgotten(log, cfg.Verifier, st.Forgotten, st.Lost, "corrupt_records", st.Corrupt,
			"hint", "a new installation's journal, made before its first start (tokenauthd init-journal), is no loss; after a loss, make none: the refusals end by themselves")
	case st.Lost != "":
		logForgotten(log, cfg.Verifier, st.Forgotten, st.Lost, "corrupt_records", st.Corrupt)
	case mem.LiveEvictions() > 0:
		logForgotten(log, cfg.Verifier, st.Forgotten, "the journal holds more live records than [replay] capacity")
	case !st.Forgotten.IsZero():
		logForgotten(log, cfg.Verifier, st.Forgotten, "a recent start found that the journal may have lost records")
	}
	return j, nil
}

// logForgotten warns that the replay store may have lost records at at,
// why, and until when tokens are refused for it.
func logForgotten(log *slog.Logger, vc verifier.Config, at time.Time, why string, attrs ...any) {
	log.Warn("the replay store may have lost records: tokens minted before refused_until are refused, since they could have been accepted already",
		append([]any{"why", why, "forgotten_at", at.Format(time.RFC3339),
			"refused_until", vc.RefusalEnds(at).Format(time.RFC3339)}, attrs...)...)
}

// newRedisStore returns the Redis store. It does not wait for Redis: while
// Redis cannot be reached every token is refused (store_unavailable), and
// accepted again once it can, without a restart. It fails only on a URL
// go-redis cannot parse.
func newRedisStore(cfg *setup.Config, log *slog.Logger) (*redisstore.Store, error) {
	rc := cfg.Redis
	var url *redis.Options
	if rc.URL != "" {
		var err error
		if url, err = redisURL(rc.URL); err != nil {
			return nil, err
		}
	}
	redis.SetLogger(redisLogger{log})
	warnRedisTimeout(rc.Timeout, log)
	s := redisstore.New(func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
		return newRedisClient(rc, url, onConnect)
	}, redisstore.Options{
		Prefix: rc.Prefix, TTL: cfg.Verifier.Params.ReplayTTL(), Timeout: rc.Timeout, MinReplicas: rc.MinReplicas,
		OnForget:   func(at time.Time, why string) { logForgotten(log, cfg.Verifier, at, why) },
		OnReplicas: func(shard string, online int, short bool) { logReplicas(log, shard, online, rc.MinReplicas, short) },
	})
	if err := s.Ping(context.Background()); err != nil {
		log.Warn("Redis does not answer yet: tokens are refused until it does", "err", err)
	} else {
		log.Info("replay store: Redis", "prefix", rc.Prefix, "min_replicas", rc.MinReplicas)
	}
	return s, nil
}

// redisURL parses [replay] redis_url as go-redis does. Its error does not
// quote the URL, which may hold a password.
func redisURL(u string) (*redis.Options, error) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, errors.New("replay.redis_url: not a valid redis://, rediss:// or unix:// URL")
	}
	return opt, nil
}

// logReplicas says that a Redis shard has fewer replicas online than
// redis_min_replicas, or has enough again.
func logReplicas(log *slog.Logger, shard string, online, required int, short bool) {
	attrs := []any{"shard", shard, "replicas_online", online, "redis_min_replicas", required}
	if short {
		log.Warn("a Redis shard has fewer replicas online than redis_min_replicas: tokens whose records land there are refused (store_unavailable) until a replica follows it again", attrs...)
		return
	}
	log.Info("a Redis shard has its replicas again: its tokens are accepted", attrs...)
}

// newRedisClient returns the client of the configuration, with onConnect
// run on each of its new connections: of the server url names (rc.URL
// parsed; each call changes its own copy), else of rc.Addrs.
func newRedisClient(rc config.RedisConfig, url *redis.Options, onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
	if url != nil {
		opt := *url
		if rc.Username != "" {
			opt.Username = rc.Username
		}
		if rc.Password != "" {
			opt.Password = rc.Password
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = rc.Timeout, rc.Timeout, rc.Timeout, rc.Timeout
		opt.ContextTimeoutEnabled = true
		opt.OnConnect = onConnect
		return redis.NewClient(&opt)
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 rc.Addrs,
		MasterName:            rc.Master,
		Username:              rc.Username,
		Password:              rc.Password,
		DialTimeout:           rc.Timeout,
		ReadTimeout:           rc.Timeout,
		WriteTimeout:          rc.Timeout,
		PoolTimeout:           rc.Timeout,
		ContextTimeoutEnabled: true,
		OnConnect:             onConnect,
	})
}

// clientTimeout is how long the XMPP server's side waits for an answer by
// default: Prosody's tokenauthd_timeout and the relay's connect.timeout_ms.
const clientTimeout = protocol.DefaultClientTimeout

// warnRedisTimeout warns when a token may wait for Redis as long as the
// XMPP server's side waits for the answer by default: that side then gives
// up first, refusing the login as unavailable while the daemon may still
// record the token, and replaces its connection.
func warnRedisTimeout(timeout time.Duration, log *slog.Logger) {
	if timeout >= clientTimeout {
		log.Warn("replay.redis_timeout_ms is not below the XMPP side's default wait (2 s): raise Prosody's tokenauthd_timeout and [connect] timeout_ms above it, or lower it",
			"redis_timeout_ms", timeout.Milliseconds())
	}
}

// redisLogger passes go-redis's own messages (connection pool trouble) to
// the log at debug level: what matters reaches the log as refusals with
// reason store_unavailable.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug("redis client", "msg", fmt.Sprintf(format, v...))
}
