package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// The counting store below sees every write transaction of a whole
// instance and records, for each one that commits, who wrote what: the
// service from the store.Actor its context carries (System/<service>, set
// by the bus's inbox and the timer runner), or, for a person's or a
// hospital system's request (which audits itself and carries no store
// actor), the service the test's requests go to. TestWritesPerDischarge
// turns it into figures per discharge, TestWhoWritesWhat into the
// ownership table of docs/architecture.md ("Who writes what").

// requestWriter names the service that serves the requests these tests
// send: hospital systems post to intake's $process-message, professionals
// move their tasks through the worklist's PUT /fhir/Task. No other route
// is called by them.
var requestWriter = map[string]string{"system": "intake", "person": "worklist"}

// writeLog is what the counting store saw committed.
type writeLog struct {
	mu sync.Mutex
	// By writer.
	txs, attempts, conflicts, failed, emitted, marks map[string]int
	// By "writer Type".
	created, updated map[string]int
	// tables: by "writer table", the writes of a service's own tables.
	tables map[string]int
	// firstFailure is the first error of a failed transaction, by writer.
	firstFailure map[string]string
	// versions counts the committed versions of each "Type/id".
	versions map[string]int
	// taskFields: for each Task field a write changed ("create" for the
	// creation), the writers that changed it.
	taskFields map[string]map[string]bool
}

func newWriteLog() *writeLog {
	l := &writeLog{}
	l.reset()
	return l
}

