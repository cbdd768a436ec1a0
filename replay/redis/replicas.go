package redis

import (
	"bufio"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// Shard is a master and how many replicas follow it.
type Shard struct {
	// Addr is the master's address in a Cluster, "master" otherwise (a
	// Sentinel's master moves; one server's is the configured one).
	Addr string
	// Replicas is how many replicas it counts online.
	Replicas int
}

// Shards asks c for every master's replicas: each master of a Cluster, or
// the one master of a server or a Sentinel group. A master that does not
// answer is left out, and its error returned with the others' shards.
func Shards(ctx context.Context, c goredis.UniversalClient) ([]Shard, error) {
	cc, ok := c.(*goredis.ClusterClient)
	if !ok {
		n, err := onlineReplicas(ctx, c)
		if err != nil {
			return nil, describe(err, "INFO replication")
		}
		return []Shard{{Addr: "master", Replicas: n}}, nil
	}
	var mu sync.Mutex
	var shards []Shard
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		n, err := onlineReplicas(ctx, m)
		if err != nil {
			return err
		}
		mu.Lock()
		shards = append(shards, Shard{Addr: m.Options().Addr, Replicas: n})
		mu.Unlock()
		return nil
	})
	slices.SortFunc(shards, func(a, b Shard) int { return strings.Compare(a.Addr, b.Addr) })
	return shards, describe(err, "INFO replication")
}

// onlineReplicas counts the replicas INFO replication says are online.
func onlineReplicas(ctx context.Context, c goredis.Cmdable) (int, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	return countOnline(info), nil
}

// countOnline counts the "slaveN:...,state=online,..." lines of INFO
// replication.
func countOnline(info string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.HasPrefix(k, "slave") {
			continue
		}
		if _, err := strconv.Atoi(k[len("slave"):]); err != nil {
			continue
		}
		if slices.Contains(strings.Split(v, ","), "state=online") {
			n++
		}
	}
	return n
}

// replicaWatch remembers which shards were short of replicas, to report
// each change once.
type replicaWatch struct {
	on    func(shard string, online int, short bool)
	mu    sync.Mutex
	short map[string]bool // by shard; absent: not seen yet
}

// note takes a check's shards: it reports each shard whose state changed
// (a shard seen first only if short), and forgets the
// shards that are no longer masters. A shard that did not answer keeps
// its state.
func (w *replicaWatch) note(shards []Shard, min int, complete bool) {
	type change struct {
		shard  string
		online int
		short  bool
	}
	var changes []change
	w.mu.Lock()
	if w.short == nil {
		w.short = map[string]bool{}
	}
	seen := map[string]bool{}
	for _, s := range shards {
		seen[s.Addr] = true
		short := s.Replicas < min
		if short != w.short[s.Addr] {
			changes = append(changes, change{s.Addr, s.Replicas, short})
		}
		w.short[s.Addr] = short
	}
	if complete {
		maps.DeleteFunc(w.short, func(a string, _ bool) bool { return !seen[a] })
	}
	w.mu.Unlock()
	if w.on != nil {
		for _, c := range changes {
			w.on(c.shard, c.online, c.short)
		}
	}
}

// count is how many shards were short at the last check.
func (w *replicaWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.short {
		if s {
			n++
		}
	}
	return n
}

// checkReplicas asks every master for its replicas and notes the shards
// short of MinReplicas.
func (r *Store) checkReplicas(ctx context.Context) {
	shards, err := Shards(ctx, r.c)
	r.replicas.note(shards, r.minReplicas, err == nil)
}

// ReplicasShort is how many shards (a Cluster's masters, or the one
// master) had fewer replicas online than MinReplicas at the last check:
// tokens whose records land there are refused. Always 0 without
// MinReplicas.
func (r *Store) ReplicasShort() int { return r.replicas.count() }
