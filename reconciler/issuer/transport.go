package issuer

import "net/http"

// RequestObserver is told about every HTTP request a backend sends to its
// CA: the method and the response status (0 when no response came). The
// daemon counts them in a metric; labels must stay low-cardinality, so no
// URL is passed.
type RequestObserver func(method string, status int)

// ObserveTransport wraps base (http.DefaultTransport when nil) so that every
// round trip is reported to observe. A nil observe returns base unchanged.
func ObserveTransport(base http.RoundTripper, observe RequestObserver) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if observe == nil {
		return base
	}
	return &observingTransport{base: base, observe: observe}
}

type observingTransport struct {
	base    http.RoundTripper
	observe RequestObserver
}

func (t *observingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	t.observe(r.Method, status)
	return resp, err
}
