package intake_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/mllp"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// BenchmarkMLLPLatency sends discharges dated now, one at a time over one
// persistent connection, and measures each from its first byte sent to its
// AA read: plaintext from the loopback, and mutual TLS with a registered
// client certificate, on one rig in the same run. The median is reported
// as p50-µs (the handshake happens once, before the loop: a hospital's
// engine keeps its connection open).
func BenchmarkMLLPLatency(b *testing.B) {
	r := newRig(b, false)
	ca, serverCA := newCA(b, "hospitals CA"), newCA(b, "server CA")
	dpi := ca.issue(b, "dpi.ch-demo.example", false)
	registerSystems(b, r, map[string]tls.Certificate{directory.DevHospital: dpi})
	plain := r.mllpServer(intake.MLLPPolicy{OpenLoopback: true}, nil, io.Discard)
	mutual := r.mllpServer(intake.MLLPPolicy{}, mllp.MutualTLS([]tls.Certificate{serverCA.issue(b, "passerelle", true)}, ca.pool), io.Discard)
	a03 := hl7Sample(b, "adt-a03-cardiology-discharge.hl7")
	seq := 0
	for _, bc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plaintext", func() (net.Conn, error) { return net.Dial("tcp", plain) }},
		{"mutual-TLS", func() (net.Conn, error) {
			return tls.Dial("tcp", mutual, &tls.Config{RootCAs: serverCA.pool, Certificates: []tls.Certificate{dpi}})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := bc.dial()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			rd := mllp.NewReader(bufio.NewReader(c), 1<<20)
			var took []time.Duration
			for b.Loop() {
				seq++
				now := time.Now().In(clock.Paris)
				id := fmt.Sprintf("L%d-%d", seq, now.UnixNano())
				msg := bytes.Replace(a03, []byte("MSG000123"), []byte(id), 1)
				msg = bytes.ReplaceAll(msg, []byte("V0004567"), []byte("V"+id))
				msg = bytes.ReplaceAll(msg, []byte("20261003150000"), []byte(now.Format("20060102150405")))
				msg = bytes.ReplaceAll(msg, []byte("20261003153000"), []byte(now.Format("20060102150405")))
				msg = bytes.ReplaceAll(msg, []byte("20260926101500"), []byte(now.AddDate(0, 0, -7).Format("20060102150405")))
				start := time.Now()
				if err := mllp.WriteFrame(c, msg); err != nil {
					b.Fatal(err)
				}
				ack, err := rd.ReadMessage()
				took = append(took, time.Since(start))
				if err != nil || msa(string(ack)) != "AA" {
					b.Fatalf("%q %v", ack, err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2])/1e3, "p50-µs")
		})
	}
}
