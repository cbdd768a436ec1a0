// Command nothing is the floor of the benchmarks: an external-authentication
// helper that answers yes to every request and checks nothing. It frames
// like tokenauthd (ejabberd's 2-byte length frames, or one request per line
// when the first byte is a lowercase letter) and, like tokenauthd, flushes
// its replies only when no more input is buffered. Never deploy it.
package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"os"
)

func main() {
	r := bufio.NewReaderSize(os.Stdin, 64<<10)
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	first, err := r.Peek(1)
	if err != nil {
		return
	}
	generic := first[0] >= 'a' && first[0] <= 'z'
	yes := []byte{0, 2, 0, 1}
	if generic {
		yes = []byte("1\n")
	}
	var hdr [2]byte
	for {
		if generic {
			_, err := r.ReadSlice('\n')
			for err == bufio.ErrBufferFull { // a long line is one request
				_, err = r.ReadSlice('\n')
			}
			if err != nil {
				break
			}
		} else {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				break
			}
			if _, err := r.Discard(int(binary.BigEndian.Uint16(hdr[:]))); err != nil {
				break
			}
		}
		w.Write(yes)
		if r.Buffered() == 0 && w.Flush() != nil {
			break
		}
	}
	w.Flush()
}
