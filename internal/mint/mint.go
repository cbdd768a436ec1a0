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
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// HostBlock returns a [hosts."host"] section with a fresh token_secret and
// otp_seed from crypto/rand.
func HostBlock(host string) (string, error) {
	secret := make([]byte, 32) // HMAC-SHA256 key: 256 bits
	seed := make([]byte, 20)   // TOTP seed: 160 bits, RFC 4226's recommendation
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	if _, err := rand.Read(seed); err != nil {
		return "", err
	}
	return fmt.Sprintf("[hosts.%q]\ntoken_secret = %q\notp_seed = %q\nisuser = true\n", host,
		base64.RawURLEncoding.EncodeToString(secret),
		base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed)), nil
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
// secrets, as the application would mint it.
func Run(_ context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "mint", "tokenauthd mint [-config FILE] [-at UNIX_SECONDS] [-nonce DIGITS] user@host")
	at := cli.AtFlag(fs, "mint for this time, in Unix seconds (default now)")
	nonce := fs.String("nonce", "", "use this nonce (default 32 random digits)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
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
	if err != nil {
		fmt.Fprintf(e.Stderr, "tokenauthd mint: %v\n", err)
		return 1
	}
	v, err := config.NewVerifier(cfg, replay.NewMemory(replay.MemoryOptions{Capacity: 1, TTL: time.Second}))
	if err == nil {
		var tok string
		if tok, err = v.Mint(user, host, when, *nonce); err == nil {
			fmt.Fprintln(e.Stdout, tok)
			return 0
		}
	}
	fmt.Fprintf(e.Stderr, "tokenauthd mint: %s\n", verifier.Detail(err))
	return 1
}
