package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/mint"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// benchTarget is one helper to measure: a command to spawn, or a daemon's
// Unix socket to dial.
type benchTarget struct {
	name   string
	argv   []string // spawned with $TOKENAUTHD_CONFIG set; nil for a socket
	socket string
	config string  // its configuration (-target-config), or "" for -config's
	m      *minter // mints its tokens: from config, or from -config
}

// benchTargets collects -helper and -socket flags in the order given.
type benchTargets struct {
	list   *[]benchTarget
	socket bool
}

func (b benchTargets) String() string { return "" }

func (b benchTargets) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" || strings.TrimSpace(value) == "" {
		return errors.New("want NAME=VALUE")
	}
	t := benchTarget{name: name}
	if b.socket {
		t.socket = value
	} else {
		t.argv = strings.Fields(value)
	}
	*b.list = append(*b.list, t)
	return nil
}

// targetConfigs collects -target-config flags: a target's name, the
// configuration its tokens are minted from.
type targetConfigs map[string]string

func (c targetConfigs) String() string { return "" }

func (c targetConfigs) Set(s string) error {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" {
		return errors.New("want NAME=FILE")
	}
	c[name] = path
	return nil
}

// benchRun is what one run of one target measured.
type benchRun struct {
	firstReply         time.Duration // spawn (or dial) to the first reply
	rtts               []time.Duration
	rate               float64       // pipelined replies per second
	cpuPerReq          time.Duration // the helper's CPU time per pipelined request (0: unknown)
	cpuLockstep        time.Duration // the same per lockstep request (0: unknown)
	accepted, fresh    int           // yes to a token's first copy, of that many
	refused, replays   int           // no to a token's second copy, of that many
	rssKiB, peakRSSKiB int64         // the helper's, after the run (0: unknown)
}

func Run(ctx context.Context, e *cli.Env, args []string) int {
	fs := cli.NewFlags(e, "bench", "tokenauthd bench [flags] -helper NAME=COMMAND... -socket NAME=PATH...")
	var targets []benchTarget
	fs.Var(benchTargets{list: &targets}, "helper", "a helper to spawn, as NAME=COMMAND ARGS (split on spaces; $TOKENAUTHD_CONFIG is set for it); repeatable")
	fs.Var(benchTargets{list: &targets, socket: true}, "socket", "a daemon's Unix socket to dial, as NAME=PATH; repeatable")
	perTarget := targetConfigs{}
	fs.Var(perTarget, "target-config", "mint the tokens of target NAME from FILE (and hand FILE to it if spawned), not from -config, as NAME=FILE; repeatable")
	cfgFlag := fs.String("config", "", "configuration to mint tokens from and hand to the helpers (default: a fresh one with -hosts hosts)")
	hosts := fs.Int("hosts", 1, "hosts in the fresh configuration")
	users := fs.Int("users", 1000, "users the tokens are spread over")
	lockstepN := fs.Int("lockstep", 10000, "tokens sent one at a time, waiting for each reply, per run")
	pipelinedN := fs.Int("pipelined", 100000, "tokens sent without waiting for replies, per run")
	runs := fs.Int("runs", 1, "runs of each target (interleaved); the table shows the medians")
	chunk := fs.Int("chunk", 100, "lockstep tokens a target is sent in its turn before the next target's")
	replayFlag := fs.Bool("replay", false, "send every token twice in a row: the second copy must be refused")
	protoFlag := fs.String("protocol", "ejabberd", "framing: ejabberd or generic")
	writeFlag := fs.String("write-config", "", "write the fresh configuration of -hosts hosts to this file, for daemons to serve, and exit (over 1000 hosts, their secrets go to FILE.d, for $CREDENTIALS_DIRECTORY)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if *writeFlag != "" {
		return writeConfigOnly(ctx, e, fs, *writeFlag, *hosts)
	}
	mode, err := protocol.ParseMode(*protoFlag)
	switch {
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case err != nil || mode == protocol.Auto:
		err = fmt.Errorf("-protocol must be ejabberd or generic, not %q", *protoFlag)
	case len(targets) == 0:
		err = errors.New("no -helper or -socket to measure")
	case *users < 1 || *hosts < 1 || *runs < 1 || *chunk < 1 || *lockstepN < 0 || *pipelinedN < 0:
		err = errors.New("-users, -hosts, -runs and -chunk must be at least 1, counts at least 0")
	case *cfgFlag != "" && flagSet(fs, "hosts"):
		err = errors.New("-hosts makes a fresh configuration: not with -config")
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd bench: %v\n", err)
		return 2
	}

	dir, err := os.MkdirTemp("", "tokenauthd-bench-")
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	path, creds := *cfgFlag, e.Var("CREDENTIALS_DIRECTORY")
	if path == "" {
		path = filepath.Join(dir, "config.toml")
		if err = writeBenchConfig(ctx, path, *hosts); *hosts > inlineHosts {
			creds = credentialsDir(path)
		}
	}
	var m *minter
	if err == nil {
		m, err = newMinter(path, config.Options{Credentials: creds}, *users)
	}
	if err == nil {
		err = setMinters(targets, perTarget, m, config.Options{Credentials: creds}, *users)
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd bench: %v\n", err)
		return 1
	}

	b := &bencher{mode: mode, config: path, credentials: creds, dir: dir, replay: *replayFlag, chunk: *chunk}
	results, err := b.runAll(ctx, targets, *runs, *lockstepN, *pipelinedN)
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd bench: %v\n", err)
		return 1
	}
	return b.report(e, targets, results, m, *lockstepN, *pipelinedN, *runs)
}