// reset forgets what was recorded: the development directory's seed, for
// instance, is not a discharge's.
func (l *writeLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.txs, l.attempts, l.conflicts, l.failed, l.emitted, l.marks = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	l.created, l.updated, l.versions, l.tables = map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	l.firstFailure = map[string]string{}
	l.taskFields = map[string]map[string]bool{}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// countingStore is the platform's store with its write transactions
// counted. Reads, the outbox, timers and the rest pass through.
type countingStore struct {
	store.Store
	log *writeLog
}

func writerOf(ctx context.Context) string {
	if a, ok := store.ActorFrom(ctx); ok {
		return strings.TrimPrefix(a.Agent, "System/")
	}
	if a, ok := access.ActorFrom(ctx); ok {
		if a.System != "" {
			return requestWriter["system"]
		}
		return requestWriter["person"]
	}
	return "unattributed"
}

func (s *countingStore) Tx(ctx context.Context, fn func(store.Tx) error) error {
	w := writerOf(ctx)
	var last *countingTx
	attempts := 0
	err := s.Store.Tx(ctx, func(tx store.Tx) error {
		attempts++
		last = &countingTx{Tx: tx, w: w}
		return fn(last)
	})
	l := s.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts[w] += attempts
	switch {
	case errors.Is(err, store.ErrVersionConflict):
		l.conflicts[w]++
		return err
	case err != nil:
		l.failed[w]++
		if l.firstFailure[w] == "" {
			l.firstFailure[w] = err.Error()
		}
		return err
	case last == nil:
		return nil
	}
	l.txs[w]++
	l.emitted[w] += last.emits
	l.marks[w] += last.marks
	for _, c := range last.created {
		l.created[c]++
	}
	for _, u := range last.updated {
		l.updated[u]++
	}
	for _, r := range last.touched {
		l.versions[r]++
	}
	for _, tb := range last.tables {
		l.tables[w+" "+tb]++
	}
	for _, f := range last.taskFields {
		field, fw, _ := strings.Cut(f, " ")
		if l.taskFields[field] == nil {
			l.taskFields[field] = map[string]bool{}
		}
		l.taskFields[field][fw] = true
	}
	return nil
}

// countingTx records one attempt's writes; the store keeps those of the
// attempt that committed. A write is the transaction's writer's unless
// its own context names another service (the pathway's transaction
// applying the team rules writes the teams service's resources).
type countingTx struct {
	store.Tx
	w                string
	created, updated []string // "writer Type"
	touched          []string // "Type/id", one per version written
	taskFields       []string // "field writer"
	tables           []string // tables of a service's own written (outcome records)
	emits, marks     int
}

func (t *countingTx) wrote(ctx context.Context, r store.Resource, fields []string) {
	w := t.w
	if a, ok := store.ActorFrom(ctx); ok {
		w = strings.TrimPrefix(a.Agent, "System/")
	}
	if r.Version == 1 {
		t.created = append(t.created, w+" "+r.Type)
		if r.Type == "Task" {
			fields = []string{"create"}
		}
	} else {
		t.updated = append(t.updated, w+" "+r.Type)
	}
	t.touched = append(t.touched, r.Type+"/"+r.ID)
	for _, f := range fields {
		t.taskFields = append(t.taskFields, f+" "+w)
	}
}

func (t *countingTx) Create(ctx context.Context, tenant string, body json.RawMessage) (store.Resource, error) {
	r, err := t.Tx.Create(ctx, tenant, body)
	if err == nil {
		t.wrote(ctx, r, nil)
	}
	return r, err
}

func (t *countingTx) Update(ctx context.Context, tenant string, body json.RawMessage, ifMatch int64) (store.Resource, error) {
	var head struct{ ResourceType, ID string }
	_ = json.Unmarshal(body, &head)
	var before json.RawMessage
	if head.ResourceType == "Task" && head.ID != "" {
		if cur, err := t.Tx.Read(ctx, "Task", head.ID); err == nil {
			before = cur.Body
		}
	}
	r, err := t.Tx.Update(ctx, tenant, body, ifMatch)
	if err == nil {
		var fields []string
		if before != nil {
			fields = changedFields(before, r.Body)
		}
		t.wrote(ctx, r, fields)
	}
	return r, err
}

func (t *countingTx) Delete(ctx context.Context, typ, id string, ifMatch int64) (store.Resource, error) {
	r, err := t.Tx.Delete(ctx, typ, id, ifMatch)
	if err == nil {
		t.wrote(ctx, r, nil)
	}
	return r, err
}

func (t *countingTx) Emit(ctx context.Context, e store.Event) error {
	err := t.Tx.Emit(ctx, e)
	if err == nil {
		t.emits++
	}
	return err
}

func (t *countingTx) MarkHandled(ctx context.Context, consumer, msgID string) (bool, error) {
	ok, err := t.Tx.MarkHandled(ctx, consumer, msgID)
	if err == nil && ok {
		t.marks++
	}
	return ok, err
}

// PutOutcomeRecord records the write of an outcome record, under its
// table's name (migration 0004), as the transaction's writer's.
func (t *countingTx) PutOutcomeRecord(ctx context.Context, r store.OutcomeRecord) (int64, error) {
	v, err := t.Tx.PutOutcomeRecord(ctx, r)
	if err == nil {
		t.tables = append(t.tables, "outcome_records")
	}
	return v, err
}

// changedFields lists the top-level fields of a resource that differ
// between two versions, meta aside (the store sets it); an extension is
// named by the last segment of its URL ("extension:task-assignment");
// lastModified is left out (below).
func changedFields(before, after json.RawMessage) []string {
	var a, b map[string]any
	_ = json.Unmarshal(before, &a)
	_ = json.Unmarshal(after, &b)
	split := func(m map[string]any) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			// lastModified records when, and every writer sets it with its
			// change to the second: a write in the same second as the one
			// before leaves it as it was, so a diff cannot tell who wrote it.
			if k == "meta" || k == "lastModified" {
				continue
			}
			if k == "extension" {
				if list, ok := v.([]any); ok {
					for _, e := range list {
						em, _ := e.(map[string]any)
						url, _ := em["url"].(string)
						j, _ := json.Marshal(e)
						out["extension:"+url[strings.LastIndexByte(url, '/')+1:]] += string(j)
					}
					continue
				}
			}
			j, _ := json.Marshal(v)
			out[k] = string(j)
		}
		return out
	}
	x, y := split(a), split(b)
	var changed []string
	for k := range x {
		if x[k] != y[k] {
			changed = append(changed, k)
		}
	}
	for k := range y {
		if _, ok := x[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	return changed
}

// startCountingPlatform starts a whole instance as startPlatform does
// (build), with its store wrapped in a countingStore before the services
// are added, so that every service's store calls are counted.
func startCountingPlatform(t *testing.T) (*testPlatform, *writeLog) {
	t.Helper()
	env := map[string]string{}
	if *writesDB != "" {
		env["PASSERELLE_DATABASE_URL"] = *writesDB
	}
	cfg := testConfig(t, env)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Open(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	wl := newWriteLog()
	cs := &countingStore{Store: p.Store, log: wl}
	p.Store, p.Relay.Store, p.Timers.Store, p.API.Store, p.Dir.Store = cs, cs, cs, cs, cs
	if _, err := directory.SeedDev(ctx, p.Store, cfg.Tenant); err != nil {
		cancel()
		p.Close()
		t.Fatal(err)
	}
	var extra []func(context.Context) error
	for _, s := range services {
		fns, err := s.add(p)
		if err != nil {
			cancel()
			p.Close()
			t.Fatalf("%s: %v", s.name, err)
		}
		extra = append(extra, fns...)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, extra...) }()
	tp := &testPlatform{Platform: p, base: "http://" + p.HTTPAddr()}
	tp.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		p.Close()
	}
	t.Cleanup(func() { tp.stop() })
	tp.waitServing(t)
	// The services store their definitions (templates, measures) as they
	// start: not a discharge's writes.
	settle(t, tp, wl, 0)
	wl.reset()
	return tp, wl
}

