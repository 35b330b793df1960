package ui

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestOfflineBundleServed: the service worker from the root (its scope is
// every page), and the bundle compressed for the browsers that accept it.
func TestOfflineBundleServed(t *testing.T) {
	r := newRig(t, openSQLite(t))
	get := func(path, enc string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", r.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		res, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var rd io.Reader = res.Body
		if res.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(res.Body)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			rd = zr
		}
		b, err := io.ReadAll(rd)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return res, string(b)
	}
	sw, body := get("/sw.js", "")
	if sw.StatusCode != 200 || !strings.HasPrefix(sw.Header.Get("Content-Type"), "text/javascript") ||
		sw.Header.Get("Cache-Control") != "no-cache" || !strings.Contains(body, "addEventListener('fetch'") {
		t.Fatalf("/sw.js: %d %v", sw.StatusCode, sw.Header)
	}
	plain, want := get("/static/app.js", "")
	if plain.Header.Get("Content-Encoding") != "" || !strings.Contains(want, "data-pending") {
		t.Fatalf("/static/app.js without gzip: %v", plain.Header)
	}
	gz, got := get("/static/app.js", "gzip, deflate, br")
	if gz.Header.Get("Content-Encoding") != "gzip" || got != want || !strings.HasPrefix(gz.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("/static/app.js with gzip: %v, same content %v", gz.Header, got == want)
	}
	if n := gz.ContentLength; n <= 0 || int(n) >= len(want)/2 {
		t.Errorf("compressed app.js is %d bytes for %d", n, len(want))
	}
}