// runAll runs every target runs times and returns each target's runs.
// Within a run every target is started (or dialled) and answers a first
// request; then the targets take turns with the lockstep tokens, b.chunk
// each, each round in another order (runOrder), so that a drift in the
// machine's state (its load, its caches, how deeply its idle CPUs sleep)
// falls on all alike; then each target gets its pipelined tokens, one
// after another, each run starting with another target.
func (b *bencher) runAll(ctx context.Context, targets []benchTarget, runs, lockN, pipeN int) ([][]benchRun, error) {
	results := make([][]benchRun, len(targets))
	for r := 0; r < runs; r++ {
		got, err := b.runOnce(ctx, targets, r, lockN, pipeN)
		if err != nil {
			return nil, err
		}
		for i := range targets {
			results[i] = append(results[i], got[i])
		}
	}
	return results, nil
}

// session is one target during a run: its connection and what it measured.
type session struct {
	c        *conn
	stop     func() error
	run      benchRun
	cpu      time.Duration // CPU time over the lockstep turns so far
	cpuKnown bool
}

// runOnce is run r of every target (runAll).
func (b *bencher) runOnce(ctx context.Context, targets []benchTarget, r, lockN, pipeN int) ([]benchRun, error) {
	order := runOrder(r, len(targets))
	ss := make([]*session, len(targets))
	defer func() {
		for _, s := range ss {
			if s != nil {
				s.stop()
			}
		}
	}()
	// Minted before the clock starts, fresh for every run: a daemon
	// remembers the tokens of the previous ones.
	locks := make([][][]byte, len(targets))
	for _, i := range order {
		locks[i] = targets[i].m.requests(b.mode, lockN)
	}
	for _, i := range order {
		s, err := b.open(ctx, targets[i], targets[i].m.isUser(b.mode))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", targets[i].name, err)
		}
		s.run.rtts = make([]time.Duration, 0, lockN*b.copies())
		ss[i] = s
	}
	// The garbage of the minting is collected now, not while a helper is
	// timed.
	runtime.GC()
	for off, k := 0, 0; off < lockN; off, k = off+b.chunk, k+1 {
		for _, i := range runOrder(r+k, len(targets)) {
			if err := b.lockstep(ss[i], locks[i][off:min(off+b.chunk, lockN)]); err != nil {
				return nil, fmt.Errorf("%s: lockstep: %w", targets[i].name, err)
			}
		}
	}
	for _, i := range order {
		s := ss[i]
		if s.cpuKnown && len(s.run.rtts) > 0 {
			s.run.cpuLockstep = s.cpu / time.Duration(len(s.run.rtts))
		}
		if pipeN > 0 {
			pipe := targets[i].m.requests(b.mode, pipeN)
			runtime.GC()
			if err := b.pipelined(s, pipe); err != nil {
				return nil, fmt.Errorf("%s: pipelined: %w", targets[i].name, err)
			}
		}
	}
	runs := make([]benchRun, len(targets))
	for _, i := range order {
		s := ss[i]
		s.run.rssKiB, s.run.peakRSSKiB = rss(s.c.pid)
		ss[i] = nil
		if err := s.stop(); err != nil {
			return nil, fmt.Errorf("%s: %w", targets[i].name, err)
		}
		runs[i] = s.run
	}
	return runs, nil
}

