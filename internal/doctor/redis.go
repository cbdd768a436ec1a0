package doctor

import (
	"cmp"
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/config"
	redisstore "github.com/tokenauthd/tokenauthd/replay/redis"
)

// checkRedis asks the Redis store of tokenauthd's configuration, with
// redis_min_replicas set, how many replicas each master has online, and
// reports a master with fewer than redis_min_replicas plus one: after a
// failover, the promoted replica would have too few of its own, and every
// token recorded on it would be refused until one follows it. A Redis that
// does not answer is reported too.
func (d *doctor) checkRedis(path string, cfg *config.Config) {
	rc := cfg.Redis
	if cfg.Store != "redis" || rc.MinReplicas <= 0 {
		return
	}
	c := redisClient(rc)
	defer c.Close()
	ctx, cancel := context.WithTimeout(d.ctx, 2*rc.Timeout)
	defer cancel()
	shards, err := redisstore.Shards(ctx, c)
	if err != nil {
		d.add(Finding{Severity: Warning, File: path, Key: "replay.redis_min_replicas",
			Message: "cannot count Redis's replicas: " + errText(err),
			Fix:     "check that Redis runs and that this machine reaches it; the daemon refuses every token while it cannot"})
	}
	for _, s := range shards {
		if s.Replicas > rc.MinReplicas {
			continue
		}
		what := "a failover would leave the promoted replica short, and its tokens refused until a replica follows it"
		if s.Replicas < rc.MinReplicas {
			what = "every token recorded there is refused now (store_unavailable)"
		}
		d.add(Finding{Severity: Warning, File: path, Key: "replay.redis_min_replicas",
			Message: fmt.Sprintf("Redis %s has %d replica(s) online, redis_min_replicas is %d: %s", s.Addr, s.Replicas, rc.MinReplicas, what),
			Fix:     fmt.Sprintf("give each master %d replicas (redis_min_replicas plus one)", rc.MinReplicas+1)})
	}
}

// redisClient is a client of the configuration's Redis, for doctor's few
// questions: one server by URL, or Sentinels, or a Cluster's nodes.
func redisClient(rc config.RedisConfig) goredis.UniversalClient {
	if rc.URL != "" {
		opt, err := goredis.ParseURL(rc.URL)
		if err != nil {
			opt = &goredis.Options{} // validated by config.Parse: not reached
		}
		opt.Username = cmp.Or(rc.Username, opt.Username)
		opt.Password = cmp.Or(rc.Password, opt.Password)
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = rc.Timeout, rc.Timeout, rc.Timeout
		opt.MaxRetries = -1
		return goredis.NewClient(opt)
	}
	return goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: rc.Addrs, MasterName: rc.Master,
		Username: rc.Username, Password: rc.Password, MaxRetries: -1,
		DialTimeout: rc.Timeout, ReadTimeout: rc.Timeout, WriteTimeout: rc.Timeout})
}
