// Command load sends hospital messages to a running Passerelle at a fixed
// rate and reports the latency of the answers: FHIR discharge messages on
// $process-message, or HL7 v2 A03 messages over MLLP.
//
//	go run ./services/passerelle &                       # or with PASSERELLE_DATABASE_URL
//	go run ./bench/load -mode fhir -rate 500 -duration 20s
//	go run ./bench/load -mode mllp -rate 1000 -conns 4 -duration 20s
//	go run ./bench/load -mode mllp -rate 0 -conns 4 -duration 20s -wait  # the whole pipeline
//
// -rate 0 sends as fast as the answers come (each connection, or each of
// -conns HTTP clients, sends its next message when the last is answered).
// -wait then follows the work behind the answers on the instance's
// /metrics until it settles, and reports the pipeline's throughput and
// what each discharge cost (pipeline.go).
//
// Each message is dated when it is sent (-dated now, the default): the
// samples' own date (3 October 2026) would make every timer of every
// episode due at once, which measures an alert storm, not the pipeline.
// -dated sample keeps it, to measure that storm on purpose.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "http://localhost:8080", "Passerelle's public URL")
	mllpAddr := flag.String("mllp", "localhost:2575", "MLLP address")
	mode := flag.String("mode", "fhir", "fhir or mllp")
	rate := flag.Int("rate", 500, "messages per second")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	conns := flag.Int("conns", 4, "MLLP connections; with -rate 0, also the HTTP clients of -mode fhir")
	sampleFHIR := flag.String("fhir-sample", "services/intake/testdata/discharge-hf-declared-team.json", "FHIR discharge message to vary")
	sampleHL7 := flag.String("hl7-sample", "pkg/hl7v2/testdata/adt-a03-cardiology-discharge.hl7", "HL7 v2 A03 message to vary")
	wait := flag.Bool("wait", false, "after the last answer, wait for the pipeline behind to settle and report it")
	metrics := flag.String("metrics", "", "the instance's metrics URL (default: -url + /metrics)")
	waitLimit := flag.Duration("wait-limit", 10*time.Minute, "how long -wait waits for the pipeline")
	dated := flag.String("dated", "now", "now: each message dated when sent; sample: the sample's own date (3 October 2026)")
	flag.Parse()
	switch *dated {
	case "now":
		datedNow = true
	case "sample":
	default:
		log.Fatalf("-dated %q: now or sample", *dated)
	}
	if *metrics == "" {
		*metrics = *base + "/metrics"
	}
	var before sample
	if *wait {
		var err error
		if before, err = scrape(http.DefaultClient, *metrics); err != nil {
			log.Fatal(err)
		}
	}
	start := time.Now()
	var lat []time.Duration
	var err error
	switch *mode {
	case "fhir":
		lat, err = runFHIR(*base, *sampleFHIR, *rate, *conns, *duration)
	case "mllp":
		lat, err = runMLLP(*mllpAddr, *sampleHL7, *rate, *conns, *duration)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
	report(*mode, *rate, time.Since(start), lat)
	if *wait {
		if err := waitPipeline(*metrics, before, start, len(lat), *waitLimit); err != nil {
			log.Fatal(err)
		}
	}
}

func report(mode string, rate int, d time.Duration, lat []time.Duration) {
	if len(lat) == 0 {
		fmt.Println("no answers")
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	fmt.Printf("load %s rate=%d/s (0: as fast as answered) answered=%d (%.0f/s) p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
		mode, rate, len(lat), float64(len(lat))/d.Seconds(), pct(0.5), pct(0.9), pct(0.99), pct(1))
}

// datedNow: messages carry the time they are sent, not the sample's.
var datedNow bool

var paris = mustLocation("Europe/Paris")

func mustLocation(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		log.Fatal(err)
	}
	return l
}

// fhirNow moves the FHIR sample's dates to now: admitted a week ago,
// discharged a minute ago, the message sent now.
func fhirNow(body []byte, now time.Time) []byte {
	if !datedNow {
		return body
	}
	at := func(d time.Duration) []byte { return []byte(now.In(paris).Add(d).Format(time.RFC3339)) }
	for old, d := range map[string]time.Duration{"2026-09-26T10:15:00+02:00": -7 * 24 * time.Hour,
		"2026-10-03T15:00:00+02:00": -time.Minute, "2026-10-03T15:10:00+02:00": -30 * time.Second, "2026-10-03T15:30:00+02:00": 0} {
		body = bytes.ReplaceAll(body, []byte(old), at(d))
	}
	return body
}

// hl7Now does the same for the HL7 v2 sample (HL7 times are local, Paris).
func hl7Now(msg []byte, now time.Time) []byte {
	if !datedNow {
		return msg
	}
	at := func(d time.Duration, layout string) []byte { return []byte(now.In(paris).Add(d).Format(layout)) }
	msg = bytes.ReplaceAll(msg, []byte("20261003153000"), at(0, "20060102150405"))                                 // MSH-7, EVN-2
	msg = bytes.ReplaceAll(msg, []byte("20261003150000"), at(-time.Minute, "20060102150405"))                      // EVN-6, ZBE-2
	msg = bytes.ReplaceAll(msg, []byte("20260926101500"), at(-7*24*time.Hour, "20060102150405"))                   // PV1-44
	msg = bytes.ReplaceAll(msg, []byte("|2026100315"), append([]byte("|"), at(-time.Minute, "20060102150405")...)) // PV1-45
	return msg
}