// setMinters gives each target the minter of its -target-config, or m.
func setMinters(targets []benchTarget, perTarget targetConfigs, m *minter, o config.Options, users int) error {
	minters := map[string]*minter{}
	named := map[string]bool{}
	for i := range targets {
		t := &targets[i]
		named[t.name] = true
		t.config, t.m = perTarget[t.name], m
		if t.config == "" {
			continue
		}
		if minters[t.config] == nil {
			tm, err := newMinter(t.config, o, users)
			if err != nil {
				return err
			}
			minters[t.config] = tm
		}
		t.m = minters[t.config]
	}
	for name := range perTarget {
		if !named[name] {
			return fmt.Errorf("-target-config %s: no -helper or -socket of that name", name)
		}
	}
	return nil
}

// writeConfigOnly is bench -write-config: it writes a fresh configuration
// of hosts hosts to path, as a run would, and nothing else.
func writeConfigOnly(ctx context.Context, e *cli.Env, fs *flag.FlagSet, path string, hosts int) int {
	if fs.NArg() > 0 || hosts < 1 {
		fmt.Fprintln(e.Stderr, "tokenauthd bench: -write-config takes -hosts (at least 1) and no argument")
		return 2
	}
	if err := writeBenchConfig(ctx, path, hosts); err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd bench: %v\n", err)
		return 1
	}
	if hosts > inlineHosts {
		fmt.Fprintf(e.Stderr, "tokenauthd bench: the hosts' secrets are in %s: set CREDENTIALS_DIRECTORY to it for whatever reads %s\n",
			credentialsDir(path), path)
	}
	return 0
}

// runOrder returns the order of n targets in run r: each run starts one
// target further on, so that no target always runs first (right after the
// bench starts, or mints) or always after the same other.
func runOrder(r, n int) []int {
	order := make([]int, n)
	for k := range order {
		order[k] = (k + r) % n
	}
	return order
}

