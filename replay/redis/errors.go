package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// redisSays are the error replies of Redis that the store meets while a
// node restarts, fails over or moves slots, each with what it means to an
// admin. A reply is matched by its first word.
var redisSays = map[string]string{
	"LOADING":     "a Redis node is loading its data after a restart",
	"CLUSTERDOWN": "the Redis Cluster is down: a master is unreachable and not replaced yet (a failover under way, or fewer masters than the Cluster needs)",
	"TRYAGAIN":    "the record's slot is being moved between Cluster nodes (resharding)",
	"MOVED":       "the Cluster moved the record's slot (a failover or resharding under way)",
	"ASK":         "the Cluster is moving the record's slot (resharding under way)",
	"MASTERDOWN":  "the replica answering has lost its master (a failover under way)",
	"READONLY":    "a replica answered where a master was expected (a failover under way)",
	"NOREPLICAS":  "too few replicas are connected to the master",
	"BUSY":        "a Redis node is busy running a long script",
	"OOM":         "Redis is out of memory (maxmemory reached): it refuses new records",
	"NOAUTH":      "Redis asks for a password: set redis_password_file",
	"WRONGPASS":   "Redis refused the user name or password",
	"NOPERM":      "the Redis user may not run the store's commands (EVAL, EVALSHA, GET, SET, EXISTS, WAIT, INFO)",
}

// errNoAnswer is a script's reply that is no number: not one of the
// store's scripts' answers, as a node answers that is going down or coming
// back.
var errNoAnswer = errors.New("no number came back as the script's answer (a node restarting or failing over answers so)")

// scriptReply returns a script's reply, which must be a number, or an
// error that says what happened.
func scriptReply(cmd *goredis.Cmd) (int64, error) {
	v, err := cmd.Result()
	if err != nil {
		return 0, describe(err, "the record's script")
	}
	n, ok := v.(int64)
	if !ok {
		if v == nil {
			return 0, errNoAnswer
		}
		return 0, fmt.Errorf("the record's script answered %T, not a number: is the server Redis or a compatible one?", v)
	}
	return n, nil
}

// describe says what err, met by what, means, in words an admin can act
// on, and keeps err (for errors.Is) after them.
func describe(err error, what string) error {
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("%s: no answer within redis_timeout_ms: %w", what, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: Redis closed the connection (a node going down or restarting): %w", what, err)
	case errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("%s: the store is closed: %w", what, err)
	}
	var re goredis.Error
	if errors.As(err, &re) {
		word, _, _ := strings.Cut(re.Error(), " ")
		if m, ok := redisSays[word]; ok {
			return fmt.Errorf("%s: %s: %w", what, m, err)
		}
		return fmt.Errorf("%s: Redis answered with an error: %w", what, err)
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("%s: cannot reach Redis (down, restarting, or its address wrong): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
