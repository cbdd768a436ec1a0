package daemon

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthd/tokenauthd/internal/seen"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
	redisstore "github.com/tokenauthd/tokenauthd/replay/redis"
)

// seenHint is what a loss of the seen users means to an admin.
const seenHint = `hosts with isuser = "seen" answer no for their users until each logs in again: messages to them while offline bounce until then`

// openSeen opens where the users seen logging in are kept (isuser =
// "seen"), apart from the replay records but where they are: Redis (under
// the prefix), the file beside the journal (daemon only), else memory for
// the process's life. store is the replay store, whose losses on Redis
// are the marks' too.
func openSeen(cfg *setup.Config, log *slog.Logger, daemon bool, store replay.Store) (*seen.Book, error) {
	o := seen.Options{}
	var marks replay.Marks
	switch {
	case cfg.Store == "redis":
		rc := cfg.Redis
		url, err := redisURLOrNil(rc.URL)
		if err != nil {
			return nil, err
		}
		marks = redisstore.NewMarks(newRedisClient(rc, url, nil), redisstore.MarksOptions{Prefix: rc.Prefix, Timeout: rc.Timeout})
		o.LostSince = store.ForgottenAt
		o.OnLost = func(at time.Time) {
			log.Warn("the Redis store may have lost its data: the users seen logging in are forgotten", "forgotten_at", at.Format(time.RFC3339), "hint", seenHint)
		}
	case cfg.Journal != "" && daemon:
		return openSeenFile(cfg.Journal, cfg.Capacity, log)
	default:
		marks = replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: cfg.Capacity})
	}
	return seen.New(marks, o), nil
}

// openSeenFile opens the seen users' file beside the journal, and says
// what it found: a file lost or damaged beside a journal in use is a loss
// (warned, counted).
func openSeenFile(journal string, capacity int, log *slog.Logger) (*seen.Book, error) {
	path := journal + ".seen"
	used := false
	if st, err := os.Lstat(journal); err == nil && st.Size() > 36 { // more than a header and a birth record
		used = true
	}
	mem := replay.NewMemoryMarks(replay.MemoryMarksOptions{Capacity: capacity})
	m, st, err := replay.OpenMarksFile(path, mem, replay.JournalOptions{})
	if err != nil {
		return nil, err
	}
	b := seen.New(m, seen.Options{})
	attrs := []any{"path", path, "loaded", st.Loaded, "expired", st.Expired}
	switch {
	case st.Corrupt > 0:
		b.Lost()
		log.Warn("the seen users' file has damaged records: those users are forgotten", append(attrs, "corrupt_records", st.Corrupt, "hint", seenHint)...)
	case st.Created && used:
		b.Lost()
		log.Warn("the seen users' file was absent beside a journal in use: a lost file, or the first start of a version that keeps seen users", append(attrs, "hint", seenHint)...)
	case st.Torn > 0:
		log.Warn("the seen users' file ended in a write a crash interrupted: cut off", append(attrs, "torn_bytes", st.Torn)...)
	default:
		log.Info("seen users loaded", attrs...)
	}
	return b, nil
}

// seenNotes says, for check-config, what each host's isuser answers and,
// for hosts with isuser = "seen", where their users are kept.
func seenNotes(cfg *setup.Config) []string {
	where := "in memory only: forgotten at every restart (a journal or Redis keeps them)"
	switch {
	case cfg.Store == "redis":
		where = fmt.Sprintf("in Redis, keys %sseen:* (hashed names), shared by every node on it", cfg.Redis.Prefix)
	case cfg.Journal != "":
		where = "in " + cfg.Journal + ".seen, beside the journal (serve only; the stdin/stdout helper keeps them in memory)"
	}
	var lines []string
	for _, n := range slices.Sorted(maps.Keys(cfg.Hosts)) {
		switch h := cfg.Hosts[n]; {
		case h.IsUserSeen:
			lines = append(lines, fmt.Sprintf("note: host %q: isuser = \"seen\": a user exists who logged in within %d days; seen users are kept %s",
				n, int(h.SeenFor/(24*time.Hour)), where))
		case h.IsUser:
			lines = append(lines, fmt.Sprintf("note: host %q: isuser = true: every name exists, so messages to any name, a typo's too, are stored offline; "+
				"isuser = \"seen\" makes only the users who logged in exist", n))
		}
	}
	return lines
}

// redisURLOrNil parses a Redis URL, nil if u is "".
func redisURLOrNil(u string) (*redis.Options, error) {
	if u == "" {
		return nil, nil
	}
	return redisURL(u)
}