// flagSet reports whether the named flag was given.
func flagSet(fs *flag.FlagSet, name string) (set bool) {
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// inlineHosts is the most hosts whose secrets a fresh configuration holds
// inline: 10,000 hosts' would take it over the 1 MiB bound on a
// configuration file.
const inlineHosts = 1000

// writeBenchConfig writes a configuration with hosts fresh hosts, named
// h0.bench.test, h1.bench.test..., each made as gen-secrets makes it. With
// more than inlineHosts, each host's secret and seed are credential files
// ("%d/N.secret", "%d/N.seed") in the directory credentialsDir(path),
// which whatever reads the configuration must be told of
// (CREDENTIALS_DIRECTORY or -credentials).
func writeBenchConfig(ctx context.Context, path string, hosts int) error {
	var buf bytes.Buffer
	buf.WriteString("# Made by tokenauthd bench.\n")
	creds := ""
	if hosts > inlineHosts {
		creds = credentialsDir(path)
		if err := os.Mkdir(creds, 0o700); err != nil {
			return err
		}
	}
	for i := 0; i < hosts; i++ {
		buf.WriteString("\n")
		if creds == "" {
			block, err := mint.HostBlock(benchHost(i))
			if err != nil {
				return err
			}
			buf.WriteString(block)
			continue
		}
		secret, seed, err := mint.NewSecrets()
		if err != nil {
			return err
		}
		for name, value := range map[string]string{"secret": secret, "seed": seed} {
			if err := os.WriteFile(filepath.Join(creds, fmt.Sprintf("%d.%s", i, name)), []byte(value+"\n"), 0o600); err != nil {
				return err
			}
		}
		fmt.Fprintf(&buf, "[hosts.%q]\ntoken_secret_file = \"%%d/%d.secret\"\notp_seed_file = \"%%d/%d.seed\"\n", benchHost(i), i, i)
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// credentialsDir is where a fresh configuration at path keeps its hosts'
// secrets when there are too many to hold inline.
func credentialsDir(path string) string { return path + ".d" }

func benchHost(i int) string { return "h" + strconv.Itoa(i) + ".bench.test" }

// minter makes the requests of a run: auth requests carrying fresh tokens
// for users spread over every configured host.
type minter struct {
	v      *verifier.Offline
	hosts  []string
	users  int
	digits int    // nonce digits
	prefix string // random, so that two bench processes never make the same nonce
	count  uint64
	tokens int // made so far
}

func newMinter(path string, o config.Options, users int) (*minter, error) {
	cfg, err := setup.Load(path, o)
	if err != nil {
		return nil, err
	}
	v, err := cfg.NewOffline()
	if err != nil {
		return nil, err
	}
	m := &minter{v: v, users: users, digits: verifier.NonceDigits}
	if cfg.Token.NonceDigits != 0 {
		m.digits = cfg.Token.NonceDigits
	}
	for h := range cfg.Hosts {
		m.hosts = append(m.hosts, h)
	}
	sort.Strings(m.hosts)
	r, err := rand.Int(rand.Reader, big.NewInt(1e12))
	if err != nil {
		return nil, err
	}
	m.prefix = fmt.Sprintf("%012d", r)
	return m, nil
}

// token returns a fresh token for the i-th user. It is minted for the next
// time step, which the drift window accepts as well as the current one, so
// that it stays valid 60 to 90 s (at the default interval) however long the
// minting of a million takes on a busy machine; verifying it costs the same.
// With no drift, it is minted for now.
func (m *minter) token(i int) (user, host, tok string) {
	user, host = "user"+strconv.Itoa(i%m.users), m.hosts[i%len(m.hosts)]
	m.count++
	nonce := fmt.Sprintf("%s%020d", m.prefix, m.count)
	if len(nonce) > m.digits {
		nonce = nonce[len(nonce)-m.digits:] // the counter part, unique in this process
	}
	for len(nonce) < m.digits {
		nonce = "0" + nonce
	}
	at := time.Now()
	if p := m.v.Params(); p.Drift > 0 {
		at = at.Add(p.Interval)
	}
	tok, err := m.v.Mint(user, host, at, nonce)
	if err != nil { // cannot happen: the configuration was loaded
		panic(err)
	}
	m.tokens++
	return user, host, tok
}

// requests returns n framed auth requests, each with a fresh token.
func (m *minter) requests(mode protocol.Mode, n int) [][]byte {
	reqs := make([][]byte, n)
	for i := range reqs {
		user, host, tok := m.token(i)
		reqs[i] = benchFrame(mode, "auth:"+user+":"+host+":"+tok)
	}
	return reqs
}

// isUser returns a framed isuser request for a configured host.
func (m *minter) isUser(mode protocol.Mode) []byte {
	return benchFrame(mode, "isuser:user0:"+m.hosts[0])
}

// benchFrame frames a request body the minter built (always well formed).
func benchFrame(mode protocol.Mode, body string) []byte {
	b, err := protocol.AppendFrame(nil, mode, []byte(body))
	if err != nil {
		panic("bench: a request the minter built cannot be framed: " + err.Error())
	}
	return b
}

// bencher measures targets.
type bencher struct {
	mode   protocol.Mode
	config string // handed to spawned helpers as $TOKENAUTHD_CONFIG
	// credentials, if not "", is handed to them as $CREDENTIALS_DIRECTORY
	credentials string
	dir         string // for the helpers' stderr
	replay      bool
	chunk       int // lockstep tokens per target's turn
}

// conn is the bench's side of a helper: blocking file descriptors, so that
// a reply wakes the reader directly.
type conn struct {
	w   *os.File
	r   *bufio.Reader
	pid int // the helper's process, 0 if unknown
}

// open starts (or dials) t and times its first reply, to isUser.
func (b *bencher) open(ctx context.Context, t benchTarget, isUser []byte) (*session, error) {
	s := &session{cpuKnown: true}
	start := time.Now()
	var err error
	if t.socket != "" {
		s.c, s.stop, err = dial(t.socket)
	} else {
		s.c, s.stop, err = b.spawn(ctx, t)
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.c.roundTrip(b.mode, isUser); err != nil {
		s.stop()
		return nil, fmt.Errorf("first request: %w", err)
	}
	s.run.firstReply = time.Since(start)
	return s, nil
}

// lockstep sends reqs one at a time, each reply awaited, timing each, and
// adds the target's CPU time over them to s.cpu.
func (b *bencher) lockstep(s *session, reqs [][]byte) error {
	cpu0, ok0 := procCPUTime(s.c.pid)
	for _, req := range reqs {
		for copy := 0; copy < b.copies(); copy++ {
			t0 := time.Now()
			yes, err := s.c.roundTrip(b.mode, req)
			if err != nil {
				return err
			}
			s.run.rtts = append(s.run.rtts, time.Since(t0))
			s.run.count(copy, yes)
		}
	}
	cpu1, ok1 := procCPUTime(s.c.pid)
	s.cpu += cpu1 - cpu0
	s.cpuKnown = s.cpuKnown && ok0 && ok1
	return nil
}

// pipelined sends pipe all at once, from another goroutine, while reading
// the replies, and records the rate and the target's CPU time per request.
func (b *bencher) pipelined(s *session, pipe [][]byte) error {
	c := s.c
	var all []byte
	for _, req := range pipe {
		for copy := 0; copy < b.copies(); copy++ {
			all = append(all, req...)
		}
	}
	werr := make(chan error, 1)
	cpu0, cpuOK := procCPUTime(c.pid)
	t0 := time.Now()
	go func() { _, err := c.w.Write(all); werr <- err }()
	for i := 0; i < len(pipe)*b.copies(); i++ {
		yes, err := c.readReply(b.mode)
		if err != nil {
			return fmt.Errorf("reply %d: %w", i, err)
		}
		s.run.count(i%b.copies(), yes)
	}
	s.run.rate = float64(len(pipe)*b.copies()) / time.Since(t0).Seconds()
	if c.r.Buffered() > 0 {
		return protocol.ErrUnasked
	}
	if cpu1, ok := procCPUTime(c.pid); ok && cpuOK {
		s.run.cpuPerReq = (cpu1 - cpu0) / time.Duration(len(pipe)*b.copies())
	}
	return <-werr
}

func (b *bencher) copies() int {
	if b.replay {
		return 2
	}
	return 1
}

// count tallies the reply to a token's first (copy 0) or second copy.
func (r *benchRun) count(copy int, yes bool) {
	switch {
	case copy == 0:
		r.fresh++
		if yes {
			r.accepted++
		}
	default:
		r.replays++
		if !yes {
			r.refused++
		}
	}
}

// spawn starts t's command on pipes, its stderr in a file, and returns a
// stop function that closes its stdin and waits for it to exit.
func (b *bencher) spawn(ctx context.Context, t benchTarget) (*conn, func() error, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, nil, err
	}
	errF, err := os.CreateTemp(b.dir, "stderr-")
	if err != nil {
		return nil, nil, err
	}
	errPath := errF.Name()
	cmd := exec.CommandContext(ctx, t.argv[0], t.argv[1:]...)
	cfg := b.config
	if t.config != "" {
		cfg = t.config
	}
	cmd.Env = append(os.Environ(), "TOKENAUTHD_CONFIG="+cfg)
	if b.credentials != "" {
		cmd.Env = append(cmd.Env, "CREDENTIALS_DIRECTORY="+b.credentials)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errF
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errF.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, nil, err
	}
	// Fd puts the pipes in blocking mode: reads and writes are plain
	// system calls, without the runtime's poller in the way.
	inW.Fd()
	outR.Fd()
	c := &conn{w: inW, r: bufio.NewReaderSize(outR, 64<<10), pid: cmd.Process.Pid}
	var stopped bool
	var stopErr error
	stop := func() error {
		if stopped {
			return stopErr
		}
		stopped = true
		inW.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case stopErr = <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			stopErr = fmt.Errorf("did not exit within 5 s of the end of its input")
			<-done
		}
		outR.Close()
		if stopErr != nil {
			stopErr = fmt.Errorf("%v; stderr: %s", stopErr, tail(errPath))
		}
		return stopErr
	}
	return c, stop, nil
}

// dial connects to a daemon's Unix socket.
func dial(path string) (*conn, func() error, error) {
	nc, err := net.Dial("unix", path)
	if err != nil {
		return nil, nil, err
	}
	// A blocking duplicate of the socket, as for pipes.
	f, err := nc.(*net.UnixConn).File()
	nc.Close()
	if err != nil {
		return nil, nil, err
	}
	c := &conn{w: f, r: bufio.NewReaderSize(f, 64<<10), pid: peerPID(f)}
	return c, func() error { f.Close(); return nil }, nil
}

// roundTrip sends one request and reads its reply, which must be all
// that came: a helper that answers once more is out of step.
func (c *conn) roundTrip(mode protocol.Mode, req []byte) (bool, error) {
	if _, err := c.w.Write(req); err != nil {
		return false, err
	}
	ok, err := c.readReply(mode)
	if err == nil && c.r.Buffered() > 0 {
		return false, protocol.ErrUnasked
	}
	return ok, err
}

// readReply reads one reply and insists that it is exactly a yes or a no.
func (c *conn) readReply(mode protocol.Mode) (bool, error) {
	ok, err := protocol.ReadReply(c.r, mode)
	if err == io.EOF {
		return false, errors.New("the helper closed its output")
	}
	return ok, err
}

// rss returns the resident and peak resident sizes of a process, in KiB, or
// zeros if they cannot be read.
func rss(pid int) (cur, peak int64) {
	if pid == 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			cur = n
		case "VmHWM":
			peak = n
		}
	}
	return cur, peak
}

