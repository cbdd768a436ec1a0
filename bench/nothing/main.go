// Command nothing is the floor of the benchmarks: an external-authentication
// helper that answers yes to every request and checks nothing. It frames
// like tokenauthd (ejabberd's 2-byte length frames, or one request per line
// when the first byte is a lowercase letter) and, like tokenauthd, flushes
// its replies only when no more input is buffered. Never deploy it.
//
// With -socket PATH it serves every connection to that Unix socket the same
// way, as a floor for the daemon.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"io"
	"log"
	"net"
	"os"
)

func main() {
	socket := flag.String("socket", "", "serve this Unix socket instead of stdin/stdout")
	flag.Parse()
	if *socket == "" {
		answer(os.Stdin, os.Stdout)
		return
	}
	os.Remove(*socket)
	l, err := net.Listen("unix", *socket)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			answer(c, c)
			c.Close()
		}()
	}
}

// answer says yes to every request read from in, until its end.
func answer(in io.Reader, out io.Writer) {
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(out, 64<<10)
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
