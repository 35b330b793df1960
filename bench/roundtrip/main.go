// Command roundtrip measures the event path of Passerelle end to end: a
// store transaction writes an outbox row, the relay publishes it to
// JetStream, a durable consumer receives it and records it in its inbox in a
// second transaction. It sends events at a fixed rate and reports latency
// percentiles from the first commit to the inbox commit.
//
//	go run ./bench/roundtrip -rate 500 -duration 20s                  # embedded SQLite + embedded NATS
//	go run ./bench/roundtrip -db postgres://… -nats nats://127.0.0.1:4222
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

func main() {
	dbURL := flag.String("db", "", "PostgreSQL URL (empty: embedded SQLite in a temporary directory)")
	natsURL := flag.String("nats", "", "NATS URL (empty: embedded server in a temporary directory)")
	rate := flag.Int("rate", 500, "events per second")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	size := flag.Int("size", 2048, "event payload bytes")
	lazy := flag.Bool("lazy-sync", false, "embedded NATS with JetStream's default lazy sync instead of sync always")
	flag.Parse()
	if err := run(*dbURL, *natsURL, *rate, *duration, *size, *lazy); err != nil {
		log.Fatal(err)
	}
}

func run(dbURL, natsURL string, rate int, duration time.Duration, size int, lazy bool) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "roundtrip-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	relay := &bus.Relay{Owner: "bench", Poll: 50 * time.Millisecond}
	relay.Init()
	opts := sqlstore.Options{OnEmit: relay.Notify}
	var s store.Store
	if dbURL != "" {
		// A fresh schema per run: a previous run's outbox must not be
		// re-published into this one.
		url, drop, err := freshSchema(ctx, dbURL)
		if err != nil {
			return err
		}
		defer drop()
		s, err = postgres.Open(ctx, url, postgres.Options{Options: opts})
		if err != nil {
			return err
		}
	} else {
		s, err = sqlite.Open(ctx, filepath.Join(dir, "db.sqlite"), sqlite.Options{Options: opts})
		if err != nil {
			return err
		}
	}
	defer s.Close()
	ns := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6)
	jcfg := jetstream.Config{URL: natsURL, Namespace: ns}
	if natsURL == "" {
		srv, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(dir, "nats"), LazySync: lazy})
		if err != nil {
			return err
		}
		defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
		jcfg.Server = srv
	}
	b, err := jetstream.New(ctx, jcfg)
	if err != nil {
		return err
	}
	defer b.Close()
	relay.Store, relay.Publisher = s, b
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(ctx) }()
	// Stop the relay before the store and the bus close under it.
	defer func() { cancel(); <-relayDone }()

	total := int(float64(rate) * duration.Seconds())
	var mu sync.Mutex
	lat := make([]time.Duration, 0, total)
	done := make(chan struct{})
	h := bus.Inbox(s, "bench", func(ctx context.Context, tx store.Tx, m bus.Msg) error { return nil })
	go func() {
		_ = b.Consume(ctx, bus.ConsumerConfig{Durable: "bench", Subject: "fhir.bench.>", Concurrency: 16}, func(ctx context.Context, m bus.Msg) error {
			if err := h(ctx, m); err != nil {
				return err
			}
			var ev struct{ Sent int64 }
			_ = json.Unmarshal(m.Data, &ev)
			d := time.Since(time.Unix(0, ev.Sent))
			mu.Lock()
			lat = append(lat, d)
			if len(lat) == total {
				close(done)
			}
			mu.Unlock()
			return nil
		})
	}()

	pad := strings.Repeat("x", max(0, size-64))
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range total {
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, _ := json.Marshal(map[string]any{"Sent": time.Now().UnixNano(), "Pad": pad})
			err := s.Tx(ctx, func(tx store.Tx) error {
				return tx.Emit(ctx, store.Event{Subject: "fhir.bench.Task.created", MsgID: fmt.Sprintf("Task/%d/_history/1", i), Key: fmt.Sprintf("Task/%d", i), Data: data})
			})
			if err != nil {
				log.Printf("commit %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	sent := time.Since(start)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		return fmt.Errorf("only %d of %d events arrived", len(lat), total)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	backend := "sqlite"
	if dbURL != "" {
		backend = "postgres"
	}
	broker := "embedded-nats"
	if natsURL != "" {
		broker = "external-nats"
	}
	fmt.Printf("roundtrip %s %s rate=%d/s events=%d achieved=%.0f/s p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
		backend, broker, rate, total, float64(total)/sent.Seconds(),
		ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(lat[len(lat)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func freshSchema(ctx context.Context, dbURL string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("roundtrip_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	}, nil
}
