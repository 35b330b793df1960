package teams_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/pkg/timer"
	"github.com/passerelle-sante/passerelle/services/pathway"
	"github.com/passerelle-sante/passerelle/services/teams"
)

var (
	loadDuration = flag.Duration("teams.load", time.Second, "how long the load test sends discharges (short by default; 60s to measure)")
	loadRate     = flag.Int("teams.rate", 20, "discharges per second of the load test")
	loadLanes    = flag.Int("teams.lanes", bus.DefaultLanes, "events handled at once by the pathway and teams consumers")
)

var wake atomic.Pointer[bus.Relay]

// TestOwnedLoad measures, at a fixed rate of heart-failure discharges, the
// time from the discharge event's commit to the last notification of its
// episode recorded as delivered (log notifier): the episode opened by the
// pathway service, its team formed, every professional task owned and each
// owner told — through the outbox relay and an embedded JetStream server,
// as the single binary runs them.
//
//	go test ./services/teams -run TestOwnedLoad -teams.load 60s -teams.rate 20 -v
func TestOwnedLoad(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{Options: sqlstore.Options{OnEmit: func() {
			if r := wake.Load(); r != nil {
				r.Notify()
			}
		}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		runOwnedLoad(t, s, *loadLanes)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), postgres.Options{Options: sqlstore.Options{OnEmit: func() {
			if r := wake.Load(); r != nil {
				r.Notify()
			}
		}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		runOwnedLoad(t, s, *loadLanes)
	})
}

func runOwnedLoad(t *testing.T, s store.Store, lanes int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := directory.SeedDev(ctx, s, tenant); err != nil {
		t.Fatal(err)
	}
	ns, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	b, err := jetstream.New(ctx, jetstream.Config{Server: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var logOut io.Writer = io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pw, err := pathway.New(pathway.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, Clock: clock.System{}, Package: fhirprofiles.FS(), Lanes: lanes})
	if err != nil {
		t.Fatal(err)
	}
	tm := teams.New(teams.Deps{Store: s, Bus: b, Logger: log, Tenant: tenant, Notifier: notify.Log{Logger: log}, PublicURL: "http://passerelle.test",
		Lanes: lanes})
	relay := &bus.Relay{Store: s, Publisher: b, Owner: "t", Poll: 10 * time.Millisecond, Logger: log}
	relay.Init()
	wake.Store(relay)
	defer wake.Store(nil)
	runner := &timer.Runner{Store: s, Owner: "t", Logger: log, Handlers: map[string]timer.Handler{}}
	for k, h := range pw.TimerHandlers() {
		runner.Handlers[k] = h
	}
	for k, h := range tm.TimerHandlers() {
		runner.Handlers[k] = h
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{relay.Run, pw.Run, tm.Run, runner.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("service stopped: %v", err)
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	// Each delivered notification is announced (Communication.updated):
	// count them per patient.
	var mu sync.Mutex
	delivered := map[string]int{}
	told := map[string]map[string]bool{}
	doneAt := map[string]time.Time{}
	const perEpisode = 12 // professional tasks of the heart-failure template
	go func() {
		_ = b.Consume(ctx, bus.ConsumerConfig{Durable: "load-probe", Subject: bus.ResourceSubject(tenant, "Communication", bus.OpUpdated), Concurrency: 4},
			func(ctx context.Context, m bus.Msg) error {
				var c struct {
					Status  string
					Subject struct{ Reference string }
					About   []struct{ Reference string }
				}
				if json.Unmarshal(m.Data, &c) != nil || c.Status != "completed" {
					return nil
				}
				mu.Lock()
				if told[c.Subject.Reference] == nil {
					told[c.Subject.Reference] = map[string]bool{}
				}
				for _, a := range c.About {
					told[c.Subject.Reference][a.Reference] = true
				}
				delivered[c.Subject.Reference] = len(told[c.Subject.Reference])
				if _, ok := doneAt[c.Subject.Reference]; !ok && delivered[c.Subject.Reference] >= perEpisode {
					doneAt[c.Subject.Reference] = time.Now()
				}
				mu.Unlock()
				return nil
			})
	}()

	n := int(loadDuration.Seconds() * float64(*loadRate))
	sent := map[string]time.Time{}
	tick := time.NewTicker(time.Second / time.Duration(*loadRate))
	defer tick.Stop()
	start := time.Now()
	for i := range n {
		<-tick.C
		patient, enc := uuid.NewString(), uuid.NewString()
		at := time.Now()
		err := s.Tx(ctx, func(tx store.Tx) error {
			p := map[string]any{"resourceType": "Patient", "id": patient, "birthDate": "1948-03-15",
				"address": []any{map[string]any{"use": "home", "postalCode": "42300"}}}
			if _, err := tx.Create(ctx, tenant, mustJSON(p)); err != nil {
				return err
			}
			e := map[string]any{"resourceType": "Encounter", "id": enc, "status": "finished",
				"class":           map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
				"subject":         map[string]any{"reference": "Patient/" + patient},
				"period":          map[string]any{"start": at.AddDate(0, 0, -8).Format(time.RFC3339), "end": at.Format(time.RFC3339)},
				"serviceProvider": map[string]any{"reference": "Organization/" + directory.DevHospital},
				"hospitalization": map[string]any{"dischargeDisposition": map[string]any{"coding": []any{map[string]any{
					"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}}}},
				"extension": []any{map[string]any{"url": intake.ExtModeSortie, "valueCode": "8"}}}
			if _, err := tx.Create(ctx, tenant, mustJSON(e)); err != nil {
				return err
			}
			return tx.Emit(ctx, store.Event{Subject: bus.ResourceSubject(tenant, "Encounter", bus.OpCreated), MsgID: "load-" + enc, Key: "Encounter/" + enc,
				Headers: map[string]string{bus.HeaderTenant: tenant, bus.HeaderIntakeEvent: intake.KindDischarge},
				Data: mustJSON(map[string]any{"resourceType": "Bundle", "type": "history", "entry": []any{
					map[string]any{"resource": e}, map[string]any{"resource": p},
					map[string]any{"resource": map[string]any{"resourceType": "Condition", "id": "c-" + enc,
						"subject": map[string]any{"reference": "Patient/" + patient},
						"code":    map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I50.1"}}}}}}})})
		})
		if err != nil {
			t.Fatal(err)
		}
		sent["Patient/"+patient] = time.Now()
		_ = i
	}
	sendTime := time.Since(start)
	deadline := time.Now().Add(20*time.Second + 2**loadDuration)
	for {
		mu.Lock()
		done := len(doneAt)
		mu.Unlock()
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			count := func(typ string) int {
				page, _ := s.Search(ctx, store.Query{Tenant: tenant, Type: typ, Count: 1, Total: true})
				return page.Total
			}
			backlog, _ := s.Outbox().Backlog(ctx)
			t.Logf("outbox backlog %d", backlog)
			t.Fatalf("%d of %d episodes fully owned and notified (episodes %d, teams %d, tasks %d, communications %d, delivered %v)",
				done, n, count("EpisodeOfCare"), count("CareTeam"), count("Task"), count("Communication"), delivered)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var lat []time.Duration
	mu.Lock()
	for p, at := range sent {
		lat = append(lat, doneAt[p].Sub(at))
	}
	mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(time.Millisecond) }
	t.Logf("%d episodes at %d/s (sent in %s): discharge → every task owned and notified p50 %s p99 %s max %s",
		n, *loadRate, sendTime.Round(time.Millisecond), q(0.5), q(0.99), lat[len(lat)-1].Round(time.Millisecond))
}
