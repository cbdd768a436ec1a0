package cli

import (
	"bytes"
	"context"
	"testing"
)

// TestRunVersion: the version and commit set at build time (scripts/package's
// -ldflags -X) are what `tokenauthd version` prints.
func TestRunVersion(t *testing.T) {
	for _, tc := range []struct {
		name, version, commit, want string
	}{
		// A package build: both set.
		{"package", "1.2.3", "0123456789abcdef0123456789abcdef01234567", "tokenauthd 1.2.3 (commit 0123456789abcdef0123456789abcdef01234567)\n"},
		// A pre-release version, as Debian orders it.
		{"pre-release", "1.3.0~rc1", "abc-dirty", "tokenauthd 1.3.0~rc1 (commit abc-dirty)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldVersion, oldCommit := version, commit
			t.Cleanup(func() { version, commit = oldVersion, oldCommit })
			version, commit = tc.version, tc.commit
			var out, errOut bytes.Buffer
			code := RunVersion(context.Background(), &Env{Stdout: &out, Stderr: &errOut}, nil)
			if code != 0 || out.String() != tc.want || errOut.Len() != 0 {
				t.Errorf("version = %d, %q, %q; want 0, %q, \"\"", code, out.String(), errOut.String(), tc.want)
			}
		})
	}
}

// TestVersionUnset: without -ldflags the version is never empty, and a
// commit go build did not record is left out of the line.
func TestVersionUnset(t *testing.T) {
	if Version() == "" {
		t.Error("Version() is empty")
	}
	var out bytes.Buffer
	if code := RunVersion(context.Background(), &Env{Stdout: &out, Stderr: &out}, nil); code != 0 {
		t.Fatalf("version = %d", code)
	}
	want := "tokenauthd " + Version() + "\n"
	if c := Commit(); c != "" {
		want = "tokenauthd " + Version() + " (commit " + c + ")\n"
	}
	if out.String() != want {
		t.Errorf("version printed %q, want %q", out.String(), want)
	}
}
