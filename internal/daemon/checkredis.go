package daemon

import (
	"context"
	"fmt"
	"io"

	"github.com/tokenauthd/tokenauthd/internal/config"
	redisstore "github.com/tokenauthd/tokenauthd/replay/redis"
)

// checkRedis asks the configuration's Redis store how many replicas each
// master has online, and writes a warning for each master short of
// redis_min_replicas plus one: with fewer, the replica a failover promotes
// has too few replicas of its own, and the tokens recorded there are
// refused until one follows it. A Redis that does not answer is a warning
// too: check-config checks the configuration, not the servers.
func checkRedis(ctx context.Context, w io.Writer, path string, cfg *config.Config) {
	rc := cfg.Redis
	if cfg.Store != "redis" || rc.MinReplicas <= 0 {
		return
	}
	url, err := redisURL(rc.URL)
	if rc.URL == "" {
		url, err = nil, nil
	}
	if err != nil {
		fmt.Fprintf(w, "%s: warning: replay: cannot count Redis's replicas: %v\n", path, err)
		return
	}
	c := newRedisClient(rc, url, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*rc.Timeout)
	defer cancel()
	shards, err := redisstore.Shards(ctx, c)
	if err != nil {
		fmt.Fprintf(w, "%s: warning: replay: cannot count Redis's replicas: %v\n", path, err)
	}
	for _, s := range shards {
		if s.Replicas > rc.MinReplicas {
			continue
		}
		fmt.Fprintf(w, "%s: warning: replay: Redis %s has %d replica(s) online; redis_min_replicas = %d needs %d, and %d to go on accepting tokens after a failover\n",
			path, s.Addr, s.Replicas, rc.MinReplicas, rc.MinReplicas, rc.MinReplicas+1)
	}
}
