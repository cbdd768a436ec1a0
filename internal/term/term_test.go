package term

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
)

// TestSameFile: one pipe, or two terminals, are the same file; two pipes,
// a pipe and a buffer, are not.
func TestSameFile(t *testing.T) {
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	defer w1.Close()
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	defer w2.Close()
	dup, err := os.Open("/dev/fd/" + fmt.Sprint(w1.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer dup.Close()
	tests := []struct {
		name string
		a, b io.Writer
		want bool
	}{
		{"one pipe", w1, w1, true},
		{"one pipe, two descriptors", w1, dup, true},
		{"two pipes", w1, w2, false},
		{"a pipe and a buffer", w1, &bytes.Buffer{}, false},
		{"buffers", &bytes.Buffer{}, &bytes.Buffer{}, false},
	}
	for _, tc := range tests {
		if got := SameFile(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sameFile = %v, want %v", tc.name, got, tc.want)
		}
	}
}
