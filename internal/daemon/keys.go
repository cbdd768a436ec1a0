package daemon

import (
	"log/slog"

	"github.com/tokenauthd/tokenauthd/internal/jwks"
	"github.com/tokenauthd/tokenauthd/internal/setup"
	"github.com/tokenauthd/tokenauthd/replay"
	"github.com/tokenauthd/tokenauthd/verifier"
)

// keySources are the fetchers of the JWT keys of a serving process's hosts
// whose keys are fetched from an identity provider (keys_url, discovery):
// kept across reloads while a host's URL does not change.
type keySources struct{ pool *jwks.Pool }

func newKeySources(log *slog.Logger) *keySources {
	return &keySources{pool: jwks.NewPool(log, nil)}
}

// verifier builds the verifier of cfg on store, the hosts whose keys are
// fetched given their fetchers (started if new: the first fetch goes on in
// the background, and their JWTs wait for it at most a moment, then are
// refused until it succeeds).
func (k *keySources) verifier(cfg *setup.Config, store replay.Store) (*verifier.Verifier, error) {
	hosts := make(map[string]jwks.Host, len(cfg.FetchedKeys))
	for name, spec := range cfg.FetchedKeys {
		hosts[name] = jwks.Host{Spec: spec, JWT: cfg.Verifier.Hosts[name].JWT}
	}
	done, err := k.pool.Attach(hosts)
	if err != nil {
		return nil, err
	}
	v, err := cfg.NewVerifier(store)
	done(err == nil)
	return v, err
}

// close stops the fetchers.
func (k *keySources) close() { k.pool.Close() }
