// Command nothing is the floor of the benchmarks: an external-authentication
// helper that answers yes to every request and checks nothing. It frames
// like tokenauthd (ejabberd's 2-byte length frames, or one request per line
// when the first byte is a lowercase letter) and, like tokenauthd, flushes
// its replies only when no more input is buffered. Never deploy it.
//
// With -socket PATH it serves every connection to that Unix socket the same
// way, as a floor for the daemon.
//
// With -relay PATH it is the floor of a relay instead: the cheapest one, it
// parses nothing and copies stdin to a connection to the Unix socket at
// PATH and that connection to stdout, each direction a blocking loop of its
// own, as much as each read gives. In front of `nothing -socket` it is the
// two-hop floor of `tokenauthd connect` in front of `tokenauthd serve`.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"io"
	"log"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	socket := flag.String("socket", "", "serve this Unix socket instead of stdin/stdout")
	relay := flag.String("relay", "", "copy stdin to this Unix socket and its replies to stdout, parsing nothing")
	flag.Parse()
	if *relay != "" {
		copyThrough(*relay)
		return
	}
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

// copyThrough copies stdin to the Unix socket at path and what comes back
// to stdout, until stdin ends: one thread, blocking in poll(2) until either
// side has bytes, then one read and one write, as much as the read gives.
// (Two goroutines each blocked in a read cost more: with both of the
// runtime's processors held in system calls, its monitor takes them back
// and each wake-up must find one again.)
func copyThrough(path string) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		log.Fatal(err)
	}
	sock, err := nc.(*net.UnixConn).File() // a blocking duplicate
	nc.Close()
	if err != nil {
		log.Fatal(err)
	}
	fds := []unix.PollFd{{Fd: int32(os.Stdin.Fd()), Events: unix.POLLIN}, {Fd: int32(sock.Fd()), Events: unix.POLLIN}}
	to := []*os.File{sock, os.Stdout}
	from := []*os.File{os.Stdin, sock}
	buf := make([]byte, 64<<10)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if err == unix.EINTR {
				continue
			}
			log.Fatal(err)
		}
		for i, fd := range fds {
			if fd.Revents == 0 {
				continue
			}
			n, err := from[i].Read(buf)
			if n > 0 {
				if _, err := to[i].Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
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