// dischargeNow is the shared heart-failure discharge made the i-th
// distinct one (message, stay, patient and INS), discharged now: an old
// date would make every timer of the pathway due at once. A zero now
// keeps the sample's dates.
func dischargeNow(raw []byte, i int, now time.Time) []byte {
	body := bytes.ReplaceAll(raw, []byte("MSG-2026-10-03-000123"), []byte(fmt.Sprintf("W-%d", i)))
	body = bytes.ReplaceAll(body, []byte("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001"), []byte(fmt.Sprintf("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a7%03d", i)))
	body = bytes.ReplaceAll(body, []byte("V0004567"), []byte(fmt.Sprintf("VW-%d", i)))
	body = bytes.ReplaceAll(body, []byte(`"000123456"`), []byte(fmt.Sprintf(`"PW-%d"`, i)))
	body = bytes.ReplaceAll(body, []byte("248034218701255"), []byte(testINS(300+i)))
	if now.IsZero() {
		return body
	}
	return datedAt(body, now)
}

// datedAt moves the sample discharge's dates to now: admitted a week
// before, discharged a minute before, the message sent at now. With its
// own date (October 2026) it is a discharge notified late, whose past
// visits are recorded missed (docs/domain.md).
func datedAt(body []byte, now time.Time) []byte {
	at := func(d time.Duration) []byte { return []byte(now.Add(d).Format(time.RFC3339)) }
	body = bytes.ReplaceAll(body, []byte("2026-09-26T10:15:00+02:00"), at(-7*24*time.Hour))
	body = bytes.ReplaceAll(body, []byte("2026-10-03T15:00:00+02:00"), at(-time.Minute))
	body = bytes.ReplaceAll(body, []byte("2026-10-03T15:10:00+02:00"), at(-30*time.Second))
	body = bytes.ReplaceAll(body, []byte("2026-10-03T15:30:00+02:00"), at(0))
	return body
}

// settle waits until the instance has nothing left to do for the
// discharges sent: as many episodes as discharges, neither the outbox nor
// any consumer of the process with an event to handle (a redelivery
// waiting out its back-off counts as one), and no transaction begun since
// the last look, three times in a row.
func settle(t *testing.T, tp *testPlatform, wl *writeLog, episodes int) {
	t.Helper()
	jb, ok := tp.Bus.(*jetstream.Bus)
	if !ok {
		t.Fatalf("the bus is a %T, not a JetStream bus", tp.Bus)
	}
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute)
	var why string
	lastAttempts := -1
	for quiet := 0; quiet < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("the instance did not settle in 3 minutes: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
		out, err := tp.Store.Outbox().Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		in, err := jb.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := tp.count(t, "EpisodeOfCare")
		wl.mu.Lock()
		attempts := sum(wl.attempts)
		wl.mu.Unlock()
		if out > 0 || in > 0 || n < episodes || attempts != lastAttempts {
			why = fmt.Sprintf("outbox %d, consumers %d, episodes %d of %d, transactions %d since the last look", out, in, n, episodes, attempts-lastAttempts)
			quiet, lastAttempts = 0, attempts
			continue
		}
		quiet++
	}
}

var (
	writesDischarges = flag.Int("writes.discharges", 5, "discharges TestWritesPerDischarge sends (50 for bench/README.md)")
	writesRate       = flag.Float64("writes.rate", 5, "discharges per second TestWritesPerDischarge sends")
	writesPast       = flag.Bool("writes.past", false, "TestWritesPerDischarge keeps the sample's discharge date (October 2026): every timer of the pathway then comes due at once, as in a replay or a late backlog")
	writesDB         = flag.String("writes.db", "", "an empty PostgreSQL database for TestWritesPerDischarge and TestWhoWritesWhat (default: embedded SQLite)")
)