// procCPUTime returns the CPU time a process has used, user and system, if
// it can be read: the sum of its threads' time on a CPU in nanoseconds
// (schedstat), else its user and system time in the kernel's ticks of 10
// ms.
func procCPUTime(pid int) (time.Duration, bool) {
	if pid == 0 {
		return 0, false
	}
	if d, ok := schedCPUTime(pid); ok {
		return d, true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// After the command name in parentheses: state, ppid, ... utime is
	// the 12th field, stime the 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}

// schedCPUTime sums the time on a CPU of every thread of a process, from
// /proc/PID/task/*/schedstat (the first field, in nanoseconds).
func schedCPUTime(pid int) (time.Duration, bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			return 0, false
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b) + " x")[0], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += time.Duration(ns)
	}
	return sum, true
}

// tail returns the end of a file, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return strings.TrimSpace(string(b))
}

// report prints the medians of every target's runs as a markdown table,
// the first target being the reference ("floor") of the ratios, and
// returns 1 if a target accepted fewer tokens than it was sent or, with
// -replay, took a second copy.
func (b *bencher) report(e *cli.Env, targets []benchTarget, results [][]benchRun, m *minter, lockN, pipeN, runs int) int {
	fmt.Fprintf(e.Stdout, "%d hosts, %d users, %s framing; per run: %d tokens in lockstep, %d pipelined", len(m.hosts), m.users, b.mode, lockN, pipeN)
	if b.replay {
		fmt.Fprint(e.Stdout, ", each sent twice")
	}
	fmt.Fprintf(e.Stdout, "; medians of %d run(s)", runs)
	for _, t := range targets {
		if t.config != "" {
			fmt.Fprintf(e.Stdout, "; %s: %d hosts", t.name, len(t.m.hosts))
		}
	}
	fmt.Fprint(e.Stdout, "\n\n")
	fmt.Fprintln(e.Stdout, "| helper | p50 | p90 | p99 | max | p50 / floor | p99 / floor | pipelined | CPU / req | CPU / req lockstep | first reply | accepted | replays refused | RSS after (peak) |")
	fmt.Fprintln(e.Stdout, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	code := 0
	var floor [4]float64
	for i, t := range targets {
		var p [4][]float64 // p50, p90, p99, max in µs, one per run
		var rate, cpu, cpuLock, first, mem, peak []float64
		accepted, refused := "", "–"
		for _, r := range results[i] {
			if len(r.rtts) > 0 {
				sort.Slice(r.rtts, func(a, b int) bool { return r.rtts[a] < r.rtts[b] })
				for j, q := range []float64{0.50, 0.90, 0.99, 1} {
					p[j] = append(p[j], micros(r.rtts[int(q*float64(len(r.rtts)-1))]))
				}
			}
			rate = append(rate, r.rate)
			if r.cpuPerReq > 0 {
				cpu = append(cpu, micros(r.cpuPerReq))
			}
			if r.cpuLockstep > 0 {
				cpuLock = append(cpuLock, micros(r.cpuLockstep))
			}
			first = append(first, float64(r.firstReply)/float64(time.Millisecond))
			mem = append(mem, float64(r.rssKiB)/1024)
			peak = append(peak, float64(r.peakRSSKiB)/1024)
			if a := fmt.Sprintf("%d/%d", r.accepted, r.fresh); accepted == "" || r.accepted != r.fresh {
				accepted = a
			}
			if b.replay && (refused == "–" || r.refused != r.replays) {
				refused = fmt.Sprintf("%d/%d", r.refused, r.replays)
			}
			if r.accepted != r.fresh {
				fmt.Fprintf(e.Stderr, "tokenauthd bench: %s: accepted %d of %d fresh tokens\n", t.name, r.accepted, r.fresh)
				code = 1
			}
			if r.refused != r.replays {
				fmt.Fprintf(e.Stderr, "tokenauthd bench: %s: refused %d of %d replayed tokens\n", t.name, r.refused, r.replays)
				code = 1
			}
		}
		row := []string{t.name}
		for j := range p {
			row = append(row, fmtMicros(median(p[j])))
		}
		if i == 0 {
			for j := range p {
				floor[j] = median(p[j])
			}
		}
		row = append(row, ratio(median(p[0]), floor[0]), ratio(median(p[2]), floor[2]))
		row = append(row, fmtRate(median(rate)), fmtCPU(median(cpu)), fmtCPU(median(cpuLock)), fmt.Sprintf("%.1f ms", median(first)), accepted, refused)
		if mb := median(mem); mb > 0 {
			row = append(row, fmt.Sprintf("%.0f MiB (peak %.0f)", mb, median(peak)))
		} else {
			row = append(row, "–")
		}
		fmt.Fprintf(e.Stdout, "| %s |\n", strings.Join(row, " | "))
	}
	return code
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// median returns the median of xs, or -1 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtMicros(us float64) string {
	if us < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f µs", us)
}

func ratio(x, floor float64) string {
	if x < 0 || floor <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x/floor)
}

func fmtCPU(us float64) string {
	if us < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f µs", us)
}

func fmtRate(perSec float64) string {
	switch {
	case perSec <= 0:
		return "–"
	case perSec >= 1e6:
		return fmt.Sprintf("%.2f M/s", perSec/1e6)
	}
	return fmt.Sprintf("%.0f k/s", perSec/1e3)
}
