package main

import (
	"bufio"
	"context"
	cryptotls "crypto/tls"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/websession"
)

// loadEnv loads a configuration from env alone.
func loadEnv(env map[string]string, args ...string) (Config, error) {
	cfg, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), args, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return cfg, err
}

// The practitioner claim is matched against one identifier system, the
// login NamingSystem unless configured; Pro Santé Connect's idNat_PS is one
// setting away, anything else is refused.
func TestPractitionerSystemSetting(t *testing.T) {
	cfg, err := loadEnv(nil)
	if err != nil || cfg.PractitionerSystem != directory.SystemLogin {
		t.Fatalf("default: %q, %v; want %s", cfg.PractitionerSystem, err, directory.SystemLogin)
	}
	cfg, err = loadEnv(map[string]string{"PASSERELLE_OIDC_ISSUER": "https://auth.example.org/realms/cpts",
		"PASSERELLE_OIDC_PRACTITIONER_SYSTEM": directory.SystemIDNPS})
	if err != nil || cfg.PractitionerSystem != directory.SystemIDNPS {
		t.Fatalf("idNat_PS: %q, %v", cfg.PractitionerSystem, err)
	}
	for name, env := range map[string]map[string]string{
		"unknown system":                 {"PASSERELLE_OIDC_ISSUER": "https://auth.example.org", "PASSERELLE_OIDC_PRACTITIONER_SYSTEM": "urn:oid:1.2.3"},
		"development provider with RPPS": {"PASSERELLE_OIDC_PRACTITIONER_SYSTEM": directory.SystemRPPS},
	} {
		if _, err := loadEnv(env); err == nil || !strings.HasPrefix(err.Error(), "PASSERELLE_OIDC_PRACTITIONER_SYSTEM:") {
			t.Errorf("%s: %v, want an error naming PASSERELLE_OIDC_PRACTITIONER_SYSTEM", name, err)
		}
	}
}

// Production refuses transport in clear: an http:// issuer (its keys could
// be swapped on the way) and an http public URL (session cookies and
// patient data in clear), even on a loopback address.
func TestProductionRefusesWeakTransport(t *testing.T) {
	prod := func(kv ...string) map[string]string {
		env := map[string]string{"PASSERELLE_ENV": "production"}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	refused := []struct {
		name, variable string
		env            map[string]string
	}{
		{"http issuer", "PASSERELLE_OIDC_ISSUER", prod("PASSERELLE_OIDC_ISSUER", "http://auth.example.org/realms/cpts", "PASSERELLE_PUBLIC_URL", "https://passerelle.example.org")},
		{"http loopback issuer", "PASSERELLE_OIDC_ISSUER", prod("PASSERELLE_OIDC_ISSUER", "http://127.0.0.1:8081/realms/cpts", "PASSERELLE_PUBLIC_URL", "https://passerelle.example.org")},
		{"http public URL", "PASSERELLE_PUBLIC_URL", prod("PASSERELLE_OIDC_ISSUER", "https://auth.example.org/realms/cpts", "PASSERELLE_PUBLIC_URL", "http://passerelle.example.org")},
		{"default public URL without TLS", "PASSERELLE_PUBLIC_URL", prod("PASSERELLE_OIDC_ISSUER", "https://auth.example.org/realms/cpts")},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			if _, err := loadEnv(c.env); err == nil || !strings.HasPrefix(err.Error(), c.variable+":") || !strings.Contains(err.Error(), "https") {
				t.Errorf("error %v, want one naming %s and https", err, c.variable)
			}
		})
	}
	// Behind a proxy that terminates TLS, the public URL is the proxy's.
	// (MLLP off: production refuses plaintext MLLP, which is another test's.)
	if _, err := loadEnv(prod("PASSERELLE_OIDC_ISSUER", "https://auth.example.org/realms/cpts", "PASSERELLE_PUBLIC_URL", "https://passerelle.example.org", "PASSERELLE_MLLP_ADDR", "")); err != nil {
		t.Errorf("https issuer and public URL: %v", err)
	}
	// Development keeps plain HTTP on the developer's machine.
	if _, err := loadEnv(map[string]string{"PASSERELLE_OIDC_ISSUER": "http://127.0.0.1:8081/realms/cpts"}); err != nil {
		t.Errorf("development with an http issuer: %v", err)
	}
}

