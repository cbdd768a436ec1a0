package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tokenauthd/tokenauthd/protocol"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// defaultConfigPath is read when neither -config nor $TOKENAUTHD_CONFIG says
// otherwise: Prosody and ejabberd may start the helper without arguments.
const defaultConfigPath = "/etc/tokenauthd/config.toml"

// configPath picks the configuration file: the flag, the environment, the
// default.
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("TOKENAUTHD_CONFIG"); p != "" {
		return p
	}
	return defaultConfigPath
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
		Capacity int `toml:"capacity"`
	} `toml:"replay"`
	Daemon struct {
		Socket string `toml:"socket"`
	} `toml:"daemon"`
	Connect struct {
		TimeoutMS int `toml:"timeout_ms"`
	} `toml:"connect"`
	Hosts map[string]hostConfig `toml:"hosts"`
}

type hostConfig struct {
	TokenSecret     string `toml:"token_secret"`
	TokenSecretFile string `toml:"token_secret_file"`
	OTPSeed         string `toml:"otp_seed"`
	OTPSeedFile     string `toml:"otp_seed_file"`
	IsUser          *bool  `toml:"isuser"`
}

// Config is a loaded, validated configuration.
type Config struct {
	Path     string
	Protocol protocol.Mode
	Params   verifier.Params
	Capacity int
	Hosts    map[string]verifier.Host
	// Socket is the Unix socket serve listens on and connect dials.
	Socket string
	// RelayTimeout bounds one request through connect.
	RelayTimeout time.Duration
}

// loadConfig reads and validates the configuration file at path. Its errors
// name the offending key and never quote a secret.
func loadConfig(path string) (*Config, error) {
	var fc fileConfig
	fc.Protocol = "auto"
	d := verifier.DefaultParams()
	fc.Token.Digits, fc.Token.Interval, fc.Token.Drift = d.Digits, int(d.Interval/time.Second), d.Drift
	fc.Replay.Capacity = replay.DefaultCapacity
	fc.Daemon.Socket = defaultSocket

	md, err := toml.DecodeFile(path, &fc)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			// ParseError's long form may quote the line, which may hold a
			// secret: give the position and the message only.
			return nil, fmt.Errorf("%s:%d: %s", path, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%s: unknown key %s", path, strings.Join(keys, ", "))
	}
	return buildConfig(path, &fc)
}

func buildConfig(path string, fc *fileConfig) (*Config, error) {
	c := &Config{Path: path, Capacity: fc.Replay.Capacity, Hosts: map[string]verifier.Host{}}
	var err error
	if c.Socket, err = socketPath(fc.Daemon.Socket); err != nil {
		return nil, fmt.Errorf("%s: daemon.socket: %w", path, err)
	}
	c.RelayTimeout = defaultRelayTimeout
	if fc.Connect.TimeoutMS != 0 {
		if c.RelayTimeout, err = relayTimeout(fc.Connect.TimeoutMS); err != nil {
			return nil, fmt.Errorf("%s: connect.timeout_ms: %w", path, err)
		}
	}
	if c.Protocol, err = protocol.ParseMode(fc.Protocol); err != nil {
		return nil, fmt.Errorf("%s: protocol: %q is not auto, ejabberd or generic", path, fc.Protocol)
	}
	c.Params = verifier.Params{
		Digits:      fc.Token.Digits,
		Interval:    time.Duration(fc.Token.Interval) * time.Second,
		Drift:       fc.Token.Drift,
		NonceDigits: fc.Token.NonceDigits,
	}
	if err := c.Params.Validate(); err != nil {
		return nil, fmt.Errorf("%s: [token]: %s", path, strings.TrimPrefix(err.Error(), "verifier: "))
	}
	if c.Capacity < 1000 {
		return nil, fmt.Errorf("%s: replay.capacity must be at least 1000, not %d", path, c.Capacity)
	}
	if len(fc.Hosts) == 0 {
		return nil, fmt.Errorf("%s: no [hosts.\"...\"] section: at least one host is needed", path)
	}
	names := make([]string, 0, len(fc.Hosts))
	for name := range fc.Hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		hc := fc.Hosts[name]
		key := fmt.Sprintf("hosts.%q", name)
		if err := verifier.ValidateHostName(name); err != nil {
			return nil, fmt.Errorf("%s: %s: %s", path, key, strings.TrimPrefix(err.Error(), "verifier: "))
		}
		secret, err := secretValue(key, "token_secret", hc.TokenSecret, hc.TokenSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		seed, err := secretValue(key, "otp_seed", hc.OTPSeed, hc.OTPSeedFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if seed, err = verifier.NormalizeSeed(seed); err != nil {
			return nil, fmt.Errorf("%s: %s.otp_seed: not a base32 seed", path, key)
		}
		h := verifier.Host{TokenSecrets: [][]byte{[]byte(secret)}, OTPSeeds: []string{seed}, IsUser: true}
		if hc.IsUser != nil {
			h.IsUser = *hc.IsUser
		}
		c.Hosts[name] = h
	}
	return c, nil
}

// secretValue returns a secret given inline or in a file (its trailing
// newline trimmed), and insists on exactly one of the two.
func secretValue(host, name, value, file string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", fmt.Errorf("%s: both %s and %s_file are set: keep one", host, name, name)
	case value != "":
		return value, nil
	case file != "":
		b, err := os.ReadFile(file)
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

// newVerifier builds the verifier of a configuration on the given store.
func newVerifier(c *Config, store replay.Store) (*verifier.Verifier, error) {
	return verifier.New(verifier.Config{Params: c.Params, Hosts: c.Hosts, Store: store})
}

// socketPath validates a Unix socket path: absolute, and short enough for
// sockaddr_un.
func socketPath(p string) (string, error) {
	switch {
	case !filepath.IsAbs(p):
		return "", fmt.Errorf("%q is not an absolute path", p)
	case len(p) > 107:
		return "", fmt.Errorf("%q is longer than a Unix socket path can be (107 bytes)", p)
	}
	return filepath.Clean(p), nil
}
