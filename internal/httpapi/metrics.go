package httpapi

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics. A nil *metrics records
// nothing.
type metrics struct {
	requests *prometheus.CounterVec
	mints    prometheus.Counter
}

// codes lists the statuses each endpoint answers, exported at 0 from the
// start.
var codes = map[string][]int{
	endpointTokens: {http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests, http.StatusInternalServerError},
	endpointCredentials: {http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusTooManyRequests, http.StatusInternalServerError},
	endpointOther: {http.StatusNotFound},
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenauthd_http_requests_total",
			Help: "HTTP API requests answered, by endpoint (tokens, credentials, other) and status code.",
		}, []string{"endpoint", "code"}),
		mints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenauthd_tokens_minted_total",
			Help: "Tokens the HTTP API minted, both endpoints.",
		}),
	}
	for e, cs := range codes {
		for _, c := range cs {
			m.requests.WithLabelValues(e, strconv.Itoa(c))
		}
	}
	for _, c := range []prometheus.Collector{m.requests, m.mints} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(endpoint string, code int) {
	if m != nil {
		m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	}
}

func (m *metrics) minted() {
	if m != nil {
		m.mints.Inc()
	}
}
