package daemon

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/fixture"
	"github.com/tokenauthd/tokenauthd/internal/fuzzcorpus"
	"github.com/tokenauthd/tokenauthd/internal/logs"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// Every fuzz target of this package has seeds that `go test` runs.
func TestFuzzCorpus(t *testing.T) { fuzzcorpus.Check(t) }

// fuzzNow is the fixed clock of FuzzStdio, so that seeds with valid tokens
// stay valid.
var fuzzNow = time.Unix(1_800_000_000, 0)

// FuzzStdio drives the whole stdin/stdout pipeline (framing detection,
// reader, request parsing, verifier, replay store, refusal logging) with
// arbitrary input: no panic, nothing but well-formed replies on stdout, and
// never the secret in the log.
func FuzzStdio(f *testing.F) {
	var (
		once sync.Once
		h    *authHandler
		logb bytes.Buffer
		mu   sync.Mutex
	)
	setup := func() {
		hosts := map[string]verifier.Host{
			"a.example": {TokenSecrets: [][]byte{[]byte(fixture.SecretA), []byte(fixture.SecretB)}, OTPSeeds: []string{fixture.SeedA, fixture.SeedB}, IsUser: true},
		}
		store := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: time.Minute, Now: func() time.Time { return fuzzNow }})
		v, err := verifier.New(verifier.Config{Params: verifier.DefaultParams(), Hosts: hosts, Store: store,
			Now: func() time.Time { return fuzzNow }})
		if err != nil {
			panic(err)
		}
		log := slog.New(slog.NewJSONHandler(&logb, &slog.HandlerOptions{Level: slog.LevelDebug}))
		h = newAuthHandler(v, log, logs.NewRateLog(log, nil), nil, nil)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		once.Do(setup)
		mu.Lock()
		defer mu.Unlock()
		logb.Reset()
		var out bytes.Buffer
		srv := newProtocolServer(protocol.Auto, h, h.log)
		if err := srv.Serve(context.Background(), bytes.NewReader(data), &out); err != nil {
			t.Fatalf("Serve on a bytes.Reader: %v", err)
		}
		checkReplies(t, data, out.Bytes())
		if l := logb.String(); strings.Contains(l, fixture.SecretA) || strings.Contains(l, fixture.SecretB) {
			t.Fatal("a secret reached the log")
		}
	})
}

// checkReplies asserts that out is nothing but replies in the framing the
// input's first bytes select: lines if it starts with a command's name and
// a ':' (or ends before it can tell), frames otherwise.
func checkReplies(t *testing.T, in, out []byte) {
	t.Helper()
	if len(in) == 0 {
		if len(out) != 0 {
			t.Fatalf("reply to empty input: %q", out)
		}
		return
	}
	generic := false
	for _, c := range protocol.Commands() {
		p := []byte(c + ":")
		generic = generic || bytes.HasPrefix(in, p) || (len(in) < len(p) && bytes.HasPrefix(p, in))
	}
	mode := protocol.Ejabberd
	if generic {
		mode = protocol.Generic
	}
	r := bufio.NewReader(bytes.NewReader(out))
	for {
		_, err := protocol.ReadReply(r, mode)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not %v replies: %q: %v", mode, out, err)
		}
	}
}
