// Package config reads tokenauthd's configuration file into plain values:
// it reads only regular files of bounded size and shallow nesting that no
// one but their owner can write, validates every key as the file goes
// (types, ranges, keys that exclude each other, paths), and reads the
// secrets and key sets they point to, without ever quoting one in an
// error. It imports none of the libraries (protocol, verifier, replay,
// replay/redis, go-redis), nor internal/jwks: what only they can check (a
// host's name, an OTP seed, a JWK Set, the token parameters, an identity
// provider's URL, a Redis URL) is checked where they are built, in
// internal/setup and internal/daemon. It knows nothing
// of the wire, opens no replay store and serves nothing.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// DefaultPath is read when neither -config nor $TOKENAUTHD_CONFIG says
// otherwise: Prosody and ejabberd may start the helper without arguments.
const DefaultPath = "/etc/tokenauthd/config.toml"

// Path picks the configuration file: the flag, the environment
// ($TOKENAUTHD_CONFIG, read with getenv), the default.
func Path(flagValue string, getenv func(string) string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := getenv("TOKENAUTHD_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}

// fileConfig is the TOML file's shape. Its names are a contract with admins.
type fileConfig struct {
	Protocol string `toml:"protocol"`
	Token    struct {
		Digits      int `toml:"digits"`
		Interval    int `toml:"interval"`
		Drift       int `toml:"drift"`
		NonceDigits int `toml:"nonce_digits"`
	} `toml:"token"`
	Replay struct {
		Capacity       int      `toml:"capacity"`
		Store          string   `toml:"store"`
		Journal        string   `toml:"journal"`
		JournalSync    string   `toml:"journal_sync"`
		RedisURL       string   `toml:"redis_url"`
		RedisAddrs     []string `toml:"redis_addrs"`
		RedisMaster    string   `toml:"redis_master"`
		RedisUsername  string   `toml:"redis_username"`
		RedisPassFile  string   `toml:"redis_password_file"`
		RedisPrefix    string   `toml:"redis_prefix"`
		RedisTimeoutMS int      `toml:"redis_timeout_ms"`
		RedisReplicas  int      `toml:"redis_min_replicas"`
		RefuseStart    bool     `toml:"refuse_after_start"`
	} `toml:"replay"`
	Daemon struct {
		Socket           string `toml:"socket"`
		SocketGroup      string `toml:"socket_group"`
		MaxConnections   int    `toml:"max_connections"`
		RequestTimeoutMS int    `toml:"request_timeout_ms"`
	} `toml:"daemon"`
	Connect connectSection `toml:"connect"`
	Log     logSection     `toml:"log"`
	Metrics struct {
		Listen string `toml:"listen"`
	} `toml:"metrics"`
	Hosts map[string]hostConfig `toml:"hosts"`
	HTTP  httpSection           `toml:"http"`
}

// connectSection is the file's [connect] section, the relay's.
type connectSection struct {
	TimeoutMS int `toml:"timeout_ms"`
}

// logSection is the file's [log] section.
type logSection struct {
	Format string `toml:"format"`
	Level  string `toml:"level"`
}

type hostConfig struct {
	TokenSecret     string `toml:"token_secret"`
	TokenSecretFile string `toml:"token_secret_file"`
	OTPSeed         string `toml:"otp_seed"`
	OTPSeedFile     string `toml:"otp_seed_file"`
	// IsUser is true, false or "seen" (checked by buildIsUser).
	IsUser any `toml:"isuser"`
	// SeenFor is how many days a login keeps a user known, for isuser =
	// "seen".
	SeenFor *int `toml:"seen_for"`
	// Rotation: still accepted when verifying, never used to mint.
	OldTokenSecrets []string `toml:"old_token_secrets"`
	OldOTPSeeds     []string `toml:"old_otp_seeds"`
	// JWT is the host's [hosts."h".jwt] section, if it accepts JWTs.
	JWT *jwtSection `toml:"jwt"`
}

// jwtSection is a host's [hosts."h".jwt] section. Its names are a
// contract with admins.
type jwtSection struct {
	KeysFile string `toml:"keys_file"`
	// Keys fetched from an identity provider: at keys_url, or at the
	// jwks_uri of the issuer's discovery document.
	KeysURL      string   `toml:"keys_url"`
	Discovery    bool     `toml:"discovery"`
	KeysCAFile   string   `toml:"keys_ca_file"`
	KeysMaxStale *int     `toml:"keys_max_stale"`
	UserClaim    *string  `toml:"user_claim"`
	Algorithms   []string `toml:"algorithms"`
	JIDClaim     *string  `toml:"jid_claim"`
	Issuer       string   `toml:"issuer"`
	Audience     string   `toml:"audience"`
	MaxLifetime  *int     `toml:"max_lifetime"`
	Leeway       *int     `toml:"leeway"`
}

// maxOld bounds old_token_secrets and old_otp_seeds: each one costs an HMAC
// on every refused token.
const maxOld = 4

// Config is a loaded configuration: the file's values, each validated as
// far as the file goes (internal/setup checks the rest as it builds the
// verifier).
type Config struct {
	Path string
	// Files are the secret and key files the configuration names, as read
	// (systemd credentials, "%d/...", which systemd hands to the service
	// whatever their modes, left out).
	Files []string
	// Protocol is the framing: "auto", "ejabberd" or "generic".
	Protocol string
	// Token are the [token] settings every host shares.
	Token Token
	// Capacity is the memory store's number of records.
	Capacity int
	// Hosts are the [hosts."name"] sections, by name.
	Hosts map[string]Host
	// Socket is the Unix socket serve listens on and connect dials.
	Socket string
	// SocketGroup, if set, is the group serve gives its socket to.
	SocketGroup string
	// MaxConnections bounds the connections serve keeps open at once.
	MaxConnections int
	// RequestTimeout bounds the time a request may take to arrive, from
	// its first byte to its last, on serve's connections.
	RequestTimeout time.Duration
	// RelayTimeout bounds one request through connect.
	RelayTimeout time.Duration
	// Store is "memory" or "redis".
	Store string
	// Journal is the memory store's journal file ("" for none), fsynced
	// before every reply if JournalSyncEvery.
	Journal          string
	JournalSyncEvery bool
	// RefuseAfterStart makes a memory store without journal refuse, after
	// its start, the tokens an earlier process could have accepted.
	RefuseAfterStart bool
	// Redis is the redis store's configuration.
	Redis RedisConfig
	// LogJSON selects JSON log lines instead of text; LogLevel the least
	// level logged.
	LogJSON  bool
	LogLevel slog.Level
	// MetricsListen is the address of the Prometheus endpoint (serve
	// only); empty means no metrics.
	MetricsListen string
	// HTTP is serve's HTTP API ([http]); nil when off.
	HTTP *HTTP
	// fileWarnings are the configuration and secret files every user may
	// read.
	fileWarnings []string
}

// Token are the [token] settings: the OTP's digits, its time step, the
// steps accepted on either side of the current one, and the nonce's
// length (0: any).
type Token struct {
	Digits      int
	Interval    time.Duration
	Drift       int
	NonceDigits int
}

// Host is a [hosts."name"] section: its secrets as read (from the file or
// the files it names), its isuser answer and its JWT settings.
type Host struct {
	// TokenSecrets are token_secret then old_token_secrets; empty for a
	// host of JWTs only.
	TokenSecrets [][]byte
	// OTPSeeds are otp_seed then old_otp_seeds, as written: internal/setup
	// normalises and checks them.
	OTPSeeds []string
	// IsUser is the answer to "does this user exist" (default true), when
	// IsUserSeen is false.
	IsUser bool
	// IsUserSeen is isuser = "seen": a user exists who logged in on the
	// host with an accepted token or JWT within SeenFor.
	IsUserSeen bool
	// SeenFor is seen_for (DefaultSeenFor if unset); zero unless
	// IsUserSeen.
	SeenFor time.Duration
	// JWT is the [hosts."name".jwt] section, nil if the host takes no JWT.
	JWT *JWT
}

// RedisConfig says how to reach the shared Redis store.
type RedisConfig struct {
	// URL is a redis://, rediss:// or unix:// URL of one server, which
	// internal/daemon parses (go-redis's syntax).
	URL      string
	Addrs    []string // host:port of a server, of Sentinels, or of Cluster nodes
	Master   string   // Sentinel master name (with Addrs)
	Username string
	Password string // from redis_password_file
	Prefix   string
	Timeout  time.Duration
	// MinReplicas is how many replicas must acknowledge a record (WAIT).
	MinReplicas int
}

// Options are what loading a configuration takes from outside its file.
type Options struct {
	// Credentials says what "%d/" stands for at the start of a *_file
	// path: a directory as systemd's $CREDENTIALS_DIRECTORY ("%d/NAME" is
	// DIR/NAME), or, outside the service, "ID:DIR" as the unit's
	// LoadCredential=ID:DIR ("%d/ID_NAME" is DIR/NAME). "" refuses such
	// paths.
	Credentials string
	// Owner, if not nil, is the user serve runs as, whom (or root) the
	// configuration and secret files must belong to: check-config -user's.
	// nil: the running user.
	Owner *int
}

// owner is the user the trusted files may belong to besides root.
func (o Options) owner() int {
	if o.Owner != nil {
		return *o.Owner
	}
	return os.Geteuid()
}

// Load reads and validates the configuration file at path (see
// readConfigFile). Its errors name the offending key and never quote a
// secret.
func Load(path string, o Options) (*Config, error) {
	data, warning, err := readConfigFile(path, o.owner())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c, err := Parse(path, data, o)
	if err != nil {
		return nil, err
	}
	if warning != "" {
		c.fileWarnings = append([]string{path + ": " + warning}, c.fileWarnings...)
	}
	return c, nil
}

// Parse parses and validates a configuration file's contents; path
// only names it in errors (and *_file paths are read).
func Parse(path string, data []byte, o Options) (*Config, error) {
	c, err := parse(path, data, o)
	if err != nil {
		return nil, shortError{err}
	}
	return c, nil
}

// maxError bounds an error's text: a file of up to maxConfigFile bytes can
// name a megabyte of unknown keys or hold a value that long, and errors
// reach check-config's output and the log.
const maxError = 1024

// shortError is an error whose text is cut to maxError bytes; errors.Is
// and errors.As still see the whole one.
type shortError struct{ err error }

// ShortError returns err with its text cut to 1 KiB, as Parse's are: for
// the errors of those who check a configuration further (a host's name may
// be as long as the file).
func ShortError(err error) error {
	if err == nil {
		return nil
	}
	return shortError{err}
}

func (e shortError) Error() string {
	s := e.err.Error()
	if len(s) <= maxError {
		return s
	}
	n := maxError
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s... (%d bytes cut)", s[:n], len(s)-n)
}

func (e shortError) Unwrap() error { return e.err }

func parse(path string, data []byte, o Options) (*Config, error) {
	var fc fileConfig
	fc.Protocol = "auto"
	fc.Token.Digits, fc.Token.Interval, fc.Token.Drift = defaultDigits, int(defaultInterval/time.Second), defaultDrift
	// A fixed nonce length is what keeps "9bob" + nonce "9" from signing
	// as "bob" + nonce "99": 32 digits, as mod_auth_token's documentation
	// and tokenauthd mint make them. 0 is an explicit, warned-about opt-out.
	fc.Token.NonceDigits = defaultNonceDigits
	fc.Replay.Capacity = defaultCapacity
	fc.Daemon.Socket = DefaultSocket
	fc.Daemon.MaxConnections = DefaultMaxConnections
	fc.Daemon.RequestTimeoutMS = int(DefaultRequestTimeout / time.Millisecond)
	fc.Replay.Store = "memory"
	fc.Replay.JournalSync = "interval"
	fc.Replay.RedisPrefix = defaultRedisPrefix
	fc.Replay.RedisTimeoutMS = int(defaultRedisTimeout / time.Millisecond)
	fc.Log.Format, fc.Log.Level = "text", "info"
	fc.HTTP.PerUserPerMinute = DefaultPerUserPerMinute

	if err := CheckNesting(data); err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		return nil, tomlError(path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und[:min(len(und), 5)] {
			keys = append(keys, k.String())
		}
		if len(und) > 5 {
			keys = append(keys, fmt.Sprintf("and %d more", len(und)-5))
		}
		return nil, fmt.Errorf("%s: unknown key %s", path, strings.Join(keys, ", "))
	}
	c, err := buildConfig(path, &fc, o)
	if err != nil {
		return nil, err
	}
	c.fileWarnings = append(secretFileWarnings(&fc, o), c.fileWarnings...)
	for _, f := range secretFiles(&fc, true) {
		if !strings.HasPrefix(f, "%d/") {
			c.Files = append(c.Files, f)
		}
	}
	return c, nil
}

// tomlError describes a TOML decoding error without quoting the file: the
// parser's messages, short or long, quote the offending value (found
// "truesecret", Invalid integer "12_34__5678"), which may be a secret, and these errors reach logs and check-config's output. A syntax
// error gives the file, the line and the last key read; other decoding
// errors (a value of the wrong type) name types and keys only.
func tomlError(path string, err error) error {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		if perr.LastKey != "" {
			return fmt.Errorf("%s:%d: syntax error (last key %q)", path, perr.Position.Line, perr.LastKey)
		}
		return fmt.Errorf("%s:%d: syntax error", path, perr.Position.Line)
	}
	return fmt.Errorf("%s: %w", path, err)
}

func buildConfig(path string, fc *fileConfig, o Options) (*Config, error) {
	c := &Config{Path: path, Capacity: fc.Replay.Capacity, Hosts: map[string]Host{}}
	if err := buildDaemonConfig(c, fc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var err error
	c.RelayTimeout = DefaultRelayTimeout
	if fc.Connect.TimeoutMS != 0 {
		if c.RelayTimeout, err = relayTimeout(fc.Connect.TimeoutMS); err != nil {
			return nil, fmt.Errorf("%s: connect.timeout_ms: %w", path, err)
		}
	}
	if !slices.Contains(protocols, fc.Protocol) {
		return nil, fmt.Errorf("%s: protocol: %q is not auto, ejabberd or generic", path, fc.Protocol)
	}
	c.Protocol = fc.Protocol
	c.Token = Token{
		Digits:      fc.Token.Digits,
		Interval:    time.Duration(fc.Token.Interval) * time.Second,
		Drift:       fc.Token.Drift,
		NonceDigits: fc.Token.NonceDigits,
	}
	if err := buildStoreConfig(c, fc, o); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Capacity < 1000 || c.Capacity > maxCapacity {
		return nil, fmt.Errorf("%s: replay.capacity must be 1000 to %d, not %d", path, maxCapacity, c.Capacity)
	}
	switch fc.Log.Format {
	case "text":
	case "json":
		c.LogJSON = true
	default:
		return nil, fmt.Errorf("%s: log.format: %q is not text or json", path, fc.Log.Format)
	}
	if err := c.LogLevel.UnmarshalText([]byte(fc.Log.Level)); err != nil {
		return nil, fmt.Errorf("%s: log.level: %q is not debug, info, warn or error", path, fc.Log.Level)
	}
	if l := fc.Metrics.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			return nil, fmt.Errorf("%s: metrics.listen: %q is not host:port", path, l)
		}
		c.MetricsListen = l
	}
	if len(fc.Hosts) == 0 {
		return nil, fmt.Errorf("%s: no [hosts.\"...\"] section: at least one host is needed", path)
	}
	for _, name := range slices.Sorted(maps.Keys(fc.Hosts)) {
		h, err := buildHost(name, fc.Hosts[name], o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.Hosts[name] = h
	}
	if err := buildHTTP(c, &fc.HTTP, o); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// buildHost validates one [hosts."name"] section and reads its secrets
// and key set. A host needs token_secret and
// otp_seed, or a jwt section, or both. Its errors name the key, never a
// secret. (Its name is internal/setup's to check.)
func buildHost(name string, hc hostConfig, o Options) (Host, error) {
	key := fmt.Sprintf("hosts.%q", name)
	h := Host{IsUser: true}
	if err := buildIsUser(key, hc, &h); err != nil {
		return Host{}, err
	}
	if hc.JWT != nil {
		j, err := buildJWT(key+".jwt", hc.JWT, o)
		if err != nil {
			return Host{}, err
		}
		h.JWT = j
		if !hasTokenKeys(hc) {
			return h, nil // JWTs only
		}
	}
	if err := buildTokenKeys(key, hc, &h, o); err != nil {
		if hc.JWT == nil && !hasTokenKeys(hc) {
			return Host{}, fmt.Errorf("%s: token_secret and otp_seed (or their _file), or a [%s.jwt] section, are needed", key, key)
		}
		return Host{}, err
	}
	return h, nil
}

// The bounds of seen_for, in days.
const (
	minSeenForDays = 1
	maxSeenForDays = 3650
)

// buildIsUser reads a host's isuser (true, false or "seen") and seen_for.
func buildIsUser(key string, hc hostConfig, h *Host) error {
	switch v := hc.IsUser.(type) {
	case nil:
	case bool:
		h.IsUser = v
	case string:
		if v != "seen" {
			return fmt.Errorf("%s.isuser: true, false or \"seen\", not %q", key, v)
		}
		h.IsUser, h.IsUserSeen, h.SeenFor = false, true, DefaultSeenFor
	default:
		return fmt.Errorf("%s.isuser: true, false or \"seen\"", key)
	}
	if hc.SeenFor == nil {
		return nil
	}
	if !h.IsUserSeen {
		return fmt.Errorf("%s.seen_for is for isuser = \"seen\"", key)
	}
	if n := *hc.SeenFor; n < minSeenForDays || n > maxSeenForDays {
		return fmt.Errorf("%s.seen_for: %d days, not between %d and %d", key, n, minSeenForDays, maxSeenForDays)
	}
	h.SeenFor = time.Duration(*hc.SeenFor) * 24 * time.Hour
	return nil
}

// hasTokenKeys reports whether a host section sets any of the token keys.
func hasTokenKeys(hc hostConfig) bool {
	return hc.TokenSecret != "" || hc.TokenSecretFile != "" || hc.OTPSeed != "" || hc.OTPSeedFile != "" ||
		len(hc.OldTokenSecrets) > 0 || len(hc.OldOTPSeeds) > 0
}

// buildTokenKeys reads a host's token secrets and OTP seeds into h.
func buildTokenKeys(key string, hc hostConfig, h *Host, o Options) error {
	secret, err := secretValue(o, key, "token_secret", hc.TokenSecret, hc.TokenSecretFile)
	if err != nil {
		return err
	}
	seed, err := secretValue(o, key, "otp_seed", hc.OTPSeed, hc.OTPSeedFile)
	if err != nil {
		return err
	}
	h.TokenSecrets, h.OTPSeeds = [][]byte{[]byte(secret)}, []string{seed}
	if len(hc.OldTokenSecrets) > maxOld || len(hc.OldOTPSeeds) > maxOld {
		return fmt.Errorf("%s: at most %d old_token_secrets and %d old_otp_seeds", key, maxOld, maxOld)
	}
	for i, old := range hc.OldTokenSecrets {
		if old == "" {
			return fmt.Errorf("%s.old_token_secrets[%d] is empty", key, i)
		}
		for _, prev := range h.TokenSecrets {
			if string(prev) == old {
				return fmt.Errorf("%s.old_token_secrets[%d] repeats token_secret or another old secret", key, i)
			}
		}
		h.TokenSecrets = append(h.TokenSecrets, []byte(old))
	}
	h.OTPSeeds = append(h.OTPSeeds, hc.OldOTPSeeds...)
	return nil
}

// secretValue returns a secret given inline or in a file (its trailing
// newline trimmed), and insists on exactly one of the two.
func secretValue(o Options, host, name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("%s: both %s and %s_file are set: keep one", host, name, name)
	case value != "":
		return value, nil
	case file != "":
		file, err := credentialPath(file, o)
		if err != nil {
			return "", fmt.Errorf("%s.%s_file: %w", host, name, err)
		}
		b, err := readSecretFile(file, o.owner())
		if err != nil {
			return "", fmt.Errorf("%s.%s_file: %w", host, name, err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("%s.%s_file: %s is empty", host, name, file)
		}
		return s, nil
	}
	return "", fmt.Errorf("%s: %s (or %s_file) is missing", host, name, name)
}

// maxSecretFile bounds a secret file: a secret is a line, not a stream.
const maxSecretFile = 64 << 10

// ReadSecretFile reads a secret file as readConfigFile reads the
// configuration (regular, bounded, written by its owner only), but of at
// most maxSecretFile bytes.
func ReadSecretFile(path string) ([]byte, error) { return readSecretFile(path, os.Geteuid()) }

// readSecretFile is ReadSecretFile for files that root or owner may own.
func readSecretFile(path string, owner int) ([]byte, error) {
	b, _, err := readTrustedFile(path, maxSecretFile, owner)
	var perr *fs.PathError
	if err != nil && !errors.As(err, &perr) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, err
}

// SocketPath validates a Unix socket path: absolute, and short enough for
// sockaddr_un.
func SocketPath(p string) (string, error) {
	switch {
	case !filepath.IsAbs(p):
		return "", fmt.Errorf("%q is not an absolute path", p)
	case len(p) > 107:
		return "", fmt.Errorf("%q is longer than a Unix socket path can be (107 bytes)", p)
	}
	return filepath.Clean(p), nil
}

// buildDaemonConfig validates the [daemon] section into c.
func buildDaemonConfig(c *Config, fc *fileConfig) error {
	var err error
	if c.Socket, err = SocketPath(fc.Daemon.Socket); err != nil {
		return fmt.Errorf("daemon.socket: %w", err)
	}
	c.SocketGroup = fc.Daemon.SocketGroup
	if n := fc.Daemon.MaxConnections; n < 1 || n > maxMaxConnections {
		return fmt.Errorf("daemon.max_connections: must be 1 to %d, not %d", maxMaxConnections, n)
	}
	c.MaxConnections = fc.Daemon.MaxConnections
	if ms := fc.Daemon.RequestTimeoutMS; ms < 10 || ms > 60_000 {
		return fmt.Errorf("daemon.request_timeout_ms: must be 10 to 60000, not %d", ms)
	}
	c.RequestTimeout = time.Duration(fc.Daemon.RequestTimeoutMS) * time.Millisecond
	return nil
}

// buildStoreConfig validates the [replay] store settings into c.
func buildStoreConfig(c *Config, fc *fileConfig, o Options) error {
	r := &fc.Replay
	c.Store = r.Store
	switch r.Store {
	case "memory":
		if r.RedisURL != "" || len(r.RedisAddrs) > 0 || r.RedisReplicas != 0 {
			return errors.New(`replay: redis_url/redis_addrs/redis_min_replicas are set but store is "memory": set store = "redis"`)
		}
		c.RefuseAfterStart = r.RefuseStart
		if r.Journal != "" {
			if !filepath.IsAbs(r.Journal) {
				return fmt.Errorf("replay.journal: %q is not an absolute path", r.Journal)
			}
			c.Journal = filepath.Clean(r.Journal)
		}
		switch r.JournalSync {
		case "interval":
		case "always":
			c.JournalSyncEvery = true
		default:
			return fmt.Errorf("replay.journal_sync: %q is not interval or always", r.JournalSync)
		}
	case "redis":
		if r.Journal != "" {
			return errors.New(`replay.journal: only the memory store has a journal (Redis keeps its own data)`)
		}
		if r.RefuseStart {
			return errors.New(`replay.refuse_after_start: only for the memory store (Redis tells when it lost records)`)
		}
		if r.RedisReplicas < 0 || r.RedisReplicas > 100 {
			return fmt.Errorf("replay.redis_min_replicas: must be 0 to 100, not %d", r.RedisReplicas)
		}
		switch {
		case r.RedisURL == "" && len(r.RedisAddrs) == 0:
			return errors.New(`replay: store = "redis" needs redis_url or redis_addrs`)
		case r.RedisURL != "" && len(r.RedisAddrs) > 0:
			return errors.New("replay: set redis_url or redis_addrs, not both")
		case r.RedisURL != "" && r.RedisMaster != "":
			return errors.New("replay.redis_master: Sentinel needs redis_addrs (the Sentinels), not redis_url")
		}
		for _, a := range r.RedisAddrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("replay.redis_addrs: %q is not host:port", a)
			}
		}
		if r.RedisPrefix == "" {
			return errors.New("replay.redis_prefix: must not be empty")
		}
		if r.RedisTimeoutMS < 10 || r.RedisTimeoutMS > 10_000 {
			return fmt.Errorf("replay.redis_timeout_ms: must be 10 to 10000, not %d", r.RedisTimeoutMS)
		}
		c.Redis = RedisConfig{URL: r.RedisURL, Addrs: r.RedisAddrs, Master: r.RedisMaster,
			Username: r.RedisUsername, Prefix: r.RedisPrefix, MinReplicas: r.RedisReplicas,
			Timeout: time.Duration(r.RedisTimeoutMS) * time.Millisecond}
		if r.RedisPassFile != "" {
			pw, err := secretValue(o, "replay", "redis_password", "", r.RedisPassFile)
			if err != nil {
				return err
			}
			c.Redis.Password = pw
		}
	default:
		return fmt.Errorf("replay.store: %q is not memory or redis", r.Store)
	}
	return nil
}

