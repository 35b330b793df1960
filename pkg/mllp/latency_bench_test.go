package mllp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// BenchmarkMLLPLatency isolates what mutual TLS costs the transport: one
// A03 at a time over one persistent connection to a handler that answers
// at once, plaintext and mutual TLS in the same run, the median round trip
// reported as p50-µs. (services/intake's benchmark of the same name adds
// the durable storage that an AA waits for.)
func BenchmarkMLLPLatency(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	msg, err := os.ReadFile("../hl7v2/testdata/adt-a03-cardiology-discharge.hl7")
	if err != nil {
		b.Fatal(err)
	}
	serverCert, serverLeaf := certificate(b, "passerelle.example.invalid", true)
	clientCert, clientLeaf := certificate(b, "dpi.example.invalid", false)
	clientCAs, roots := x509.NewCertPool(), x509.NewCertPool()
	clientCAs.AddCert(clientLeaf)
	roots.AddCert(serverLeaf)
	h := HandlerFunc(func(_ context.Context, _ ConnInfo, m []byte) []byte { return ackFor(m) })
	plain, _ := start(b, &Server{Handler: h, Logger: logger})
	mutual, _ := start(b, &Server{Handler: h, Logger: logger, TLSConfig: MutualTLS([]tls.Certificate{serverCert}, clientCAs)})
	for _, bc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plaintext", func() (net.Conn, error) { return net.Dial("tcp", plain) }},
		{"mutual-TLS", func() (net.Conn, error) {
			return tls.Dial("tcp", mutual, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			nc, err := bc.dial()
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			c := newClient(b, nc)
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				if err := c.w.WriteMessage(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.r.ReadMessage(); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/1e3, "p50-µs")
		})
	}
}