// TestMetricsGuarded: /metrics answers the loopback interface only, unless
// a proxy forwarded the request; with PASSERELLE_METRICS_TOKEN, only a
// request carrying that token.
func TestMetricsGuarded(t *testing.T) {
	get := func(h http.Handler, remote string, header ...string) int {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = remote
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	tp := startPlatform(t, nil)
	tp.waitServing(t)
	for _, c := range []struct {
		name, remote string
		header       []string
		want         int
	}{
		{"from another host", "192.0.2.10:41000", nil, http.StatusForbidden},
		{"from another host over IPv6", "[2001:db8::1]:41000", nil, http.StatusForbidden},
		{"through a proxy on this host", "127.0.0.1:41000", []string{"X-Forwarded-For", "192.0.2.10"}, http.StatusForbidden},
		{"through a proxy saying Forwarded", "127.0.0.1:41000", []string{"Forwarded", "for=192.0.2.10"}, http.StatusForbidden},
		{"from loopback", "127.0.0.1:41000", nil, http.StatusOK},
		{"from IPv6 loopback", "[::1]:41000", nil, http.StatusOK},
	} {
		if got := get(tp.Mux, c.remote, c.header...); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	tok := startPlatform(t, map[string]string{"PASSERELLE_METRICS_TOKEN": "scrape-me-0123456789"})
	tok.waitServing(t)
	for _, c := range []struct {
		name, remote string
		header       []string
		want         int
	}{
		{"no token, from loopback", "127.0.0.1:41000", nil, http.StatusUnauthorized},
		{"wrong token", "192.0.2.10:41000", []string{"Authorization", "Bearer scrape-me-wrong"}, http.StatusUnauthorized},
		{"the token, from another host", "192.0.2.10:41000", []string{"Authorization", "Bearer scrape-me-0123456789"}, http.StatusOK},
	} {
		if got := get(tok.Mux, c.remote, c.header...); got != c.want {
			t.Errorf("with a token, %s: %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSecurityHeadersOnEveryAnswer: the headers are on the mux's own 404,
// on the API's 401 and on a page, not only on what a handler writes.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	tp := startPlatform(t, nil)
	want := map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
		"Content-Security-Policy": "frame-ancestors 'none'",
	}
	for _, c := range []struct {
		name, path string
		status     int
	}{
		{"unknown path", "/no-such-page", http.StatusNotFound},
		{"API without a token", "/fhir/Patient", http.StatusUnauthorized},
		{"unknown FHIR type", "/fhir/Nothing/1", http.StatusUnauthorized},
		{"wrong method", "/healthz", http.StatusMethodNotAllowed},
		{"FHIR answer", "/fhir/metadata", http.StatusOK},
	} {
		method := "GET"
		if c.status == http.StatusMethodNotAllowed {
			method = "DELETE"
		}
		r := tp.do(t, method, c.path, "", "")
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d", c.name, r.status, c.status)
		}
		for h, v := range want {
			if got := r.header.Get(h); !strings.Contains(got, v) {
				t.Errorf("%s: %s %q, want %q", c.name, h, got, v)
			}
		}
		if got := r.header.Get("Strict-Transport-Security"); got != "" {
			t.Errorf("%s: HSTS %q over plain HTTP", c.name, got)
		}
	}
	// Static files stay cacheable.
	if r := tp.do(t, "GET", "/static/style.css", "", ""); r.status != 200 || r.header.Get("Cache-Control") == "no-store" {
		t.Errorf("static file: %d, Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	// Reached over HTTPS (TLS here, or a proxy's https public URL), every
	// answer, errors included, carries HSTS.
	certFile, keyFile, pool := selfSigned(t)
	tls := startPlatform(t, map[string]string{"PASSERELLE_TLS_CERT": certFile, "PASSERELLE_TLS_KEY": keyFile})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &cryptotls.Config{RootCAs: pool}}}
	for _, path := range []string{"/no-such-page", "/fhir/Patient", "/healthz"} {
		res, err := client.Get("https://" + tls.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
			t.Errorf("HTTPS %s (%d): HSTS %q", path, res.StatusCode, got)
		}
	}
}

// TestBodyLimit: a body larger than its route takes is refused with 413
// before it is read, on the pages as on the API.
func TestBodyLimit(t *testing.T) {
	tp := startPlatform(t, nil)
	big := strings.Repeat("a", 2<<20)
	if r := tp.do(t, "POST", "/tasks/x/action", "", "action=accept&reason="+big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MB form: %d, want 413", r.status)
	}
	huge := strings.Repeat("a", 17<<20)
	r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, directory.DevClient), huge)
	outcome(t, r, http.StatusRequestEntityTooLarge, "")
}

// rawConn dials addr and reports how the server ends the connection.
type rawConn struct {
	net.Conn
	rd *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, rd: bufio.NewReader(c)}
}