// credentialPath expands a leading "%d/" in a file path to the directory of
// the credentials systemd passes with LoadCredential= (o.Credentials, from
// $CREDENTIALS_DIRECTORY or -credentials), as the unit's own %d specifier
// does: TOML cannot expand variables, and the directory is only known when
// the service runs.
func credentialPath(p string, o Options) (string, error) {
	rest, ok := strings.CutPrefix(p, "%d/")
	if !ok {
		return p, nil
	}
	if o.Credentials == "" {
		return "", fmt.Errorf("%q needs $CREDENTIALS_DIRECTORY, which is set only when systemd runs the service with LoadCredential= (outside the service: -credentials ID:DIR, as the unit's LoadCredential=)", p)
	}
	if !filepath.IsLocal(rest) {
		return "", fmt.Errorf("%q leaves the credentials directory", p)
	}
	id, dir, loaded := strings.Cut(o.Credentials, ":")
	if !loaded || strings.Contains(id, "/") {
		return filepath.Join(o.Credentials, rest), nil
	}
	name, ok := strings.CutPrefix(rest, id+"_")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q is no credential of LoadCredential=%s (%%d/%s_NAME)", p, o.Credentials, id)
	}
	return filepath.Join(dir, name), nil
}

// Warnings lists what in a valid configuration weakens its security
// (internal/setup adds what only the libraries can tell: a symmetric key
// in a key set every user may read).
func (c *Config) Warnings() []string {
	w := slices.Clone(c.fileWarnings)
	if c.Token.NonceDigits == 0 {
		w = append(w, "[token] nonce_digits = 0 accepts nonces of any length: a user whose name is "+
			"digits followed by another user's name can log in as that user with their own token; "+
			"set nonce_digits to the length your application mints (32)")
	}
	return w
}