func token(base string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest("POST", base+"/dev-idp/token", strings.NewReader(form.Encode()))
	req.SetBasicAuth("chu-demo-dpi", "chu-demo-dpi")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("token: %d %v", res.StatusCode, err)
	}
	return t.AccessToken, nil
}

// latencies times the sends that succeed and logs the first failures.
type latencies struct {
	mu     sync.Mutex
	lat    []time.Duration
	failed atomic.Int64
}

func (l *latencies) send(i int, send func(i int) error) {
	t0 := time.Now()
	if err := send(i); err != nil {
		if l.failed.Add(1) <= 5 {
			log.Printf("message %d: %v", i, err)
		}
		return
	}
	l.mu.Lock()
	l.lat = append(l.lat, time.Since(t0))
	l.mu.Unlock()
}

func (l *latencies) done(sent int) []time.Duration {
	if f := l.failed.Load(); f > 0 {
		log.Printf("%d of %d messages failed", f, sent)
	}
	return l.lat
}

// paced calls send n times at the given rate, each in its own goroutine,
// and collects the latencies of the successful ones. With rate 0, workers
// send one after the other for d, each when its last is answered.
func paced(rate, workers int, d time.Duration, send func(i int) error) []time.Duration {
	if rate <= 0 {
		return closedLoop(workers, d, send)
	}
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	l := &latencies{lat: make([]time.Duration, 0, n)}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() { l.send(i, send) })
	}
	wg.Wait()
	return l.done(n)
}

// closedLoop runs workers that send back to back until d has passed.
func closedLoop(workers int, d time.Duration, send func(i int) error) []time.Duration {
	l := &latencies{}
	var next atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range workers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				l.send(int(next.Add(1)-1), send)
			}
		})
	}
	wg.Wait()
	return l.done(int(next.Load()))
}

func runFHIR(base, samplePath string, rate, clients int, d time.Duration) ([]time.Duration, error) {
	tok, err := token(base)
	if err != nil {
		return nil, err
	}
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		return nil, err
	}
	run := time.Now().UnixNano()
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return paced(rate, clients, d, func(i int) error {
		// A distinct message, stay and patient each time.
		body := bytes.ReplaceAll(sample, []byte("MSG-2026-10-03-000123"), []byte(fmt.Sprintf("LOAD-%d-%d", run, i)))
		body = bytes.ReplaceAll(body, []byte("V0004567"), []byte(fmt.Sprintf("V%d-%d", run, i)))
		body = bytes.ReplaceAll(body, []byte(`"000123456"`), []byte(fmt.Sprintf(`"P%d-%d"`, run, i)))
		body = bytes.ReplaceAll(body, []byte("248034218701255"), []byte(ins(run, i)))
		body = fhirNow(body, time.Now())
		req, _ := http.NewRequest("POST", base+"/fhir/$process-message", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/fhir+json")
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("status %d: %.200s", res.StatusCode, b)
		}
		return nil
	}), nil
}

func runMLLP(addr, samplePath string, rate, conns int, d time.Duration) ([]time.Duration, error) {
	sample, err := os.ReadFile(samplePath)
	if err != nil {
		return nil, err
	}
	sample = bytes.ReplaceAll(bytes.TrimRight(sample, "\r\n"), []byte("\n"), []byte("\r"))
	pool := make(chan *mllpConn, conns)
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		pool <- &mllpConn{c: c, r: bufio.NewReader(c)}
	}
	run := time.Now().UnixNano() % 1e9
	return paced(rate, conns, d, func(i int) error {
		msg := bytes.Replace(sample, []byte("MSG000123"), []byte(fmt.Sprintf("L%d-%d", run, i)), 1)
		msg = bytes.ReplaceAll(msg, []byte("V0004567"), []byte(fmt.Sprintf("V%d-%d", run, i)))
		msg = bytes.ReplaceAll(msg, []byte("000123456^"), []byte(fmt.Sprintf("P%d-%d^", run, i)))
		msg = bytes.ReplaceAll(msg, []byte("248034218701255"), []byte(ins(run, int(i))))
		msg = hl7Now(msg, time.Now())
		c := <-pool
		defer func() { pool <- c }()
		ack, err := c.roundTrip(msg)
		if err != nil {
			return err
		}
		if !bytes.Contains(ack, []byte("MSA|AA|")) {
			return fmt.Errorf("not accepted: %q", ack)
		}
		return nil
	}), nil
}

type mllpConn struct {
	c net.Conn
	r *bufio.Reader
}

func (m *mllpConn) roundTrip(msg []byte) ([]byte, error) {
	frame := append(append([]byte{0x0b}, msg...), 0x1c, 0x0d)
	if _, err := m.c.Write(frame); err != nil {
		return nil, err
	}
	if _, err := m.r.ReadBytes(0x0b); err != nil {
		return nil, err
	}
	ack, err := m.r.ReadBytes(0x1c)
	if err != nil {
		return nil, err
	}
	if b, err := m.r.ReadByte(); err != nil || b != 0x0d {
		return nil, errors.New("bad frame end")
	}
	return ack[:len(ack)-1], nil
}

// ins makes a distinct INS with a valid key for each message, so that each
// message is a different patient: 13 digits (sex, birth year and month,
// département 42, a commune and an order number) and the key 97 - NIR mod 97.
func ins(run int64, i int) string {
	n := uint64(run)%1000*1000 + uint64(i)
	nir := fmt.Sprintf("2%02d%02d42%03d%03d", 40+int(n/1_000_000%50), 1+int(n/1000%12), n/12000%1000, n%1000)
	var v uint64
	fmt.Sscan(nir, &v)
	return fmt.Sprintf("%s%02d", nir, 97-v%97)
}