// TestWritesPerDischarge sends distinct heart-failure discharges dated now
// at a steady rate to a whole instance, waits until everything they set off
// is done, and reports per discharge: resources created, resource versions
// written (creates and updates), events published (outbox rows),
// committed store transactions and version conflicts (transactions that
// failed on one, and the consumers' retries that followed). It checks only
// what must hold whatever the figures; the figures are the measurement
// (bench/README.md, "Writes per discharge"):
//
//	go test ./services/passerelle -run TestWritesPerDischarge -writes.discharges 50 -v
func TestWritesPerDischarge(t *testing.T) {
	tp, wl := startCountingPlatform(t)
	raw, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	n := *writesDischarges
	if n < 1 || *writesRate <= 0 {
		t.Fatalf("-writes.discharges %d -writes.rate %v: both must be positive", n, *writesRate)
	}
	tok := tp.token(t, "chu-demo-dpi")
	tick := time.NewTicker(time.Duration(float64(time.Second) / *writesRate))
	defer tick.Stop()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		<-tick.C
		body := dischargeNow(raw, i, time.Now())
		if *writesPast {
			body = dischargeNow(raw, i, time.Time{})
		}
		wg.Go(func() {
			req, _ := http.NewRequest("POST", tp.base+"/fhir/$process-message", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/fhir+json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("discharge %d: status %d: %s", i, res.StatusCode, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	settle(t, tp, wl, n)
	took := time.Since(start)

	wl.mu.Lock()
	defer wl.mu.Unlock()
	// Every task of the instance was written by the run, and at least once.
	ctx := context.Background()
	page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Task", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Resources) < n {
		t.Errorf("%d tasks for %d discharges", len(page.Resources), n)
	}
	// Dated now, nothing is due yet: each task is written once, owned
	// (the pathway applies the team rules as it creates them).
	for _, r := range page.Resources {
		switch v := wl.versions["Task/"+r.ID]; {
		case v < 1:
			t.Errorf("Task/%s: no write of it was counted", r.ID)
		case v > 1 && !*writesPast:
			t.Errorf("Task/%s written %d times, want once", r.ID, v)
		}
	}
	checkEveryDischarge(t, tp, n)
	created, updated := sum(wl.created), sum(wl.updated)
	events, txs := sum(wl.emitted), sum(wl.txs)
	if events < n || txs < n || created < n {
		t.Errorf("for %d discharges: %d events, %d transactions, %d resources created; want at least one each per discharge", n, events, txs, created)
	}
	retries := handlerRetries(t, tp)

	per := func(v int) string { return fmt.Sprintf("%.2f", float64(v)/float64(n)) }
	t.Logf("%d discharges of hf-post-discharge at %v/s, settled after %s", n, *writesRate, took.Round(100*time.Millisecond))
	t.Logf("per discharge: resources created %s, resource versions written %s (updates %s), events published %s, store transactions %s (attempts %s), version conflicts %s (transactions failed on one), handler retries on a version conflict %s (other retries %s), inbox marks %s",
		per(created), per(created+updated), per(updated), per(events), per(txs), per(sum(wl.attempts)),
		per(sum(wl.conflicts)), per(retries["version_conflict"]), per(retries["error"]), per(sum(wl.marks)))
	writers := slices.Sorted(maps.Keys(wl.attempts))
	for _, w := range writers {
		var what []string
		for _, k := range slices.Sorted(maps.Keys(wl.created)) {
			if typ, ok := strings.CutPrefix(k, w+" "); ok {
				what = append(what, fmt.Sprintf("%s +%s", typ, per(wl.created[k])))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(wl.updated)) {
			if typ, ok := strings.CutPrefix(k, w+" "); ok {
				what = append(what, fmt.Sprintf("%s ~%s", typ, per(wl.updated[k])))
			}
		}
		t.Logf("  %-10s transactions %s, events %s, conflicts %s, other failures %s; %s", w, per(wl.txs[w]), per(wl.emitted[w]),
			per(wl.conflicts[w]), per(wl.failed[w]), strings.Join(what, ", "))
		if e := wl.firstFailure[w]; e != "" {
			t.Logf("  %-10s first failure: %s", w, e)
		}
	}
}

// handlerRetries sums passerelle_handler_retries_total by reason.
func handlerRetries(t *testing.T, tp *testPlatform) map[string]int {
	t.Helper()
	mfs, err := tp.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != "passerelle_handler_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" {
					out[lp.GetValue()] += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

// ownership is who writes what during a discharge and a few task moves
// (TestWhoWritesWhat), as docs/architecture.md's "Who writes what" says:
// for each resource type the services that create it and those that
// update it, and for Task, field by field, the services that change it
// ("create": the creation). A change of ownership — teams no longer
// rewriting the tasks pathway creates, say — must change this table and
// the document with it.
var ownership = map[string][]string{
	"Patient create":           {"intake"},
	"Encounter create":         {"intake"},
	"Encounter update":         {"intake"},
	"Condition create":         {"intake"},
	"DocumentReference create": {"intake"},
	"NamingSystem create":      {"intake"},
	"CareTeam create":          {"intake", "teams"}, // intake: the declared team (proposed); teams: the episode's
	"CareTeam update":          {"teams"},
	"EpisodeOfCare create":     {"pathway"},
	"CarePlan create":          {"pathway"},
	"Goal create":              {"pathway"},
	"Communication create":     {"teams"},
	"Communication update":     {"teams"},
	"Provenance create":        {"teams"},
	"Task create":              {"pathway"},
	"Task update":              {"teams", "worklist"},
	"table outcome_records":    {"outcomes"},

	"Task.create":                    {"pathway"},
	"Task.owner":                     {"teams"},
	"Task.extension:task-assignment": {"teams"},
	"Task.status":                    {"teams", "worklist"}, // worklist: the owner's moves; teams: offered again after the decline
	"Task.statusReason":              {"teams", "worklist"}, // worklist: the decline's reason; teams: removed when offered again
	"Task.executionPeriod":           {"worklist"},
}

// TestWhoWritesWhat sends a discharge dated now, lets the team form, then
// has one owner decline a task (teams offers it to the next candidate) and
// another accept, start and complete one; it records each service's
// committed writes by resource type, and for Task by field (the fields
// that differ between the version read and the version written), and
// checks them against the ownership table, both ways: a writer the table
// does not name fails, and so does a writer it names that wrote nothing.
func TestWhoWritesWhat(t *testing.T) {
	tp, wl := startCountingPlatform(t)
	raw, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(dischargeNow(raw, 0, time.Now()))); r.status != http.StatusOK {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	settle(t, tp, wl, 1)

	ctx := context.Background()
	page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Task", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	login := func(owner string) string {
		for _, a := range directory.DevAccounts {
			if owner == "PractitionerRole/pr-"+strings.NewReplacer(".", "-", "_", "-").Replace(a.Login) {
				return a.Login
			}
		}
		return ""
	}
	// One task of a nurse (the other nurse is the next candidate) and one
	// of the GP, both requested.
	var nurseTask, gpTask string
	for _, r := range page.Resources {
		var task struct {
			Status string
			Owner  struct{ Reference string }
		}
		_ = json.Unmarshal(r.Body, &task)
		if task.Status != "requested" {
			continue
		}
		switch who := login(task.Owner.Reference); {
		case strings.HasPrefix(who, "ide.") && nurseTask == "":
			nurseTask = r.ID
		case who == "dr.bernard" && gpTask == "":
			gpTask = r.ID
		}
	}
	if nurseTask == "" || gpTask == "" {
		t.Fatalf("no requested task of a nurse (%q) or of the GP (%q) among %d tasks", nurseTask, gpTask, len(page.Resources))
	}
	move := func(id, status, reason string) {
		t.Helper()
		cur, err := tp.Store.Read(ctx, "Task", id)
		if err != nil {
			t.Fatal(err)
		}
		var task struct{ Owner struct{ Reference string } }
		_ = json.Unmarshal(cur.Body, &task)
		body := map[string]any{"resourceType": "Task", "id": id, "status": status, "intent": "order"}
		if reason != "" {
			body["statusReason"] = map[string]any{"text": reason}
		}
		b, _ := json.Marshal(body)
		r := tp.do(t, "PUT", "/fhir/Task/"+id, tp.token(t, login(task.Owner.Reference)), string(b), "If-Match", fmt.Sprintf(`W/"%d"`, cur.Version))
		if r.status != http.StatusOK {
			t.Fatalf("Task/%s → %s by %s: %d %s", id, status, task.Owner.Reference, r.status, r.body)
		}
		settle(t, tp, wl, 1)
	}
	move(nurseTask, "rejected", "Absente cette semaine")
	move(gpTask, "accepted", "")
	move(gpTask, "in-progress", "")
	move(gpTask, "completed", "")
	cur, err := tp.Store.Read(ctx, "Task", nurseTask)
	var declined struct{ Status string }
	if err == nil {
		err = json.Unmarshal(cur.Body, &declined)
	}
	if err != nil || declined.Status != "requested" {
		t.Errorf("the declined task was not offered again: %v %s", err, cur.Body)
	}

	wl.mu.Lock()
	got := map[string][]string{}
	add := func(key, writer string) {
		if !slices.Contains(got[key], writer) {
			got[key] = append(got[key], writer)
			slices.Sort(got[key])
		}
	}
	for k := range wl.created {
		w, typ, _ := strings.Cut(k, " ")
		add(typ+" create", w)
	}
	for k := range wl.updated {
		w, typ, _ := strings.Cut(k, " ")
		add(typ+" update", w)
	}
	for k := range wl.tables {
		w, table, _ := strings.Cut(k, " ")
		add("table "+table, w)
	}
	for f, ws := range wl.taskFields {
		for w := range ws {
			add("Task."+f, w)
		}
	}
	wl.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(got)) {
		t.Logf("%-32s %s", k, strings.Join(got[k], ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(ownership)) {
		if want := ownership[k]; !slices.Equal(got[k], want) {
			t.Errorf("%s written by %v, the ownership table says %v", k, got[k], want)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := ownership[k]; !ok {
			t.Errorf("%s written by %v, which the ownership table does not list", k, got[k])
		}
	}
}

// tasksPerEpisode is how many tasks hf-post-discharge opens with.
const tasksPerEpisode = 13

// checkEveryDischarge checks what each of n discharges must have given,
// whatever the speed: one episode, its tasks each with an owner, and one
// notification for each professional owning some of them.
func checkEveryDischarge(t *testing.T, tp *testPlatform, n int) {
	t.Helper()
	ref := func(v any) string {
		m, _ := v.(map[string]any)
		s, _ := m["reference"].(string)
		return s
	}
	episodes := map[string]int{}
	for _, ep := range searchAll(t, tp, "EpisodeOfCare") {
		episodes[ref(ep["patient"])]++
	}
	if len(episodes) != n {
		t.Errorf("%d patients with an episode for %d discharges", len(episodes), n)
	}
	for p, k := range episodes {
		if k != 1 {
			t.Errorf("%s: %d episodes, want 1", p, k)
		}
	}
	tasks := map[string]int{}
	owners := map[string]map[string]bool{} // patient → professionals owning a task
	for _, task := range searchAll(t, tp, "Task") {
		p, owner := ref(task["for"]), ref(task["owner"])
		tasks[p]++
		switch {
		case owner == "":
			t.Errorf("Task/%v of %s has no owner", task["id"], p)
		case !strings.HasPrefix(owner, "Patient/"):
			if owners[p] == nil {
				owners[p] = map[string]bool{}
			}
			owners[p][owner] = true
		}
	}
	notes := map[string]map[string]int{} // patient → recipient → notifications
	for _, c := range searchAll(t, tp, "Communication") {
		p := ref(c["subject"])
		for _, r := range c["recipient"].([]any) {
			if notes[p] == nil {
				notes[p] = map[string]int{}
			}
			notes[p][ref(r)]++
		}
	}
	for p := range episodes {
		if tasks[p] != tasksPerEpisode {
			t.Errorf("%s: %d tasks, want %d", p, tasks[p], tasksPerEpisode)
		}
		if len(owners[p]) == 0 {
			t.Errorf("%s: no professional owns a task", p)
		}
		for who := range owners[p] {
			if k := notes[p][who]; k != 1 {
				t.Errorf("%s: %d notifications to %s, owner of some of its tasks; want 1", p, k, who)
			}
		}
		for who, k := range notes[p] {
			if !owners[p][who] {
				t.Errorf("%s: %d notifications to %s, who owns none of its tasks", p, k, who)
			}
		}
	}
}

// searchAll reads every resource of a type of the instance's tenant.
func searchAll(t *testing.T, tp *testPlatform, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	q := store.Query{Tenant: tp.Cfg.Tenant, Type: typ, Count: 1000}
	for {
		page, err := tp.Store.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Resources {
			var m map[string]any
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}
