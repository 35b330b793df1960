package intake_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
)

// BenchmarkProcessMessage posts distinct discharge messages from 16 clients
// at once; each is archived before it is acknowledged, and applied behind
// on the bus.
func BenchmarkProcessMessage(b *testing.B) {
	r := newRig(b, false)
	raw, err := os.ReadFile("testdata/discharge-hf-declared-team.json")
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			body := bytes.ReplaceAll(raw, []byte("MSG-2026-10-03-000123"), []byte(fmt.Sprintf("B-%d", i)))
			body = bytes.ReplaceAll(body, []byte("V0004567"), []byte(fmt.Sprintf("V-%d", i)))
			body = bytes.ReplaceAll(body, []byte(`"000123456"`), []byte(fmt.Sprintf(`"P-%d"`, i)))
			res, err := http.Post(r.srv.URL+"/fhir/$process-message", "application/fhir+json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMLLP sends distinct A03 messages over 4 connections; each ACK
// comes once the message is stored.
func BenchmarkMLLP(b *testing.B) {
	r := newRig(b, false)
	addr := r.mllpAddr()
	a03 := hl7Sample(b, "adt-a03-cardiology-discharge.hl7")
	var n atomic.Int64
	conns := make(chan *client, 4)
	for range 4 {
		conns <- dial(b, addr)
	}
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			id := fmt.Sprintf("B%d", i)
			msg := bytes.Replace(a03, []byte("MSG000123"), []byte(id), 1)
			msg = bytes.ReplaceAll(msg, []byte("V0004567"), []byte("V"+id))
			c := <-conns
			ack := c.send(msg)
			conns <- c
			if msa(ack) != "AA" {
				b.Errorf("%q", ack)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
