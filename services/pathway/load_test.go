package pathway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/search"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

var (
	loadDuration = flag.Duration("pathway.load", 2*time.Second, "how long the discharge → episode load test sends (a short run by default; 60s to measure)")
	loadRate     = flag.Int("pathway.rate", 20, "discharges per second of the load test")
)

// TestDischargeLoad measures, at a fixed rate of distinct heart-failure
// discharges, the time from $process-message's answer to the episode and
// its 13 tasks being in the store — readable by the FHIR API, which a
// sample of them is checked through — in one process as the single binary
// runs intake, the outbox relay, JetStream and the pathway service. The
// visible instant is taken from the pathway's own event, published after
// its transaction commits (an upper bound), and from the resources'
// lastUpdated (when they were written, just before the commit).
//
//	go test ./services/pathway -run TestDischargeLoad -pathway.load 60s -pathway.rate 20 -v
func TestDischargeLoad(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{Options: sqlstore.Options{OnEmit: notifyRelay}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		runLoad(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), postgres.Options{Options: sqlstore.Options{OnEmit: notifyRelay}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		runLoad(t, s)
	})
}

func runLoad(t *testing.T, s store.Store) {
	p := startPlatform(t, s)
	api := &fhirapi.API{Store: s, Search: search.Default(), BaseURL: "http://passerelle.test/fhir"}
	mux := http.NewServeMux()
	dir := &directory.Resolver{Store: s}
	api.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			a, err := dir.Person(req.Context(), tenant, "coord.cpts")
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, req.WithContext(access.WithActor(req.Context(), a)))
		})
	})
	apiSrv := httptest.NewServer(mux)
	defer apiSrv.Close()
	sample, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	n := int(loadDuration.Seconds() * float64(*loadRate))
	posted := make([]time.Time, n)
	ids := make([]string, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(*loadRate))
	defer tick.Stop()
	// The pathway's one event per discharge, published once its
	// transaction has committed, tells when the episode became visible:
	// polling searches would load the machine under test.
	seen := make([]time.Time, n)
	committed := make([]time.Time, n)
	index := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		_ = p.b.Consume(ctx, bus.ConsumerConfig{Durable: "load-probe", Subject: bus.ResourceSubject(tenant, "EpisodeOfCare", bus.OpCreated)},
			func(ctx context.Context, m bus.Msg) error {
				at := time.Now()
				var b struct {
					Entry []struct {
						Resource struct {
							ResourceType string
							Encounter    struct{ Reference string }
							Meta         struct {
								LastUpdated time.Time `json:"lastUpdated"`
							}
						} `json:"resource"`
					} `json:"entry"`
				}
				if err := json.Unmarshal(m.Data, &b); err != nil || len(b.Entry) == 0 {
					return nil
				}
				tasks, enc := 0, ""
				for _, e := range b.Entry {
					switch e.Resource.ResourceType {
					case "Task":
						tasks++
					case "CarePlan":
						enc = e.Resource.Encounter.Reference
					}
				}
				res, err := s.Read(ctx, "Encounter", strings.TrimPrefix(enc, "Encounter/"))
				if err != nil || tasks != 13 {
					return nil
				}
				var e struct{ Identifier []struct{ Value string } }
				_ = json.Unmarshal(res.Body, &e)
				mu.Lock()
				defer mu.Unlock()
				if i, ok := index[e.Identifier[0].Value]; ok {
					seen[i], committed[i] = at, b.Entry[0].Resource.Meta.LastUpdated
				}
				return nil
			})
	}()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, mh := distinctDischarge(t, sample, i)
			mu.Lock()
			index[mh] = i
			mu.Unlock()
			p.postMessage(t, body)
			mu.Lock()
			posted[i], ids[i] = time.Now(), mh
			index[mh] = i
			mu.Unlock()
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for i := range n {
			if seen[i].IsZero() {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d discharges without their episode after 60s", missing, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-probeDone
	// The API shows them: checked apart from the timing, since each API
	// search appends to the audit trail, a write that would compete with
	// the pipeline under test at every poll.
	for i := 0; i < n; i += 50 {
		list, _, err := s.Messages().List(context.Background(), store.MessageFilter{Tenant: tenant, ControlID: ids[i]})
		if err != nil || len(list) == 0 {
			t.Fatalf("discharge %d: %v", i, err)
		}
		if _, ok := tasksVisible(apiSrv.URL, list[0].Patient); !ok {
			t.Errorf("discharge %d: the API does not return the 13 tasks", i)
		}
	}
	var toCommit, toSeen []time.Duration
	for i := range n {
		toCommit = append(toCommit, committed[i].Sub(posted[i]))
		toSeen = append(toSeen, seen[i].Sub(posted[i]))
	}
	t.Logf("%d discharges at %d/s over %s", n, *loadRate, *loadDuration)
	t.Logf("  answer → episode and tasks written (their lastUpdated): %s", percentiles(toCommit))
	t.Logf("  answer → its event received (after the commit):        %s", percentiles(toSeen))
}

func percentiles(d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(f float64) time.Duration { return d[int(f*float64(len(d)-1))].Round(100 * time.Microsecond) }
	return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", q(0.5), q(0.9), q(0.99), d[len(d)-1].Round(time.Millisecond))
}

// tasksVisible asks the API for the patient's tasks: all 13 there, it
// returns the latest lastUpdated among them (the pathway's commit).
func tasksVisible(api, patient string) (time.Time, bool) {
	res, err := http.Get(api + "/fhir/Task?patient=" + patient)
	if err != nil {
		return time.Time{}, false
	}
	defer res.Body.Close()
	var b struct {
		Entry []struct {
			Resource struct {
				Meta struct {
					LastUpdated time.Time `json:"lastUpdated"`
				} `json:"meta"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if json.NewDecoder(res.Body).Decode(&b) != nil || len(b.Entry) != 13 {
		return time.Time{}, false
	}
	var last time.Time
	for _, e := range b.Entry {
		if e.Resource.Meta.LastUpdated.After(last) {
			last = e.Resource.Meta.LastUpdated
		}
	}
	return last, true
}

// distinctDischarge makes the sample a new patient's discharge: its own
// message identity, stay and IPP, and no INS (which would make every
// message the same patient).
func distinctDischarge(t *testing.T, sample []byte, i int) ([]byte, string) {
	var m map[string]any
	if err := json.Unmarshal(sample, &m); err != nil {
		t.Fatal(err)
	}
	m["identifier"].(map[string]any)["value"] = fmt.Sprintf("LOAD-%d-%d", time.Now().UnixNano(), i)
	mh := fmt.Sprintf("load-%d-%d", time.Now().UnixNano(), i)
	for _, e := range m["entry"].([]any) {
		r := e.(map[string]any)["resource"].(map[string]any)
		switch r["resourceType"] {
		case "MessageHeader":
			r["id"] = mh
		case "Patient":
			var ids []any
			for _, id := range r["identifier"].([]any) {
				if id.(map[string]any)["use"] == "official" {
					continue
				}
				id.(map[string]any)["value"] = mh
				ids = append(ids, id)
			}
			r["identifier"] = ids
			r["extension"].([]any)[0].(map[string]any)["extension"].([]any)[0].(map[string]any)["valueCoding"].(map[string]any)["code"] = "PROV"
		case "Encounter":
			r["identifier"].([]any)[0].(map[string]any)["value"] = mh
		}
	}
	b, _ := json.Marshal(m)
	return bytes.Clone(b), mh
}
