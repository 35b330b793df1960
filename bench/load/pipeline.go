package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The whole pipeline behind the acknowledgements (-wait): read from the
// instance's /metrics (answered on the loopback interface without a token)
// before the first message, then every 200 ms after the last answer, until
// nothing moves — the outbox empty, no event published or consumed, no
// notification recorded — for settleLooks looks in a row. Its
// transactions per discharge include the bookkeeping of the same time
// (lease renewals, timer claims): a few per second.
// The pipeline's end is the last look at which something still moved.

// Three seconds without movement: on PostgreSQL a consumer was seen to
// pause for over a second between two batches with work still queued.
const settleLooks = 15

// sample is what the watcher reads of /metrics.
type sample struct {
	at            time.Time
	backlog       float64 // passerelle_outbox_backlog
	consumed      float64 // Σ passerelle_bus_consumed_total
	published     float64 // passerelle_outbox_published_total
	notifications float64 // Σ passerelle_notifications_total{outcome="delivered"}
	commits       float64 // passerelle_store_commit_batch_size_sum: transactions committed, bookkeeping included
	cpu           float64 // process_cpu_seconds_total
	retries       float64 // Σ passerelle_handler_retries_total
}

// moved: an event published or consumed, a notification recorded. Not
// the commits: the relay's lease and the timers' claims commit all the
// time, idle or not.
func (s sample) moved(o sample) bool {
	return s.consumed != o.consumed || s.published != o.published || s.notifications != o.notifications
}

func scrape(client *http.Client, url string) (sample, error) {
	s := sample{at: time.Now()}
	res, err := client.Get(url)
	if err != nil {
		return s, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 200))
		return s, fmt.Errorf("%s: %d %s", url, res.StatusCode, b)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:sp], "{")
		switch name {
		case "passerelle_outbox_backlog":
			s.backlog = v
		case "passerelle_bus_consumed_total":
			s.consumed += v
		case "passerelle_outbox_published_total":
			s.published = v
		case "passerelle_notifications_total":
			if strings.Contains(labels, `outcome="delivered"`) {
				s.notifications += v
			}
		case "passerelle_store_commit_batch_size_sum":
			s.commits = v
		case "process_cpu_seconds_total":
			s.cpu = v
		case "passerelle_handler_retries_total":
			s.retries += v
		}
	}
	return s, sc.Err()
}

// waitPipeline polls until the instance has settled, or until limit, and
// reports the pipeline's throughput and what each discharge cost.
func waitPipeline(url string, before sample, start time.Time, n int, limit time.Duration) error {
	client := &http.Client{Timeout: 10 * time.Second}
	last, err := scrape(client, url)
	if err != nil {
		return err
	}
	end := last.at
	still := 0
	deadline := time.Now().Add(limit)
	for still < settleLooks {
		if time.Now().After(deadline) {
			return fmt.Errorf("the pipeline had not settled %s after the last answer (outbox backlog %.0f)", limit, last.backlog)
		}
		time.Sleep(200 * time.Millisecond)
		cur, err := scrape(client, url)
		if err != nil {
			// A loaded instance may answer /metrics late: look again.
			still = 0
			continue
		}
		if cur.moved(last) || cur.backlog > 0 {
			still, end = 0, cur.at
		} else {
			still++
		}
		last = cur
	}
	took := end.Sub(start)
	per := func(v float64) float64 { return v / float64(n) }
	fmt.Printf("pipeline discharges=%d settled_after=%.1fs throughput=%.1f/s per_discharge: events=%.2f transactions=%.2f notifications=%.2f cpu_ms=%.1f retries=%.2f\n",
		n, took.Seconds(), float64(n)/took.Seconds(), per(last.published-before.published), per(last.commits-before.commits),
		per(last.notifications-before.notifications), 1000*per(last.cpu-before.cpu), per(last.retries-before.retries))
	return nil
}