// closedByServer waits (up to a deadline that only keeps a broken build
// from hanging) for the server to close the connection, reading whatever
// it answered first.
func (c *rawConn) closedByServer(t *testing.T) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
	_, err := io.Copy(io.Discard, c.rd)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestSlowClientsAreCut: a client that sends its headers or its body
// slowly, or keeps an idle connection open, is disconnected rather than
// holding a connection for ever.
func TestSlowClientsAreCut(t *testing.T) {
	saved := httpLimits
	t.Cleanup(func() { httpLimits = saved })
	httpLimits.ReadHeader, httpLimits.Idle, httpLimits.Body.Time = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	tp := startPlatform(t, nil)
	addr := tp.HTTPAddr()

	slowHeaders := dialRaw(t, addr)
	_, _ = io.WriteString(slowHeaders, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	if !slowHeaders.closedByServer(t) {
		t.Error("a client that never ends its headers kept its connection")
	}

	slowBody := dialRaw(t, addr)
	_, _ = io.WriteString(slowBody, "POST /tasks/x/action HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na")
	if !slowBody.closedByServer(t) {
		t.Error("a client that never ends its body kept its connection")
	}

	idle := dialRaw(t, addr)
	_, _ = io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(idle.rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	if !idle.closedByServer(t) {
		t.Error("an idle keep-alive connection was kept")
	}
}

// TestConnectionsPerAddress: one address holds at most
// PASSERELLE_HTTP_MAX_CONNS_PER_ADDR connections; past it a new one is
// closed at once, and a connection closed frees its place.
func TestConnectionsPerAddress(t *testing.T) {
	tp := startPlatform(t, map[string]string{"PASSERELLE_HTTP_MAX_CONNS_PER_ADDR": "2"})
	addr := tp.HTTPAddr()
	// Two connections that have sent nothing yet hold their places.
	first, second := dialRaw(t, addr), dialRaw(t, addr)
	_ = second
	third := dialRaw(t, addr)
	_, _ = io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(third.rd, nil); err == nil {
		t.Fatal("a third connection from the same address was served")
	}
	first.Close()
	// The server sees the close when it next reads the first connection;
	// then a new connection is served.
	deadline := time.Now().Add(8 * time.Second)
	for {
		c := dialRaw(t, addr)
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if res, err := http.ReadResponse(c.rd, nil); err == nil && res.StatusCode == 200 {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection served after one of the two was closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLiveFeedEndsAtLogout: the worklist's event stream, opened under a
// web session, ends when that session logs out.
func TestLiveFeedEndsAtLogout(t *testing.T) {
	tp := startPlatform(t, nil)
	web := tp.webLogin(t, "ide.martin")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", tp.base+"/events", nil)
	req.AddCookie(web.cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	rd := bufio.NewReader(res.Body)
	if line, err := rd.ReadString('\n'); res.StatusCode != 200 || err != nil || line != ": ok\n" {
		t.Fatalf("events: %d %q %v", res.StatusCode, line, err)
	}
	logout, _ := http.NewRequest("POST", tp.base+websession.LogoutPath, strings.NewReader(url.Values{websession.CSRFField: {web.csrf}}.Encode()))
	logout.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	logout.AddCookie(web.cookie)
	lres, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(logout)
	if err != nil {
		t.Fatal(err)
	}
	lres.Body.Close()
	if lres.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", lres.StatusCode)
	}
	// Whatever was already on its way, then the end of the stream.
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("the live feed outlived the logout")
			}
			break
		}
		if strings.HasPrefix(line, "event:") {
			t.Errorf("event after logout: %q", line)
		}
	}
}

// waitServing waits until the platform serves its routes (Serve registers
// the platform's own, /metrics among them, as it starts).
func (tp *testPlatform) waitServing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tp.do(t, "GET", "/healthz", "", "").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the platform does not serve /healthz")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
