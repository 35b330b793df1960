package devidp

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport returns an http.RoundTripper that answers requests for the
// issuer's URLs by calling Handler directly, without a network round trip.
//
// It exists for the process that embeds the provider: its token verifier
// (package auth) performs discovery and fetches the JWKS through go-oidc
// exactly as for an external issuer, but at start-up the HTTP server is not
// listening yet, and behind a proxy the public URL may not even resolve from
// inside. Requests for any other URL fail; nothing is forwarded to the
// network.
func (p *Provider) Transport() http.RoundTripper { return inProcess{p} }

// HTTPClient returns a client using Transport.
func (p *Provider) HTTPClient() *http.Client {
	return &http.Client{Transport: p.Transport(), Timeout: 10 * time.Second}
}

type inProcess struct{ p *Provider }

func (t inProcess) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	// A RoundTripper must close the body, even on error.
	if req.Body != nil {
		defer req.Body.Close()
	}
	if !t.p.serves(req.URL.Scheme, req.URL.Host, req.URL.Path) {
		return nil, fmt.Errorf("devidp transport: %s is not served by the development identity provider", req.URL.Redacted())
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// The handler sees what a server would: a request of its own, with
	// RequestURI set and a body it may read.
	sreq := req.Clone(req.Context())
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "127.0.0.1:0"
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.Proto, sreq.ProtoMajor, sreq.ProtoMinor = "HTTP/1.1", 1, 1

	rec := &recorder{header: make(http.Header)}
	defer func() {
		// net/http recovers a handler's panic per connection; here it
		// would take down the caller, so it becomes this request's error.
		if v := recover(); v != nil {
			resp, err = nil, fmt.Errorf("devidp transport: handler panic: %v", v)
		}
	}()
	t.p.Handler().ServeHTTP(rec, sreq)
	return rec.response(req), nil
}

// serves reports whether the URL is under the issuer. Hosts compare without
// case and with default ports made explicit.
func (p *Provider) serves(scheme, host, path string) bool {
	if !strings.EqualFold(scheme, p.issuerU.Scheme) ||
		!strings.EqualFold(withPort(scheme, host), withPort(p.issuerU.Scheme, p.issuerU.Host)) {
		return false
	}
	rest, ok := strings.CutPrefix(path, p.issuerU.Path)
	return ok && (rest == "" || strings.HasPrefix(rest, "/"))
}

func withPort(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if strings.EqualFold(scheme, "https") {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// recorder is a minimal http.ResponseWriter that keeps the response in
// memory; the provider's answers are small.
type recorder struct {
	header  http.Header
	status  int
	written http.Header // header as it was at WriteHeader
	body    bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.written != nil {
		return
	}
	r.status = status
	r.written = r.header.Clone()
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.written == nil {
		if r.header.Get("Content-Type") == "" {
			r.header.Set("Content-Type", http.DetectContentType(b))
		}
		r.WriteHeader(http.StatusOK)
	}
	return r.body.Write(b)
}

func (r *recorder) response(req *http.Request) *http.Response {
	if r.written == nil {
		r.WriteHeader(http.StatusOK)
	}
	h := r.written
	h.Del("Content-Length")
	h.Set("Content-Length", strconv.Itoa(r.body.Len()))
	var body io.ReadCloser = io.NopCloser(bytes.NewReader(r.body.Bytes()))
	if req.Method == http.MethodHead {
		body = http.NoBody
	}
	return &http.Response{
		Status:        strconv.Itoa(r.status) + " " + http.StatusText(r.status),
		StatusCode:    r.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: int64(r.body.Len()),
		Request:       req,
	}
}
