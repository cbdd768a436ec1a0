package main

// Replay stores that may forget: a Redis restarted without persistence or
// flushed, a lost journal, a memory store restarted. A token accepted
// before the loss is never accepted after it; fresh tokens are refused
// until the refusals end, and the log and explain say so.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenauthd/tokenauthd/replay"
)

// makeJournal creates the journal at path as a daemon that ran an hour ago
// would have left it: the daemon started next does not take it for a lost
// journal (which refuses the fresh tokens of the next 30 to 60 s).
func makeJournal(t testing.TB, path string) {
	t.Helper()
	then := func() time.Time { return time.Now().Add(-time.Hour) }
	mem := replay.NewMemory(replay.MemoryOptions{Capacity: 1000, TTL: 2 * time.Minute, Now: then})
	j, _, err := replay.OpenJournal(path, mem, replay.JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAmnesiaJournal: a token accepted, the daemon killed, its journal
// lost (deleted, or damaged in the middle): the restarted daemon does not
// accept the token again. It cannot tell that token from a fresh one, so
// it refuses every token that could have been accepted before, and logs
// why and until when.
func TestAmnesiaJournal(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(path string) error
	}{
		{"deleted", os.Remove},
		{"damaged", func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			// The header, the record of the token, then a record of
			// another token: damage the first.
			b[8+3] ^= 0xff
			return os.WriteFile(path, b, 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "d.sock")
			journal := filepath.Join(dir, "replay.journal")
			extra := fmt.Sprintf("[replay]\njournal = %q\n", journal)
			makeJournal(t, journal)
			v := testMinter(t)
			p := startServeProc(t, extra, sock)
			tok := mintT(t, v, "alice")
			if !authOnce(t, sock, "alice", tok) || !authOnce(t, sock, "bob", mintT(t, v, "bob")) {
				t.Fatal("fresh token refused")
			}
			p.signal(t, syscall.SIGKILL)
			if err := tc.lose(journal); err != nil {
				t.Fatal(err)
			}
			p2 := startServeProc(t, extra, sock)
			if authOnce(t, sock, "alice", tok) {
				t.Fatal("the token accepted before the journal was lost was accepted again")
			}
			if authOnce(t, sock, "carol", mintT(t, v, "carol")) {
				t.Error("a token minted in the same step was accepted: it cannot be told from a replay")
			}
			log := p2.log()
			for _, want := range []string{"the replay store may have lost records", "refused_until=", "reason=store_forgot", "tokens minted before"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}
