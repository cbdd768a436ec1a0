package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The endpoints, as the metrics label them.
const (
	endpointTokens      = "tokens"
	endpointCredentials = "credentials"
	endpointOther       = "other"
)

// answer is what a handler answers: a status and a JSON body.
type answer struct {
	code int
	body any
	// header, if set, is added to the answer (WWW-Authenticate, Allow,
	// Retry-After).
	header [2]string
	// reason names a refusal in the log and its rate limit.
	reason string
}

// errorBody is every error's body.
type errorBody struct {
	Error string `json:"error"`
}

func refuse(code int, reason, msg string) answer {
	return answer{code: code, body: errorBody{msg}, reason: reason}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	endpoint, a := endpointOther, refuse(http.StatusNotFound, "not_found", "no such endpoint: POST /v1/tokens or GET /v1/credentials")
	switch r.URL.Path {
	case "/v1/tokens":
		endpoint = endpointTokens
		if r.Method != http.MethodPost {
			a = refuse(http.StatusMethodNotAllowed, "method", "POST only")
			a.header = [2]string{"Allow", http.MethodPost}
			break
		}
		a = s.tokens(w, r, st)
	case "/v1/credentials":
		endpoint = endpointCredentials
		if r.Method != http.MethodGet {
			a = refuse(http.StatusMethodNotAllowed, "method", "GET only")
			a.header = [2]string{"Allow", http.MethodGet}
			break
		}
		a = s.credentials(r, st)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if a.header[0] != "" {
		h.Set(a.header[0], a.header[1])
	}
	w.WriteHeader(a.code)
	json.NewEncoder(w).Encode(a.body)
	s.metrics.request(endpoint, a.code)
	if a.code != http.StatusOK {
		s.refusal.Log(slog.LevelInfo, endpoint+"_"+a.reason, "http: refused",
			"endpoint", endpoint, "code", a.code, "remote", r.RemoteAddr)
	}
}

// tokensAnswer is POST /v1/tokens's answer.
type tokensAnswer struct {
	JID     string `json:"jid"`
	Token   string `json:"token"`
	Expires string `json:"expires"`
}

// tokens is POST /v1/tokens: a token for the JID of the body, for the
// application whose key is the bearer token.
func (s *Server) tokens(w http.ResponseWriter, r *http.Request, st *state) answer {
	ap, ok := st.app(r.Header.Values("Authorization"))
	if !ok {
		a := refuse(http.StatusUnauthorized, "bad_key", "a missing or wrong key: Authorization: Bearer KEY")
		a.header = [2]string{"WWW-Authenticate", `Bearer realm="tokenauthd"`}
		return a
	}
	var req struct {
		JID string `json:"jid"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("more than one JSON value")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return refuse(http.StatusRequestEntityTooLarge, "too_large", "the body is larger than "+strconv.Itoa(MaxBody)+" bytes")
	case err != nil:
		return refuse(http.StatusBadRequest, "bad_body", `the body must be {"jid":"user@host"}`)
	}
	user, host, ok := splitJID(req.JID)
	if !ok {
		return refuse(http.StatusBadRequest, "bad_jid", "not a bare JID (user@host) whose local part a server takes")
	}
	if !slices.Contains(ap.hosts, host) {
		return refuse(http.StatusForbidden, "host", "this application may not ask tokens for that host")
	}
	tok, expires, a, ok := s.mint(st, user, host)
	if !ok {
		return a
	}
	s.o.Log.Info("http: token minted", "endpoint", endpointTokens, "app", ap.name, "jid", user+"@"+host)
	return answer{code: http.StatusOK, body: tokensAnswer{JID: user + "@" + host, Token: tok, Expires: expires.Format(time.RFC3339)}}
}

// app returns the application whose key the Authorization header carries.
// Every application's key is compared, in constant time, whether one
// matched or not.
func (st *state) app(values []string) (app, bool) {
	if len(values) != 1 {
		return app{}, false
	}
	scheme, key, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return app{}, false
	}
	sum := sha256.Sum256([]byte(key))
	found, match := app{}, 0
	for _, a := range st.apps {
		if subtle.ConstantTimeCompare(sum[:], a.key[:]) == 1 {
			found, match = a, 1
		}
	}
	return found, match == 1
}

// credentialsAnswer is GET /v1/credentials's answer, as Converse.js's
// credentials_url takes it.
type credentialsAnswer struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

// credentials is GET /v1/credentials: a token for the user the login
// proxy names in the user header.
func (s *Server) credentials(r *http.Request, st *state) answer {
	c := st.creds
	if c == nil {
		return refuse(http.StatusNotFound, "not_found", "no [http.credentials] section")
	}
	if !s.unixPeer(r) && !trusted(r.RemoteAddr, c.TrustedProxies) {
		return refuse(http.StatusForbidden, "untrusted", "not from a trusted proxy")
	}
	values := r.Header.Values(c.UserHeader)
	switch {
	case len(values) == 0 || len(values) == 1 && values[0] == "":
		return refuse(http.StatusUnauthorized, "no_user", "no user: the login proxy names none")
	case len(values) > 1:
		return refuse(http.StatusBadRequest, "two_users", "the user header is given more than once")
	}
	// A comma is a list in a header: a client's value and the proxy's
	// merged into one line. Such a name is not the proxy's alone.
	user, ok := foldLocal(values[0])
	if !ok || strings.Contains(user, ",") {
		return refuse(http.StatusBadRequest, "bad_user", "the user is not a local part a server takes")
	}
	tok, _, a, ok := s.mint(st, user, c.Host)
	if !ok {
		return a
	}
	s.o.Log.Info("http: token minted", "endpoint", endpointCredentials, "proxy", r.RemoteAddr, "jid", user+"@"+c.Host)
	return answer{code: http.StatusOK, body: credentialsAnswer{JID: user + "@" + c.Host, Password: tok}}
}

// unixPeer reports whether r came over a Unix socket, whose mode decides
// who may connect.
func (s *Server) unixPeer(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && a.Network() == "unix"
}

// trusted reports whether the peer address is in one of the prefixes.
func trusted(remote string, prefixes []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// mint mints a token for user@host within the per-user limit, and says
// until when it is accepted; if not ok, a is the refusal.
func (s *Server) mint(st *state, user, host string) (tok string, expires time.Time, a answer, ok bool) {
	now := s.o.Now()
	if allowed, retry := s.limit.allow(user+"@"+host, st.perMinute, now); !allowed {
		a = refuse(http.StatusTooManyRequests, "limit", "too many tokens for this user this minute")
		a.header = [2]string{"Retry-After", strconv.Itoa(int(retry.Seconds() + 0.999))}
		return "", time.Time{}, a, false
	}
	m := s.o.Minter()
	tok, err := m.Mint(user, host, now, "")
	if err != nil {
		// The error names the host or the user, never a secret.
		s.o.Log.Error("http: cannot mint", "jid", user+"@"+host, "err", err)
		return "", time.Time{}, refuse(http.StatusInternalServerError, "mint", "cannot mint"), false
	}
	s.metrics.minted()
	p := m.Params()
	iv := int64(p.Interval / time.Second)
	return tok, time.Unix((now.Unix()/iv+int64(p.Drift)+1)*iv, 0).UTC(), answer{}, true
}
