package daemon

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthd/tokenauthd/internal/cli"
	"github.com/tokenauthd/tokenauthd/internal/jwks"
	"github.com/tokenauthd/tokenauthd/internal/setup"
)

// RunCheckConfig is `tokenauthd check-config`: it loads the configuration
// as serve would, and checks what serve, run as -user, would fail on at
// start-up (its socket's and journal's directories, the socket's group).
// Exit status 1 for any error.
func RunCheckConfig(ctx context.Context, e *cli.Env, args []string) int {
	fs, cfgFlag := cli.NewConfigFlags(e, "check-config", "tokenauthd check-config [-config FILE] [-user NAME]")
	userFlag := fs.String("user", "", "check what serve needs when run as this user (default: the current user; for root, the user of an installed tokenauthd.service that serves this configuration; the package's is tokenauthd)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	path := cfgFlag.Path(e)
	// Root checks the service's configuration for the user the service
	// runs as: the journal's directory is that user's, not root's.
	asService := ""
	if *userFlag == "" && os.Geteuid() == 0 {
		asService = serviceUser(path)
		*userFlag = asService
	}
	a, err := lookupAccount(*userFlag)
	if err != nil {
		fmt.Fprintf(e.Stdout, "%s: error: -user: %v\n", path, err)
		return 1
	}
	// The files may belong to the user serve runs as, not only to whoever
	// checks them.
	o := cfgFlag.Options(e)
	o.Owner = &a.UID
	cfg, err := loadConfig(path, o)
	var fetched []string
	if err == nil {
		fetched, err = fetchKeysOnce(ctx, cfg)
	}
	if err == nil {
		err = cfg.Check()
	}
	if err != nil {
		fmt.Fprintf(e.Stdout, "%s: error: %s\n", path, strings.TrimPrefix(err.Error(), path+": "))
		return 1
	}
	failed := false
	for _, f := range preflight(cfg.Config, a) {
		kind := "warning"
		if f.err {
			kind, failed = "error", true
		}
		fmt.Fprintf(e.Stdout, "%s: %s: %s\n", path, kind, f.msg)
	}
	if failed {
		return 1
	}
	fmt.Fprintf(e.Stdout, "%s: ok: %d host(s), protocol %s\n", path, len(cfg.Hosts), cfg.Mode)
	if asService != "" {
		fmt.Fprintf(e.Stdout, "%s: note: checked for user %s, who runs tokenauthd.service on it (-user NAME checks for another)\n", path, asService)
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(e.Stdout, "%s: warning: %s\n", path, w)
	}
	for _, line := range fetched {
		fmt.Fprintf(e.Stdout, "%s: %s\n", path, line)
	}
	checkRedis(ctx, e.Stdout, path, cfg.Config)
	for _, line := range seenNotes(cfg) {
		fmt.Fprintf(e.Stdout, "%s: %s\n", path, line)
	}
	names := slices.Sorted(maps.Keys(cfg.Verifier.Hosts))
	for _, n := range names {
		h := cfg.Verifier.Hosts[n]
		if s, o := len(h.TokenSecrets)-1, len(h.OTPSeeds)-1; s > 0 || o > 0 {
			fmt.Fprintf(e.Stdout, "%s: note: host %q still accepts %d old token secret(s) and %d old otp seed(s): remove them once the application uses the new ones\n", path, n, s, o)
		}
	}
	return 0
}

// fetchKeysOnce fetches, once, the keys of every host whose keys are
// fetched, and gives each host its fetcher as key source. It returns a
// line per host: a note with the keys fetched, or a warning (serve starts
// all the same, and refuses the host's JWTs until a fetch succeeds). Its
// error is the configuration's (a CA file that cannot be read).
func fetchKeysOnce(ctx context.Context, cfg *setup.Config) ([]string, error) {
	var lines []string
	for _, name := range slices.Sorted(maps.Keys(cfg.FetchedKeys)) {
		spec, j := cfg.FetchedKeys[name], cfg.Verifier.Hosts[name].JWT
		f, err := jwks.New(spec, jwks.Options{Parse: j.ParseKeySet})
		if err != nil {
			return nil, fmt.Errorf("hosts.%q.jwt: %w", name, err)
		}
		j.Keys = f
		fctx, cancel := context.WithTimeout(ctx, 2*jwks.FetchTimeout)
		err = f.FetchOnce(fctx)
		cancel()
		f.Stop()
		if err != nil {
			lines = append(lines, fmt.Sprintf("warning: host %q: cannot fetch its JWT keys: %v; serve starts all the same, "+
				"and refuses the host's JWTs (keys_unavailable) until a fetch succeeds", name, err))
			continue
		}
		st := f.Status()
		line := fmt.Sprintf("note: host %q: %d JWT key(s) fetched from %s (kids %s); refreshed every %v or sooner, kept %v without a fetch (keys_max_stale)",
			name, len(st.Kids), spec.Where(), strings.Join(st.Kids, ", "), st.Next.Sub(st.Fetched).Round(time.Second), spec.MaxStale)
		if len(st.Skipped) > 0 {
			line += fmt.Sprintf("; %d left out: %s", len(st.Skipped), strings.Join(st.Skipped, "; "))
		}
		lines = append(lines, line)
	}
	return lines, nil
}
