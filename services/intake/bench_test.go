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
