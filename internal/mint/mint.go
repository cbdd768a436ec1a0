package mint

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/config"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// HostBlock returns a [hosts."host"] section with a fresh token_secret and
// otp_seed from crypto/rand.
func HostBlock(host string) (string, error) {
	secret, seed, err := NewSecrets()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("[hosts.%q]\ntoken_secret = %q\notp_seed = %q\nisuser = \"seen\"\n", host, secret, seed), nil
}

// NewSecrets returns a fresh token secret and TOTP seed from crypto/rand,
// encoded as a configuration holds them.
func NewSecrets() (secret, seed string, err error) {
	s := make([]byte, 32) // HMAC-SHA256 key: 256 bits
	o := make([]byte, 20) // TOTP seed: 160 bits, RFC 4226's recommendation
	if _, err := rand.Read(s); err != nil {
		return "", "", err
	}
	if _, err := rand.Read(o); err != nil {
		return "", "", err
	}
	return base64.RawURLEncoding.EncodeToString(s), base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(o), nil
}

// RunGenSecrets is `tokenauthd gen-secrets`: it prints HostBlock's section.
func RunGenSecrets(_ context.Context, e *cli.Env, args []string) int {
	fs := cli.NewFlags(e, "gen-secrets", "tokenauthd gen-secrets [host]")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	host := "example.org"
	switch fs.NArg() {
	case 0:
	case 1:
		host = fs.Arg(0)
	default:
		fs.Usage()
		return 2
	}
	if err := verifier.ValidateHostName(host); err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd gen-secrets: %s\n", verifier.Detail(err))
		return 2
	}
	block, err := HostBlock(host)
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd gen-secrets: %v\n", err)
		return 1
	}
	fmt.Fprint(e.Stdout, block)
	return 0
}

// Run is `tokenauthd mint`: a token for user@host from the configured
// secrets, as the application would mint it; with -jwt, a single-use JWT
// signed with -key.
func Run(_ context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "mint", "tokenauthd mint [-config FILE] [-at UNIX_SECONDS] [-nonce DIGITS] user@host | tokenauthd mint -jwt -key FILE [-lifetime D] [-at UNIX_SECONDS] [-config FILE] user@host")
	at := cli.AtFlag(fs, "mint for this time, in Unix seconds (default now)")
	nonce := fs.String("nonce", "", "use this nonce (default 32 random digits)")
	jwt := fs.Bool("jwt", false, "mint a JWT signed with -key instead: its jid (or the host's jid_claim), iat, exp and a random jti; iss and aud as the host's [jwt] section says")
	key := fs.String("key", "", "with -jwt: the private key to sign with, a JWK or PEM PKCS#8 (its kid and alg are used)")
	lifetime := fs.Duration("lifetime", verifier.DefaultJWTMintLifetime, "with -jwt: exp - iat")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 || *jwt != (*key != "") || *jwt && *nonce != "" {
		fs.Usage()
		return 2
	}
	user, host, err := cli.SplitJID(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd mint: %v\n", err)
		return 2
	}
	when := at.Or(time.Now())
	_, cfg, err := cfgFlag.Load(e)
	var tok string
	switch {
	case *jwt:
		// An application may mint without the daemon's configuration: its
		// claims are then the defaults (jid, no iss, no aud).
		if err != nil && cfgFlag.Flag() == "" {
			cfg, err = &config.Config{}, nil
		}
		if err == nil {
			tok, err = mintJWT(cfg, *key, user, host, *lifetime, when)
		}
	case err == nil:
		tok, err = mintToken(cfg, user, host, when, *nonce)
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd mint: %s\n", verifier.Detail(err))
		return 1
	}
	fmt.Fprintln(e.Stdout, tok)
	return 0
}

// mintJWT signs a JWT for user@host with the private key in the file at
// keyFile, with the claims the host's [jwt] section asks for, if any.
func mintJWT(cfg *config.Config, keyFile, user, host string, lifetime time.Duration, now time.Time) (string, error) {
	key, err := config.ReadSecretFile(keyFile)
	if err != nil {
		return "", err
	}
	c := verifier.JWTClaims{User: user, Host: host, Lifetime: lifetime}
	if j := cfg.Hosts[host].JWT; j != nil {
		c.JIDClaim, c.Issuer, c.Audience = j.JIDClaim, j.Issuer, j.Audience
	}
	return verifier.MintJWT(key, c, now)
}

// mintToken returns a token for user@host from the host's current secret
// and seed, with nonce if not "".
func mintToken(file *config.Config, user, host string, when time.Time, nonce string) (string, error) {
	cfg, err := setup.New(file)
	if err != nil {
		return "", err
	}
	v, err := cfg.NewOffline()
	if err != nil {
		return "", err
	}
	return v.Mint(user, host, when, nonce)
}
