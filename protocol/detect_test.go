package protocol

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// detectStream resolves Auto on s as the Reader does, one more byte at a
// time, and returns the framing and how many bytes it looked at. Input
// that ends undecided is Generic.
func detectStream(s []byte) (Mode, int) {
	for n := 1; n <= len(s); n++ {
		if m := Detect(s[:n]); m != Auto {
			return m, n
		}
	}
	return Generic, len(s)
}

func TestDetect(t *testing.T) {
	tests := []struct {
		in   string
		want Mode
	}{
		{"", Auto},
		{"auth:", Generic},
		{"auth:a:b:c\n", Generic},
		{"isuser:a:b\n", Generic},
		{"removeuser3:a:b:c", Generic},
		{"removeuser:a:b", Generic},
		{"a", Auto},          // a prefix of auth:
		{"auth", Auto},       // still
		{"removeuser", Auto}, // removeuser: or removeuser3:
		{"authx", Ejabberd},  // no command
		{"bogus:a:b\n", Ejabberd},
		{"AUTH:a:b:c\n", Ejabberd},
		{"\x00\x0aisuser:a:b", Ejabberd},
		{"\n", Ejabberd},
		// 0x6175 bytes of "auth:...": the length reads "au", then "auth".
		{"auauth:", Ejabberd},
		// 0x6973 bytes of "user:...": no command is named "user".
		{"isuser:", Generic},
	}
	for _, tt := range tests {
		if got := Detect([]byte(tt.in)); got != tt.want {
			t.Errorf("Detect(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// No command's name is two lowercase letters followed by another command's
// name: were one so, an ejabberd frame of that second command, of a length
// spelling the two letters, would read as a line.
func TestNoCommandIsTwoLettersAndAnother(t *testing.T) {
	for _, c := range Commands() {
		for _, d := range Commands() {
			if len(c) == len(d)+2 && strings.HasSuffix(c, d) {
				t.Errorf("command %q is %q after two bytes", c, d)
			}
		}
	}
}

// Every ejabberd frame of every command, of every length, is detected as
// ejabberd; every generic request as generic, without looking past its
// command's name and ':'.
func TestDetectEveryFrameAndLine(t *testing.T) {
	for _, c := range Commands() {
		for n := 0; n <= MaxFrame; n++ {
			var s [2 + 16]byte
			binary.BigEndian.PutUint16(s[:], uint16(n))
			b := append(s[:2], c+":a:b"...)
			if m, _ := detectStream(b); m != Ejabberd {
				t.Fatalf("a %s frame of %d bytes (%q) is detected as %v", c, n, b, m)
			}
		}
		line := []byte(c + ":a:b\n")
		if m, n := detectStream(line); m != Generic || n != len(c)+1 {
			t.Errorf("%q: detected %v after %d bytes, want generic after %d", line, m, n, len(c)+1)
		}
	}
}

// A frame of 0x6100 bytes or more, whose length starts with a lowercase
// letter, is read as a frame, and so are the frames after it.
func TestReaderAutoLongFrame(t *testing.T) {
	for _, n := range []int{0x6100, 0x6175, 0x6973, 0x7365, 0x7a7a, MaxFrame} {
		body := "auth:alice:h:" + strings.Repeat("p", n-len("auth:alice:h:"))
		in := frame(body) + frame("isuser:a:b")
		for how, r := range map[string]io.Reader{
			"whole":   strings.NewReader(in),
			"onebyte": iotest.OneByteReader(strings.NewReader(in)),
		} {
			for _, maxFrame := range []int{0, 4096} {
				rd := NewReaderSize(r, Auto, 0, maxFrame)
				got := readAll(rd)
				want := []result{{body, nil}, {"isuser:a:b", nil}}
				if maxFrame != 0 {
					want[0] = result{"", ErrTooLarge}
				}
				if !equalResults(got, want) || rd.Mode() != Ejabberd {
					t.Errorf("%#x/%s/%d: %v, read %s, want %s", n, how, maxFrame, rd.Mode(), short(got), short(want))
				}
				r = strings.NewReader(in) // for the next bound
			}
		}
	}
}

// short describes results with their bodies' lengths.
func short(rs []result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "[%d bytes %.12q, %v]", len(r.body), r.body, r.err)
	}
	return b.String()
}

// Input that ends before the framing can be told is a line; a prefix of no
// command is a cut frame.
func TestServeAutoShortInput(t *testing.T) {
	for _, tt := range []struct{ in, out string }{
		{"a", "0\n"},
		{"isu", "0\n"},
		{"auth", "0\n"},
		{"ab", noF},
		{"\x00", noF},
	} {
		var out bytes.Buffer
		s := &Server{Mode: Auto, Handler: &testHandler{}}
		if err := s.Serve(context.Background(), strings.NewReader(tt.in), &out); err != nil || out.String() != tt.out {
			t.Errorf("%q: wrote %q, %v; want %q", tt.in, out.String(), err, tt.out)
		}
	}
}

// Detection never waits for more bytes than the request holds: the
// shortest generic requests are answered before anything else is sent.
func TestServeAutoShortestRequests(t *testing.T) {
	for _, first := range []string{"isuser:a:b\n", "seen:a:b:\n", "auth:a:b:\n", "removeuser:a:b\n"} {
		var out bytes.Buffer
		p := &peer{t: t, name: first, chunks: []string{first, "isuser:alice:h\n"}, owed: []string{"", "0\n"}, out: &out}
		s := &Server{Mode: Auto, Handler: &testHandler{}}
		if err := s.Serve(context.Background(), p, p); err != nil {
			t.Errorf("%q: Serve = %v", first, err)
		}
		if !p.failed && out.String() != "0\n1\n" {
			t.Errorf("%q: wrote %q, want %q", first, out.String(), "0\n1\n")
		}
	}
}

// chunkReader hands out one chunk per Read and logs it.
type chunkReader struct {
	chunks []string
	log    *[]string
}

func (c *chunkReader) Read(b []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.chunks[0])
	*c.log = append(*c.log, "in:"+c.chunks[0][:n])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// The hooks bracket each request: OnRequestStart once its first byte has
// arrived, OnRequestRead once it is read (or skipped), and neither while
// the reader waits for a request to start.
func TestReaderHooks(t *testing.T) {
	tests := []struct {
		name   string
		mode   Mode
		chunks []string
		want   string
	}{
		{"generic", Auto, []string{"isu", "ser:a:b\n", "\n", "auth:a:b:c\n"},
			"in:isu start in:ser:a:b\n read req:isuser:a:b in:\n start read in:auth:a:b:c\n start read req:auth:a:b:c"},
		{"pipelined", Generic, []string{"isuser:a:b\nisuser:c:d\n"},
			"in:isuser:a:b\nisuser:c:d\n start read req:isuser:a:b start read req:isuser:c:d"},
		{"frames", Ejabberd, []string{frame("isuser:a:b")[:1], frame("isuser:a:b")[1:5], frame("isuser:a:b")[5:]},
			fmt.Sprintf("in:%s start in:%s in:%s read req:isuser:a:b", frame("isuser:a:b")[:1], frame("isuser:a:b")[1:5], frame("isuser:a:b")[5:])},
		{"too large", Ejabberd, []string{frame(strings.Repeat("x", 20)), frame("isuser:a:b")},
			fmt.Sprintf("in:%s start read err in:%s start read req:isuser:a:b", frame(strings.Repeat("x", 20)), frame("isuser:a:b"))},
		{"cut", Ejabberd, []string{frame("isuser:a:b")[:4]},
			fmt.Sprintf("in:%s start read err", frame("isuser:a:b")[:4])},
	}
	for _, tt := range tests {
		var log []string
		rd := NewReaderSize(&chunkReader{chunks: tt.chunks, log: &log}, tt.mode, 0, 16)
		rd.OnRequestStart = func() { log = append(log, "start") }
		rd.OnRequestRead = func() { log = append(log, "read") }
		for {
			body, err := rd.ReadRequest()
			if err == io.EOF {
				break
			}
			if err != nil {
				log = append(log, "err")
				continue
			}
			log = append(log, "req:"+string(body))
		}
		if got := strings.Join(log, " "); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

// A frame over the bound is skipped without being buffered, answered no,
// and the stream stays in sync; one within it is answered.
func TestServeMaxFrame(t *testing.T) {
	big := "auth:alice:h:" + strings.Repeat("g", 5000)
	in := frame(big) + frame("auth:alice:h:good") + frame(strings.Repeat("z", MaxFrame)) + frame("isuser:alice:h")
	for _, tt := range []struct {
		maxFrame int
		out      string
		bad      int
	}{
		{0, noF + yesF + noF + yesF, 1},    // no bound: the big one is read and refused by the handler
		{4096, noF + yesF + noF + yesF, 2}, // bound: both long ones are skipped
	} {
		h := &testHandler{}
		bad := 0
		s := &Server{Mode: Ejabberd, Handler: h, MaxFrame: tt.maxFrame, OnBadRequest: func(Mode, error) { bad++ }}
		var out bytes.Buffer
		if err := s.Serve(context.Background(), iotest.HalfReader(strings.NewReader(in)), &out); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.out || bad != tt.bad {
			t.Errorf("MaxFrame %d: wrote %q, %d bad; want %q, %d", tt.maxFrame, out.String(), bad, tt.out, tt.bad)
		}
	}
}

// A line cut short by a read error other than the end of input (a
// deadline) is no request: it is not returned, the error is.
func TestReaderLineCutByError(t *testing.T) {
	boom := errors.New("deadline")
	for _, mode := range []Mode{Generic, Auto} {
		rd := NewReader(io.MultiReader(strings.NewReader("isuser:a:b\nisuser:al"), iotest.ErrReader(boom)), mode, 0)
		got := readAll(rd)
		want := []result{{"isuser:a:b", nil}, {"", boom}, {"", boom}}
		if len(got) > 3 {
			got = got[:3]
		}
		if !equalResults(got, want) {
			t.Errorf("%v: read %+v, want %+v", mode, got, want)
		}
	}
}
