package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
)

func writeJSON(w http.ResponseWriter, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// httpMetrics counts requests by route pattern (never the raw path, which
// carries ids) and status, and times them.
func httpMetrics(reg prometheus.Registerer) func(http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passerelle_http_requests_total",
		Help: "HTTP requests by route and status."}, []string{"route", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "passerelle_http_request_seconds",
		Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route"})
	reg.MustRegister(requests, latency)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
			latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		})
	}
}

// httpLimits bound what one client may hold of the HTTP server: a client
// that sends its headers or its body slowly, or keeps an idle connection,
// is cut rather than allowed to pin a connection and its goroutine for
// ever. Tests shorten them.
var httpLimits = struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Idle bounds a keep-alive connection waiting for its next request.
	Idle time.Duration
	// Write bounds writing an answer, from the end of the headers read;
	// the live feed (SSE) and the exports extend it for themselves.
	Write time.Duration
	// MaxHeaderBytes bounds a request's headers (a Keycloak token with many
	// roles is a few kilobytes).
	MaxHeaderBytes int
	// Body is the default body size and the time allowed to send it;
	// bodyRoutes raise both for the routes that take large bodies.
	Body bodyLimit
}{ReadHeader: 10 * time.Second, Idle: 2 * time.Minute, Write: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	Body: bodyLimit{Size: 1 << 20, Time: time.Minute}}

// bodyLimit is how large a request body may be and how long its sending may
// take.
type bodyLimit struct {
	Size int64
	Time time.Duration
}

// bodyRoutes are the path prefixes whose bodies exceed the default. Each
// route also bounds its own body (never beyond this): a FHIR message with
// its letter, INSEE's monthly register of deaths.
var bodyRoutes = []struct {
	prefix string
	limit  bodyLimit
}{
	{"/api/outcomes/death-register", bodyLimit{Size: 256 << 20, Time: 30 * time.Minute}},
	{"/fhir/", bodyLimit{Size: 16 << 20, Time: 5 * time.Minute}},
}

// longWrites are the path prefixes whose answers may take longer than
// httpLimits.Write to compute and send: the outcome exports.
var longWrites = []string{"/api/outcomes"}

const longWriteTime = 15 * time.Minute

// newHTTPServer is the platform's HTTP server around h, with httpLimits.
// The server has no overall read timeout: net/http cancels a request's
// context when its connection's read deadline passes while the handler
// runs, which would cut long handlers; limitBody bounds the body instead.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: httpLimits.ReadHeader, IdleTimeout: httpLimits.Idle,
		WriteTimeout: httpLimits.Write, MaxHeaderBytes: httpLimits.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// limitBody bounds every request body in size (413 beyond) and in time
// (the read fails once the route's time has passed), and gives the long
// exports their write time.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := httpLimits.Body
		for _, br := range bodyRoutes {
			if strings.HasPrefix(r.URL.Path, br.prefix) {
				limit = br.limit
				break
			}
		}
		rc := http.NewResponseController(w)
		for _, p := range longWrites {
			if strings.HasPrefix(r.URL.Path, p) {
				_ = rc.SetWriteDeadline(time.Now().Add(longWriteTime))
			}
		}
		if r.ContentLength > limit.Size {
			tooLarge(w, r, limit.Size)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(time.Now().Add(limit.Time))
			r.Body = &deadlineBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit.Size), rc: rc}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the body's read deadline once the body is read: the
// connection's next read is net/http's watch for a client that hangs up,
// which must not cancel a handler still working on the request.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func tooLarge(w http.ResponseWriter, r *http.Request, size int64) {
	fr := fmt.Sprintf("Corps de la requête trop volumineux (au plus %d octets)", size)
	en := fmt.Sprintf("Request body too large (at most %d bytes)", size)
	if strings.HasPrefix(r.URL.Path, "/fhir/") {
		fhirapi.WriteError(w, r, nil, fhir.Errorf(fhir.TooLarge, "too-costly", fr, en))
		return
	}
	http.Error(w, fr+" / "+en, http.StatusRequestEntityTooLarge)
}

// pageCSP is the default Content-Security-Policy: the web pages' own (their
// scripts and styles come from /static), which also keeps any other answer
// (JSON, an error) from running anything or being framed. A handler may set
// its own.
const pageCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"

// securityHeaders sets the security headers on every answer before any
// handler runs, so that error pages written by the mux (404, 405) or by a
// middleware (401, 413) carry them too; handlers may override them (the
// static files are cacheable). hsts adds Strict-Transport-Security, for an
// instance reached over HTTPS.
func securityHeaders(hsts bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Security-Policy", pageCSP)
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "same-origin")
			if hsts {
				// No includeSubDomains: other hosts of the domain are not ours
				// to bind to HTTPS.
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// metricsGuard keeps /metrics from the world: with a token, only a request
// carrying it as a bearer token; without one, only a request from the
// loopback interface that no proxy forwarded (a reverse proxy on the same
// host connects from loopback, and says so in a forwarding header).
func metricsGuard(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, err := auth.FromRequest(r)
			if err != nil || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="passerelle-metrics"`)
				http.Error(w, "Jeton des métriques requis (PASSERELLE_METRICS_TOKEN) / Metrics token required (PASSERELLE_METRICS_TOKEN)",
					http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if !fromLoopback(r) {
			http.Error(w, "Métriques réservées à la machine locale, ou définir PASSERELLE_METRICS_TOKEN / Metrics are for the local host only, or set PASSERELLE_METRICS_TOKEN",
				http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func fromLoopback(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// connLimiter is a listener that holds at most max connections from one
// address at a time: past it, a new connection is closed at once, so one
// host cannot take every connection (slow or idle) from the others.
type connLimiter struct {
	net.Listener
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

// limitConns wraps ln; max <= 0 leaves it unbounded.
func limitConns(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &connLimiter{Listener: ln, max: max, n: map[netip.Addr]int{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil {
			return c, nil
		}
		addr := ap.Addr().Unmap()
		l.mu.Lock()
		if l.n[addr] >= l.max {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.n[addr]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.n[addr]--; l.n[addr] <= 0 {
				delete(l.n, addr)
			}
			l.mu.Unlock()
		}}, nil
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
