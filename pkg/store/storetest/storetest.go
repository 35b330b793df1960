// Package storetest is the conformance suite every store.Store backend
// passes: versions and optimistic locking, search and keyset paging, the
// outbox, the inbox, timers under leases, leases, the audit chain, the
// message archive, idempotency keys and the outcome records.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Opened is a store under test.
type Opened struct {
	Store store.Store
	// Reopen opens another handle on the same database, as a second replica
	// or process would.
	Reopen func(t testing.TB) store.Store
	// KeyAudit keys the store's audit chain (see store.AuditKey); nil when
	// the backend cannot, and the keyed-chain test is skipped.
	KeyAudit func(store.AuditKey)
}

// Factory opens a fresh, empty store whose clock is clk.
type Factory func(t testing.TB, clk clock.Clock) Opened

var t0 = time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)

// Run runs the suite.
func Run(t *testing.T, open Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Factory)
	}{
		{"CRUD", testCRUD},
		{"ConcurrentUpdateOneWins", testConcurrentUpdate},
		{"CreateExistingID", testCreateExisting},
		{"InvalidBody", testInvalid},
		{"Search", testSearch},
		{"SearchAfterUpdates", testReindex},
		{"CountTokens", testCountTokens},
		{"PagingStableUnderInserts", testPaging},
		{"RollbackLeavesNothing", testRollback},
		{"GroupCommitIsolatesFailures", testGroupCommit},
		{"Outbox", testOutbox},
		{"OutboxTooLarge", testOutboxTooLarge},
		{"Inbox", testInbox},
		{"TimerLease", testTimerLease},
		{"TimerFiresOnceAcrossHandles", testTimerOnce},
		{"Leases", testLeases},
		{"AuditChain", testAudit},
		{"AuditServiceWrites", testActorAudit},
		{"AuditChainKeyed", testAuditKeyed},
		{"MessageArchive", testMessages},
		{"IdempotencyKeys", testIdempotency},
		{"IdempotencyKeyConcurrent", testIdempotencyConcurrent},
		{"OutcomeRecords", testOutcomeRecords},
		{"OutcomeRecordsConcurrentCreate", testOutcomeRecordsConcurrentCreate},
		{"OutcomeRecordsScan", testOutcomeRecordsScan},
		{"OutcomeRecordsRollback", testOutcomeRecordsRollback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func create(t *testing.T, s store.Store, tenant, body string) store.Resource {
	t.Helper()
	var r store.Resource
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		var err error
		r, err = tx.Create(ctx(t), tenant, json.RawMessage(body))
		return err
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return r
}

func update(s store.Store, tenant, body string, ifMatch int64) (store.Resource, error) {
	var r store.Resource
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		var err error
		r, err = tx.Update(context.Background(), tenant, json.RawMessage(body), ifMatch)
		return err
	})
	return r, err
}

func field(t *testing.T, body []byte, path ...string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func testCRUD(t *testing.T, open Factory) {
	clk := clock.NewFake(t0)
	s := open(t, clk).Store
	r := create(t, s, "demo", `{"resourceType":"Patient","active":true,"name":[{"family":"Durand"}]}`)
	if r.ID == "" || r.Version != 1 || r.Type != "Patient" {
		t.Fatalf("created %+v", r)
	}
	if got := field(t, r.Body, "meta", "versionId"); got != "1" {
		t.Errorf("meta.versionId = %v, want 1", got)
	}
	if got := field(t, r.Body, "id"); got != r.ID {
		t.Errorf("body id = %v, want %s", got, r.ID)
	}
	got, err := s.Read(ctx(t), "Patient", r.ID)
	if err != nil || got.Version != 1 || got.Tenant != "demo" {
		t.Fatalf("read: %+v, %v", got, err)
	}
	if !got.LastUpdated.Equal(t0) {
		t.Errorf("lastUpdated = %v, want %v", got.LastUpdated, t0)
	}
	clk.Advance(time.Minute)
	body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":false}`, r.ID)
	u, err := update(s, "demo", body, 1)
	if err != nil || u.Version != 2 {
		t.Fatalf("update: %+v, %v", u, err)
	}
	if _, err := update(s, "demo", body, 1); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("stale update: %v, want ErrVersionConflict", err)
	}
	v1, err := s.VRead(ctx(t), "Patient", r.ID, 1)
	if err != nil || field(t, v1.Body, "active") != true {
		t.Fatalf("vread 1: %s, %v", v1.Body, err)
	}
	if _, err := s.VRead(ctx(t), "Patient", r.ID, 9); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("vread 9: %v, want ErrNotFound", err)
	}
	h, err := s.History(ctx(t), "Patient", r.ID, store.HistoryParams{})
	if err != nil || len(h.Resources) != 2 || h.Resources[0].Version != 2 || h.Resources[1].Version != 1 {
		t.Fatalf("history: %+v, %v", h, err)
	}
	h1, err := s.History(ctx(t), "Patient", r.ID, store.HistoryParams{Count: 1})
	if err != nil || len(h1.Resources) != 1 || h1.Next == "" {
		t.Fatalf("history page 1: %+v, %v", h1, err)
	}
	h2, err := s.History(ctx(t), "Patient", r.ID, store.HistoryParams{Count: 1, Cursor: h1.Next})
	if err != nil || len(h2.Resources) != 1 || h2.Resources[0].Version != 1 || h2.Next != "" {
		t.Fatalf("history page 2: %+v, %v", h2, err)
	}
	err = s.Tx(ctx(t), func(tx store.Tx) error {
		_, err := tx.Delete(ctx(t), "Patient", r.ID, 2)
		return err
	})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Read(ctx(t), "Patient", r.ID); !errors.Is(err, store.ErrGone) {
		t.Fatalf("read deleted: %v, want ErrGone", err)
	}
	if _, err := s.Read(ctx(t), "Patient", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read missing: %v, want ErrNotFound", err)
	}
	// PUT as create.
	c, err := update(s, "demo", `{"resourceType":"Patient","id":"given-id"}`, 0)
	if err != nil || c.Version != 1 || c.ID != "given-id" {
		t.Fatalf("update as create: %+v, %v", c, err)
	}
	if _, err := update(s, "demo", `{"resourceType":"Patient","id":"other-id"}`, 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing with If-Match: %v, want ErrNotFound", err)
	}
}

func testConcurrentUpdate(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	r := create(t, s, "demo", `{"resourceType":"Task","status":"requested","intent":"order"}`)
	const n = 8
	oneWins(t, n, "update", func(i int) error {
		body := fmt.Sprintf(`{"resourceType":"Task","id":%q,"status":"accepted","intent":"order","note":[{"text":"%d"}]}`, r.ID, i)
		_, err := update(s, "demo", body, 1)
		return err
	})
	cur, err := s.Read(ctx(t), "Task", r.ID)
	if err != nil || cur.Version != 2 {
		t.Fatalf("after race: %+v, %v", cur, err)
	}
}

func testCreateExisting(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	create(t, s, "demo", `{"resourceType":"Organization","id":"cpts-roanne"}`)
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		_, err := tx.Create(ctx(t), "demo", json.RawMessage(`{"resourceType":"Organization","id":"cpts-roanne"}`))
		return err
	})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
}

func testInvalid(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	for _, body := range []string{`{`, `[]`, `{"resourceType":"patient"}`, `{"id":"x"}`, `{"resourceType":"Patient","id":"bad id!"}`, `{"resourceType":"Patient","meta":3}`} {
		err := s.Tx(ctx(t), func(tx store.Tx) error {
			_, err := tx.Create(ctx(t), "demo", json.RawMessage(body))
			return err
		})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("create %s: %v, want ErrInvalid", body, err)
		}
	}
	page, err := s.Search(ctx(t), store.Query{Type: "Patient"})
	if err != nil || len(page.Resources) != 0 {
		t.Fatalf("after invalid creates: %d resources, %v", len(page.Resources), err)
	}
	if _, err := s.Search(ctx(t), store.Query{Type: "Patient", Cursor: "garbage!"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad cursor: %v, want ErrInvalid", err)
	}
}

func sp(s string) *string { return &s }

func ids(rs []store.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	sort.Strings(out)
	return out
}

func testSearch(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	const ins = "urn:oid:1.2.250.1.213.1.4.8"
	create(t, s, "demo", `{"resourceType":"Patient","id":"p1","identifier":[{"system":"`+ins+`","value":"248034218701255"}],"name":[{"family":"Élodie-Durand","given":["Marie"]}],"birthDate":"1948-03-15"}`)
	create(t, s, "demo", `{"resourceType":"Patient","id":"p2","identifier":[{"system":"urn:oid:2.999.1","value":"248034218701255"}],"name":[{"family":"Martin"}],"birthDate":"1950-01-02"}`)
	create(t, s, "other", `{"resourceType":"Patient","id":"p3","identifier":[{"system":"`+ins+`","value":"111"}],"name":[{"family":"Durand"}]}`)
	create(t, s, "demo", `{"resourceType":"Task","id":"t1","status":"requested","intent":"order","for":{"reference":"Patient/p1"},"owner":{"reference":"PractitionerRole/ide-1"}}`)
	create(t, s, "demo", `{"resourceType":"Task","id":"t2","status":"completed","intent":"order","for":{"reference":"Patient/p1"},"owner":{"reference":"PractitionerRole/ide-2"}}`)

	tests := []struct {
		name string
		q    store.Query
		want []string
	}{
		{"token system|code", store.Query{Type: "Patient", Params: []store.Param{{Name: "identifier", Kind: store.KindToken, Values: []store.Value{{System: sp(ins), Code: "248034218701255"}}}}}, []string{"p1"}},
		{"token system| (any code)", store.Query{Type: "Patient", Params: []store.Param{{Name: "identifier", Kind: store.KindToken, Values: []store.Value{{System: sp(ins)}}}}}, []string{"p1", "p3"}},
		{"token any system", store.Query{Type: "Patient", Params: []store.Param{{Name: "identifier", Kind: store.KindToken, Values: []store.Value{{Code: "248034218701255"}}}}}, []string{"p1", "p2"}},
		{"tenant", store.Query{Tenant: "other", Type: "Patient"}, []string{"p3"}},
		{"string prefix folds accents and case", store.Query{Type: "Patient", Params: []store.Param{{Name: "family", Kind: store.KindString, Values: []store.Value{{Text: "elodie"}}}}}, []string{"p1"}},
		{"string OR", store.Query{Type: "Patient", Params: []store.Param{{Name: "family", Kind: store.KindString, Values: []store.Value{{Text: "martin"}, {Text: "durand"}}}}}, []string{"p2", "p3"}},
		{"reference and token AND", store.Query{Type: "Task", Params: []store.Param{
			{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: "Patient/p1"}}},
			{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "requested"}}},
		}}, []string{"t1"}},
		{"owner", store.Query{Type: "Task", Params: []store.Param{{Name: "owner", Kind: store.KindReference, Values: []store.Value{{Ref: "PractitionerRole/ide-2"}}}}}, []string{"t2"}},
		{"date eq day", store.Query{Type: "Patient", Params: []store.Param{{Name: "birthdate", Kind: store.KindDate, Values: []store.Value{{Prefix: "eq", Lo: day(1948, 3, 15), Hi: day(1948, 3, 16)}}}}}, []string{"p1"}},
		{"date gt", store.Query{Type: "Patient", Params: []store.Param{{Name: "birthdate", Kind: store.KindDate, Values: []store.Value{{Prefix: "gt", Lo: day(1949, 1, 1), Hi: day(1949, 1, 2)}}}}}, []string{"p2"}},
		{"_id", store.Query{Type: "Task", Params: []store.Param{{Name: "_id", Kind: store.KindToken, Values: []store.Value{{Code: "t2"}}}}}, []string{"t2"}},
	}
	for _, tc := range tests {
		page, err := s.Search(ctx(t), tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := ids(page.Resources); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// An update re-indexes: t1 completed no longer matches requested.
	if _, err := update(s, "demo", `{"resourceType":"Task","id":"t1","status":"completed","intent":"order","for":{"reference":"Patient/p1"}}`, 1); err != nil {
		t.Fatal(err)
	}
	page, err := s.Search(ctx(t), store.Query{Type: "Task", Total: true, Params: []store.Param{{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "requested"}}}}})
	if err != nil || len(page.Resources) != 0 || page.Total != 0 {
		t.Fatalf("after update: %v, total %d, %v", ids(page.Resources), page.Total, err)
	}
}

// testReindex: an update's index is the new version's, whatever the old
// one had — values kept, changed, removed, added — including for a resource
// updated in the transaction that created it, and after a deletion and a
// new version.
func testReindex(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	c := ctx(t)
	search := func(typ, name string, kind store.ParamKind, v store.Value) []string {
		t.Helper()
		page, err := s.Search(c, store.Query{Type: typ, Params: []store.Param{{Name: name, Kind: kind, Values: []store.Value{v}}}})
		if err != nil {
			t.Fatalf("%s?%s: %v", typ, name, err)
		}
		return ids(page.Resources)
	}
	expect := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	task := func(status, owner, due string) string {
		b := `{"resourceType":"Task","id":"t1","status":"` + status + `","intent":"order","for":{"reference":"Patient/p1"}`
		if owner != "" {
			b += `,"owner":{"reference":"` + owner + `"}`
		}
		if due != "" {
			b += `,"restriction":{"period":{"end":"` + due + `"}}`
		}
		return b + `}`
	}
	// Created and updated twice in one transaction: only the last version's
	// rows are left.
	err := s.Tx(c, func(tx store.Tx) error {
		r, err := tx.Create(c, "demo", json.RawMessage(task("requested", "PractitionerRole/a", "")))
		if err != nil {
			return err
		}
		if r, err = tx.Update(c, "demo", json.RawMessage(task("accepted", "PractitionerRole/a", "")), r.Version); err != nil {
			return err
		}
		_, err = tx.Update(c, "demo", json.RawMessage(task("in-progress", "PractitionerRole/b", "")), r.Version)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"requested", "accepted"} {
		expect("status "+st+" after one transaction", search("Task", "status", store.KindToken, store.Value{Code: st}))
	}
	expect("status in-progress", search("Task", "status", store.KindToken, store.Value{Code: "in-progress"}), "t1")
	expect("old owner", search("Task", "owner", store.KindReference, store.Value{Ref: "PractitionerRole/a"}))
	expect("new owner", search("Task", "owner", store.KindReference, store.Value{Ref: "PractitionerRole/b"}), "t1")
	expect("kept patient", search("Task", "patient", store.KindReference, store.Value{Ref: "Patient/p1"}), "t1")

	// The owner removed, the status kept, a date added.
	if _, err := update(s, "demo", task("in-progress", "", "2025-03-20"), 3); err != nil {
		t.Fatal(err)
	}
	expect("owner removed", search("Task", "owner", store.KindReference, store.Value{Ref: "PractitionerRole/b"}))
	expect("status kept", search("Task", "status", store.KindToken, store.Value{Code: "in-progress"}), "t1")
	expect("patient kept", search("Task", "patient", store.KindReference, store.Value{Ref: "Patient/p1"}), "t1")

	// A string whose normalised form stays while its written form changes.
	create(t, s, "demo", `{"resourceType":"Patient","id":"p9","name":[{"family":"Élodie"}]}`)
	if _, err := update(s, "demo", `{"resourceType":"Patient","id":"p9","name":[{"family":"Elodie"}]}`, 1); err != nil {
		t.Fatal(err)
	}
	expect("string prefix", search("Patient", "family", store.KindString, store.Value{Text: "elodie"}), "p9")
	expect("exact new", search("Patient", "family", store.KindString, store.Value{Text: "Elodie", Exact: true}), "p9")
	expect("exact old", search("Patient", "family", store.KindString, store.Value{Text: "Élodie", Exact: true}))

	// Deleted, then written again: indexed as the new version.
	if err := s.Tx(c, func(tx store.Tx) error { _, err := tx.Delete(c, "Task", "t1", 0); return err }); err != nil {
		t.Fatal(err)
	}
	expect("deleted", search("Task", "patient", store.KindReference, store.Value{Ref: "Patient/p1"}))
	if _, err := update(s, "demo", task("completed", "PractitionerRole/c", ""), 0); err != nil {
		t.Fatal(err)
	}
	expect("back, new status", search("Task", "status", store.KindToken, store.Value{Code: "completed"}), "t1")
	expect("back, new owner", search("Task", "owner", store.KindReference, store.Value{Ref: "PractitionerRole/c"}), "t1")
	expect("back, old status", search("Task", "status", store.KindToken, store.Value{Code: "in-progress"}))
}

// testCountTokens: the counts by token value are the totals a search per
// value gives — by tenant, deleted resources left out, a resource updated
// counted at its new value only.
func testCountTokens(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	tc, ok := s.(store.TokenCounter)
	if !ok {
		t.Fatal("the store does not count by token value (store.TokenCounter)")
	}
	c := ctx(t)
	task := func(tenant, id, status string) {
		create(t, s, tenant, `{"resourceType":"Task","id":"`+id+`","status":"`+status+`","intent":"order"}`)
	}
	task("demo", "a", "requested")
	task("demo", "b", "requested")
	task("demo", "c", "completed")
	task("demo", "d", "requested")
	task("other", "e", "requested")
	if _, err := update(s, "demo", `{"resourceType":"Task","id":"b","status":"accepted","intent":"order"}`, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Tx(c, func(tx store.Tx) error { _, err := tx.Delete(c, "Task", "d", 0); return err }); err != nil {
		t.Fatal(err)
	}
	got, err := tc.CountTokens(c, "demo", "Task", "status")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"requested": 1, "accepted": 1, "completed": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	for code, n := range want {
		page, err := s.Search(c, store.Query{Tenant: "demo", Type: "Task", Total: true, Count: 1,
			Params: []store.Param{{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: code}}}}})
		if err != nil || page.Total != n {
			t.Errorf("search status=%s: total %d, %v; counted %d", code, page.Total, err, n)
		}
	}
	if _, err := tc.CountTokens(c, "demo", "not a type", "status"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("bad type: %v, want ErrInvalid", err)
	}
}

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, clock.Paris) }

func testPaging(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	want := map[string]bool{}
	for i := range 25 {
		r := create(t, s, "demo", fmt.Sprintf(`{"resourceType":"Observation","id":"o%02d","status":"final","code":{"text":"x"}}`, i))
		want[r.ID] = true
	}
	seen := map[string]int{}
	q := store.Query{Type: "Observation", Count: 10, Total: true}
	pages := 0
	for {
		page, err := s.Search(ctx(t), q)
		if err != nil {
			t.Fatal(err)
		}
		if pages == 0 && page.Total != 25 {
			t.Errorf("total = %d, want 25", page.Total)
		}
		pages++
		for _, r := range page.Resources {
			seen[r.ID]++
		}
		// Insert between pages, with ids that sort before and after.
		create(t, s, "demo", fmt.Sprintf(`{"resourceType":"Observation","id":"a-new-%d","status":"final","code":{"text":"x"}}`, pages))
		create(t, s, "demo", fmt.Sprintf(`{"resourceType":"Observation","id":"z-new-%d","status":"final","code":{"text":"x"}}`, pages))
		if page.Next == "" || pages > 20 {
			break
		}
		q.Cursor = page.Next
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s seen %d times, want once", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", id, n)
		}
	}
}

var errBoom = errors.New("boom")

func testRollback(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		if _, err := tx.Create(ctx(t), "demo", json.RawMessage(`{"resourceType":"Patient","id":"ghost"}`)); err != nil {
			return err
		}
		if err := tx.Emit(ctx(t), store.Event{Subject: "fhir.demo.Patient.created", MsgID: "Patient/ghost/_history/1", Key: "Patient/ghost", Data: []byte("{}")}); err != nil {
			return err
		}
		if err := tx.Schedule(ctx(t), store.Timer{Key: "ghost", Kind: "k", Due: t0}); err != nil {
			return err
		}
		if _, err := tx.MarkHandled(ctx(t), "c", "m"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("tx: %v, want errBoom", err)
	}
	if _, err := s.Read(ctx(t), "Patient", "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("resource after rollback: %v", err)
	}
	if n, err := s.Outbox().Backlog(ctx(t)); err != nil || n != 0 {
		t.Errorf("outbox backlog after rollback: %d, %v", n, err)
	}
	if _, err := s.Timers().Pending(ctx(t), "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("timer after rollback: %v", err)
	}
	err = s.Tx(ctx(t), func(tx store.Tx) error {
		first, err := tx.MarkHandled(ctx(t), "c", "m")
		if !first {
			t.Errorf("inbox mark survived a rollback")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testGroupCommit runs many concurrent transactions, every third failing:
// the others commit, the failing ones leave nothing.
func testGroupCommit(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	const n = 150
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Tx(context.Background(), func(tx store.Tx) error {
				id := fmt.Sprintf("g%03d", i)
				if _, err := tx.Create(context.Background(), "demo", json.RawMessage(`{"resourceType":"Patient","id":"`+id+`"}`)); err != nil {
					return err
				}
				if err := tx.Emit(context.Background(), store.Event{Subject: "s", MsgID: id, Key: id, Data: []byte("{}")}); err != nil {
					return err
				}
				if i%3 == 0 {
					return errBoom
				}
				return nil
			})
			if (i%3 == 0) != errors.Is(err, errBoom) || (err != nil && !errors.Is(err, errBoom)) {
				t.Errorf("tx %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	page, err := s.Search(ctx(t), store.Query{Type: "Patient", Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Resources) != n-n/3 {
		t.Errorf("%d patients, want %d", len(page.Resources), n-n/3)
	}
	for _, r := range page.Resources {
		var i int
		fmt.Sscanf(r.ID, "g%d", &i)
		if i%3 == 0 {
			t.Errorf("%s committed although its transaction failed", r.ID)
		}
	}
	if b, err := s.Outbox().Backlog(ctx(t)); err != nil || b != n-n/3 {
		t.Errorf("outbox backlog %d, want %d (%v)", b, n-n/3, err)
	}
}

// testOutboxTooLarge: an event larger than store.MaxEventBytes is refused by
// Emit with ErrTooLarge, and nothing of its transaction commits; one just
// under the bound goes in.
func testOutboxTooLarge(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	big := bytes.Repeat([]byte("x"), store.MaxEventBytes)
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		if _, err := tx.Create(ctx(t), "demo", json.RawMessage(`{"resourceType":"Patient","id":"big"}`)); err != nil {
			return err
		}
		return tx.Emit(ctx(t), store.Event{Subject: "fhir.demo.Patient.created", MsgID: "Patient/big/_history/1", Key: "Patient/big", Data: big})
	})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("emit of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	if _, err := s.Read(ctx(t), "Patient", "big"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused event's transaction committed its resource: %v", err)
	}
	if n, err := s.Outbox().Backlog(ctx(t)); err != nil || n != 0 {
		t.Errorf("outbox backlog after a refused event: %d, %v", n, err)
	}
	fits := big[:store.MaxEventBytes-1024]
	if err := s.Tx(ctx(t), func(tx store.Tx) error {
		return tx.Emit(ctx(t), store.Event{Subject: "fhir.demo.Patient.created", MsgID: "Patient/fits/_history/1", Key: "Patient/fits", Data: fits})
	}); err != nil {
		t.Errorf("emit of %d bytes: %v", len(fits), err)
	}
}

func testOutbox(t *testing.T, open Factory) {
	clk := clock.NewFake(t0)
	s := open(t, clk).Store
	for i := range 5 {
		err := s.Tx(ctx(t), func(tx store.Tx) error {
			return tx.Emit(ctx(t), store.Event{Subject: "fhir.demo.Task.updated", MsgID: fmt.Sprintf("Task/1/_history/%d", i+1), Key: "Task/1",
				Headers: map[string]string{"traceparent": "00-abc-def-01"}, Data: []byte(fmt.Sprintf(`{"v":%d}`, i+1))})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, err := s.Outbox().Pending(ctx(t), 3)
	if err != nil || len(rows) != 3 {
		t.Fatalf("pending: %d, %v", len(rows), err)
	}
	for i, r := range rows {
		if r.Event.MsgID != fmt.Sprintf("Task/1/_history/%d", i+1) || r.Event.Headers["traceparent"] != "00-abc-def-01" || string(r.Event.Data) != fmt.Sprintf(`{"v":%d}`, i+1) {
			t.Errorf("row %d: %+v", i, r.Event)
		}
	}
	if err := s.Outbox().MarkSent(ctx(t), []int64{rows[0].Seq, rows[1].Seq}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Outbox().Backlog(ctx(t)); n != 3 {
		t.Errorf("backlog %d, want 3", n)
	}
	rest, _ := s.Outbox().Pending(ctx(t), 10)
	if len(rest) != 3 || rest[0].Event.MsgID != "Task/1/_history/3" {
		t.Errorf("pending after mark: %v", rest)
	}
	if n, err := s.Outbox().Resend(ctx(t), t0); err != nil || n != 2 {
		t.Errorf("resend: %d, %v", n, err)
	}
	all, _ := s.Outbox().Pending(ctx(t), 10)
	var seqs []int64
	for _, r := range all {
		seqs = append(seqs, r.Seq)
	}
	if err := s.Outbox().MarkSent(ctx(t), seqs, clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if n, err := s.Outbox().Purge(ctx(t), clk.Now().Add(-30*time.Minute)); err != nil || n != 5 {
		t.Errorf("purge: %d, %v", n, err)
	}
}

func testInbox(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	mark := func(consumer, id string) bool {
		var first bool
		if err := s.Tx(ctx(t), func(tx store.Tx) error {
			var err error
			first, err = tx.MarkHandled(ctx(t), consumer, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return first
	}
	if !mark("pathway", "Encounter/1/_history/1") {
		t.Error("first mark not first")
	}
	if mark("pathway", "Encounter/1/_history/1") {
		t.Error("second mark reported first")
	}
	if !mark("teams", "Encounter/1/_history/1") {
		t.Error("another consumer's first mark not first")
	}
	if n, err := s.Outbox().PurgeInbox(ctx(t), t0.Add(time.Second)); err != nil || n != 2 {
		t.Errorf("purge inbox: %d, %v; want 2", n, err)
	}
	if !mark("pathway", "Encounter/1/_history/1") {
		t.Error("a purged mark still counts")
	}
}

func testTimerLease(t *testing.T, open Factory) {
	clk := clock.NewFake(t0)
	s := open(t, clk).Store
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		if err := tx.Schedule(ctx(t), store.Timer{Key: "task/1/due", Tenant: "demo", Kind: "task-due", Due: t0.Add(time.Hour), Payload: json.RawMessage(`{"task":"1"}`)}); err != nil {
			return err
		}
		return tx.Schedule(ctx(t), store.Timer{Key: "task/2/due", Tenant: "demo", Kind: "task-due", Due: t0.Add(2 * time.Hour)})
	})
	if err != nil {
		t.Fatal(err)
	}
	due, ok, err := s.Timers().NextDue(ctx(t))
	if err != nil || !ok || !due.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next due: %v %v %v", due, ok, err)
	}
	if got, _ := s.Timers().Claim(ctx(t), "a", clk.Now(), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed before due: %v", got)
	}
	clk.Advance(time.Hour)
	got, err := s.Timers().Claim(ctx(t), "a", clk.Now(), time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].Key != "task/1/due" || got[0].Attempts != 1 || string(got[0].Payload) != `{"task":"1"}` {
		t.Fatalf("claim: %+v, %v", got, err)
	}
	if again, _ := s.Timers().Claim(ctx(t), "b", clk.Now(), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed under another's lease: %v", again)
	}
	clk.Advance(2 * time.Minute)
	again, err := s.Timers().Claim(ctx(t), "b", clk.Now(), time.Minute, 10)
	if err != nil || len(again) != 1 || again[0].Attempts != 2 {
		t.Fatalf("reclaim after lease expiry: %+v, %v", again, err)
	}
	err = s.Tx(ctx(t), func(tx store.Tx) error { return tx.CompleteTimer(ctx(t), "task/1/due", "a") })
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("complete by old owner: %v, want ErrLeaseLost", err)
	}
	if err := s.Tx(ctx(t), func(tx store.Tx) error { return tx.CompleteTimer(ctx(t), "task/1/due", "b") }); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if _, err := s.Timers().Pending(ctx(t), "task/1/due"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("fired timer still pending: %v", err)
	}
	if err := s.Tx(ctx(t), func(tx store.Tx) error { return tx.Cancel(ctx(t), "task/2/due") }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Timers().NextDue(ctx(t)); ok {
		t.Error("a timer is still pending after cancel")
	}
}

// testTimerOnce lets two handles of one database fire the same due timers
// concurrently: each fires exactly once.
func testTimerOnce(t *testing.T, open Factory) {
	clk := clock.NewFake(t0)
	o := open(t, clk)
	a, b := o.Store, o.Reopen(t)
	const n = 60
	err := a.Tx(ctx(t), func(tx store.Tx) error {
		for i := range n {
			if err := tx.Schedule(ctx(t), store.Timer{Key: fmt.Sprintf("k%d", i), Kind: "x", Due: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fired := map[string]int{}
	var wg sync.WaitGroup
	for w, s := range []store.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("w%d", w)
			for {
				ts, err := s.Timers().Claim(context.Background(), owner, clk.Now(), time.Minute, 3)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(ts) == 0 {
					return
				}
				for _, tm := range ts {
					err := s.Tx(context.Background(), func(tx store.Tx) error {
						if err := tx.CompleteTimer(context.Background(), tm.Key, owner); err != nil {
							return err
						}
						_, err := tx.Create(context.Background(), "demo", json.RawMessage(`{"resourceType":"Basic","id":"fired-`+tm.Key+`"}`))
						return err
					})
					if err != nil {
						t.Errorf("complete %s: %v", tm.Key, err)
						continue
					}
					mu.Lock()
					fired[tm.Key]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(fired) != n {
		t.Errorf("%d timers fired, want %d", len(fired), n)
	}
	for k, c := range fired {
		if c != 1 {
			t.Errorf("%s fired %d times", k, c)
		}
	}
}

func testLeases(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	l := s.Leases()
	if ok, err := l.Acquire(ctx(t), "relay", "a", t0, time.Minute); err != nil || !ok {
		t.Fatalf("a acquires: %v %v", ok, err)
	}
	if ok, _ := l.Acquire(ctx(t), "relay", "b", t0.Add(30*time.Second), time.Minute); ok {
		t.Fatal("b acquired a held lease")
	}
	if ok, _ := l.Acquire(ctx(t), "relay", "a", t0.Add(30*time.Second), time.Minute); !ok {
		t.Fatal("a could not renew")
	}
	if ok, _ := l.Acquire(ctx(t), "relay", "b", t0.Add(2*time.Minute), time.Minute); !ok {
		t.Fatal("b could not take an expired lease")
	}
	if err := l.Release(ctx(t), "relay", "b"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Acquire(ctx(t), "relay", "a", t0.Add(2*time.Minute), time.Minute); !ok {
		t.Fatal("a could not take a released lease")
	}
}

func testAudit(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Tx(context.Background(), func(tx store.Tx) error {
				return tx.Audit(context.Background(), store.AuditRecord{Tenant: "demo", Agent: "PractitionerRole/ide-1", Action: "R",
					Entity: fmt.Sprintf("Patient/p%d", i), Patient: fmt.Sprintf("Patient/p%d", i), Outcome: "0"})
			})
			if err != nil {
				t.Errorf("audit: %v", err)
			}
		}()
	}
	wg.Wait()
	recs, err := s.AuditLog().List(ctx(t), 0, 100)
	if err != nil || len(recs) != 20 {
		t.Fatalf("list: %d, %v", len(recs), err)
	}
	prev := ""
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.PrevHash != prev || r.Hash != store.AuditHash(r) {
			t.Fatalf("record %d breaks the chain: %+v", i, r)
		}
		prev = r.Hash
	}
	// Each tenant has its own chain; sequence numbers stay global.
	for _, tenant := range []string{"autre", "demo", "autre"} {
		err := s.Tx(context.Background(), func(tx store.Tx) error {
			return tx.Audit(context.Background(), store.AuditRecord{Tenant: tenant, Agent: "PractitionerRole/ide-1", Action: "R",
				Entity: "Patient/p1", Patient: "Patient/p1", Outcome: "0"})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, _ = s.AuditLog().List(ctx(t), 20, 100)
	if len(recs) != 3 || recs[0].PrevHash != "" || recs[1].PrevHash != prev || recs[2].PrevHash != recs[0].Hash || recs[2].Seq != 23 {
		t.Fatalf("per-tenant chains: %+v", recs)
	}
	// Find: one tenant's records, newest first, by patient, by seq, paged.
	found, err := s.AuditLog().Find(ctx(t), store.AuditFilter{Tenant: "demo", Patient: "Patient/p1"})
	if err != nil || len(found) != 2 || found[0].Seq != 22 || found[1].Patient != "Patient/p1" {
		t.Fatalf("find by patient: %+v %v", found, err)
	}
	found, err = s.AuditLog().Find(ctx(t), store.AuditFilter{Tenant: "demo", Before: 22, Limit: 3})
	if err != nil || len(found) != 3 || found[0].Seq != 20 || found[2].Seq != 18 {
		t.Fatalf("find before: %+v %v", found, err)
	}
	found, err = s.AuditLog().Find(ctx(t), store.AuditFilter{Tenant: "autre", Seq: 22})
	if err != nil || len(found) != 0 {
		t.Fatalf("another tenant's record by seq: %+v %v", found, err)
	}
}

func testMessages(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	put := func(m store.Message) (store.Message, bool) {
		t.Helper()
		var got store.Message
		var created bool
		if err := s.Tx(ctx(t), func(tx store.Tx) error {
			var err error
			got, created, err = tx.PutMessage(ctx(t), m)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got, created
	}
	first, created := put(store.Message{Tenant: "demo", Channel: "hl7v2", Sender: "420000002", Key: "GAM|CHX|MSG1", Hash: "h1",
		ControlID: "MSG1", Event: "discharge", Status: "accepted", Response: []byte("MSH|ack"), Raw: []byte("MSH|...")})
	if !created || first.ID == "" || !first.Received.Equal(t0) {
		t.Fatalf("first put: %+v %v", first, created)
	}
	again, created := put(store.Message{Tenant: "demo", Channel: "hl7v2", Key: "GAM|CHX|MSG1", Hash: "h2"})
	if created || again.ID != first.ID || again.Hash != "h1" || string(again.Response) != "MSH|ack" {
		t.Fatalf("second put: %+v %v", again, created)
	}
	if _, created := put(store.Message{Tenant: "demo", Channel: "fhir", Key: "GAM|CHX|MSG1", Hash: "h3", ControlID: "MSG1"}); !created {
		t.Fatal("same key on another channel not archived")
	}
	if err := s.Tx(ctx(t), func(tx store.Tx) error { return tx.SetMessageStatus(ctx(t), first.ID, "applied", "Patient/p1") }); err != nil {
		t.Fatal(err)
	}
	got, err := s.Messages().Get(ctx(t), first.ID)
	if err != nil || got.Status != "applied" || got.Patient != "Patient/p1" || string(got.Raw) != "MSH|..." {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.Messages().FindKey(ctx(t), "demo", "hl7v2", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("find missing: %v", err)
	}
	list, next, err := s.Messages().List(ctx(t), store.MessageFilter{Tenant: "demo", ControlID: "MSG1", Limit: 1})
	if err != nil || len(list) != 1 || list[0].Channel != "fhir" || next == 0 {
		t.Fatalf("list page 1: %+v %d %v", list, next, err)
	}
	list, next, err = s.Messages().List(ctx(t), store.MessageFilter{Tenant: "demo", ControlID: "MSG1", Limit: 1, Before: next})
	if err != nil || len(list) != 1 || list[0].ID != first.ID || next != 0 {
		t.Fatalf("list page 2: %+v %d %v", list, next, err)
	}
	if list, _, _ := s.Messages().List(ctx(t), store.MessageFilter{Patient: "Patient/p1"}); len(list) != 1 {
		t.Fatalf("by patient: %d", len(list))
	}
}

// testActorAudit: a transaction run for a service (store.WithActor) leaves
// one audit record per write of patient data, in the same transaction,
// naming the service, the cause, the version written and the patient; a
// transaction without an actor (a person's request, audited by its
// handler) leaves none.
func testActorAudit(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	actx := store.WithActor(ctx(t), store.Actor{Agent: store.ServiceAgent("pathway-encounter"), Cause: "event Encounter/e1/_history/1"})
	err := s.Tx(actx, func(tx store.Tx) error {
		for _, body := range []string{
			`{"resourceType":"Patient","id":"pa1"}`,
			`{"resourceType":"Organization","id":"org1"}`,
			`{"resourceType":"EpisodeOfCare","id":"ep1","status":"active","patient":{"reference":"Patient/pa1"}}`,
			`{"resourceType":"Task","id":"t1","status":"requested","for":{"reference":"Patient/pa1"}}`,
		} {
			if _, err := tx.Create(actx, "demo", json.RawMessage(body)); err != nil {
				return err
			}
		}
		_, err := tx.Update(actx, "demo", json.RawMessage(`{"resourceType":"Task","id":"t1","status":"cancelled","for":{"reference":"Patient/pa1"}}`), 1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failed transaction leaves no record.
	boom := errors.New("boom")
	if err := s.Tx(actx, func(tx store.Tx) error {
		if _, err := tx.Create(actx, "demo", json.RawMessage(`{"resourceType":"Patient","id":"pa2"}`)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	// Without an actor, nothing is added.
	if err := s.Tx(ctx(t), func(tx store.Tx) error {
		_, err := tx.Create(ctx(t), "demo", json.RawMessage(`{"resourceType":"Patient","id":"pa3"}`))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.AuditLog().List(ctx(t), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	prev := ""
	for _, r := range recs {
		got = append(got, strings.Join([]string{r.Agent, r.Action, r.Entity, r.Patient, r.Detail}, " | "))
		if r.PrevHash != prev || r.Hash != s.AuditLog().Hash(r) {
			t.Errorf("record %d breaks the chain: %+v", r.Seq, r)
		}
		prev = r.Hash
	}
	want := []string{
		"System/pathway | C | Patient/pa1/_history/1 | Patient/pa1 | event Encounter/e1/_history/1",
		"System/pathway | C | EpisodeOfCare/ep1/_history/1 | Patient/pa1 | event Encounter/e1/_history/1 status=active",
		"System/pathway | C | Task/t1/_history/1 | Patient/pa1 | event Encounter/e1/_history/1 status=requested",
		"System/pathway | U | Task/t1/_history/2 | Patient/pa1 | event Encounter/e1/_history/1 status=cancelled",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit records:\n got %q\nwant %q", got, want)
	}
	// A handler that audits its write itself is not audited twice.
	n := len(recs)
	if err := s.Tx(actx, func(tx store.Tx) error {
		res, err := tx.Create(actx, "demo", json.RawMessage(`{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/pa1"}}`))
		if err != nil {
			return err
		}
		return tx.Audit(actx, store.AuditRecord{Tenant: "demo", Agent: "System/worklist", Action: "C", Outcome: "0",
			Entity: fmt.Sprintf("Observation/%s/_history/%d", res.ID, res.Version), Patient: "Patient/pa1"})
	}); err != nil {
		t.Fatal(err)
	}
	if recs, _ = s.AuditLog().List(ctx(t), 0, 100); len(recs) != n+1 || recs[n].Agent != "System/worklist" {
		t.Errorf("a write audited by its handler: %+v", recs[n:])
	}
	// The message archive: archived and applied, each a record.
	mctx := store.WithActor(ctx(t), store.Actor{Agent: "System/intake", Cause: "message m1"})
	if err := s.Tx(mctx, func(tx store.Tx) error {
		if _, _, err := tx.PutMessage(mctx, store.Message{ID: "m1", Tenant: "demo", Channel: "fhir", Key: "k1", Status: "accepted"}); err != nil {
			return err
		}
		return tx.SetMessageStatus(mctx, "m1", "applied", "Patient/pa1")
	}); err != nil {
		t.Fatal(err)
	}
	recs, _ = s.AuditLog().List(ctx(t), int64(len(recs)), 100)
	if len(recs) != 2 || recs[0].Action != "C" || recs[1].Action != "U" || recs[1].Patient != "Patient/pa1" ||
		!strings.Contains(recs[1].Entity, "m1") || !strings.Contains(recs[1].Detail, "applied") {
		t.Errorf("archive records: %+v", recs)
	}
}

// testAuditKeyed: once keyed, records carry an HMAC that the unkeyed hash
// cannot reproduce (someone who edits a record and re-hashes the rest is
// caught); records written before the key keep verifying.
func testAuditKeyed(t *testing.T, open Factory) {
	o := open(t, clock.NewFake(t0))
	if o.KeyAudit == nil {
		t.Skip("backend cannot key its audit chain")
	}
	s := o.Store
	write := func(tenant string) {
		t.Helper()
		if err := s.Tx(ctx(t), func(tx store.Tx) error {
			return tx.Audit(ctx(t), store.AuditRecord{Tenant: tenant, Agent: "PractitionerRole/ide-1", Action: "R",
				Entity: "Patient/p1", Patient: "Patient/p1", Outcome: "0"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	write("demo")
	write("demo")
	o.KeyAudit(store.AuditKey{Secret: []byte("0123456789abcdef0123456789abcdef"), From: 3})
	write("demo")
	write("autre")
	recs, err := s.AuditLog().List(ctx(t), 0, 100)
	if err != nil || len(recs) != 4 {
		t.Fatalf("list: %+v %v", recs, err)
	}
	for _, r := range recs {
		if r.Hash != s.AuditLog().Hash(r) {
			t.Errorf("record %d does not verify", r.Seq)
		}
		if keyed := r.Seq >= 3; keyed == (r.Hash == store.AuditHash(r)) {
			t.Errorf("record %d: keyed %v, but its hash is the unkeyed one: %v", r.Seq, keyed, r.Hash == store.AuditHash(r))
		}
	}
	if recs[2].PrevHash != recs[1].Hash {
		t.Errorf("the first keyed record does not follow the last unkeyed one")
	}
	heads, err := s.AuditLog().Heads(ctx(t))
	if err != nil || len(heads) != 2 || heads[0].Tenant != "autre" || heads[0].Seq != 4 || heads[1].Tenant != "demo" || heads[1].Seq != 3 {
		t.Errorf("heads: %+v %v", heads, err)
	}
}

// createWithKey creates a Basic resource with id in a transaction carrying
// the idempotency key k.
func createWithKey(s store.Store, k *store.IdempotencyKey, id string) error {
	c := store.WithIdempotencyKey(context.Background(), k)
	return s.Tx(c, func(tx store.Tx) error {
		_, err := tx.Create(c, "demo", json.RawMessage(`{"resourceType":"Basic","id":"`+id+`"}`))
		return err
	})
}

func testIdempotency(t *testing.T, open Factory) {
	clk := clock.NewFake(t0)
	o := open(t, clk)
	s := o.Store
	k1 := &store.IdempotencyKey{Scope: "demo PractitionerRole/a", Key: "k1", Hash: "h1"}
	if err := createWithKey(s, k1, "first"); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if !k1.Claimed() || k1.Lost() {
		t.Fatalf("first write: claimed %v lost %v, want the key claimed", k1.Claimed(), k1.Lost())
	}
	got, err := s.Idempotency().Get(ctx(t), k1.Scope, "k1")
	if err != nil || got.Status != 0 || got.Hash != "h1" || !got.Created.Equal(t0) {
		t.Fatalf("claimed key: %+v, %v; want pending with hash h1 created at %v", got, err, t0)
	}

	// The same key again writes nothing.
	again := &store.IdempotencyKey{Scope: k1.Scope, Key: "k1", Hash: "h1"}
	if err := createWithKey(s, again, "second"); !errors.Is(err, store.ErrKeyInUse) {
		t.Fatalf("same key again: %v, want ErrKeyInUse", err)
	}
	if !again.Lost() || again.Claimed() {
		t.Errorf("same key again: claimed %v lost %v, want lost", again.Claimed(), again.Lost())
	}
	if _, err := s.Read(ctx(t), "Basic", "second"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused write was stored: %v", err)
	}
	// Another caller's key of the same name is another key.
	other := &store.IdempotencyKey{Scope: "demo PractitionerRole/b", Key: "k1", Hash: "h1"}
	if err := createWithKey(s, other, "other"); err != nil || !other.Claimed() {
		t.Fatalf("same key, other scope: %v (claimed %v)", err, other.Claimed())
	}
	// A rolled-back write leaves no key; a transaction without a data write
	// (an audit record alone) claims none.
	rb := &store.IdempotencyKey{Scope: k1.Scope, Key: "rolled-back", Hash: "h"}
	c := store.WithIdempotencyKey(context.Background(), rb)
	boom := errors.New("boom")
	err = s.Tx(c, func(tx store.Tx) error {
		if _, err := tx.Create(c, "demo", json.RawMessage(`{"resourceType":"Basic","id":"rb"}`)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || rb.Claimed() {
		t.Fatalf("rolled back: %v, claimed %v", err, rb.Claimed())
	}
	ro := &store.IdempotencyKey{Scope: k1.Scope, Key: "audit-only", Hash: "h"}
	c = store.WithIdempotencyKey(context.Background(), ro)
	if err := s.Tx(c, func(tx store.Tx) error {
		return tx.Audit(c, store.AuditRecord{Tenant: "demo", Time: t0, Agent: "x", Action: "R", Entity: "Basic/first", Outcome: "0"})
	}); err != nil || ro.Claimed() {
		t.Fatalf("audit only: %v, claimed %v", err, ro.Claimed())
	}
	for _, k := range []string{"rolled-back", "audit-only"} {
		if _, err := s.Idempotency().Get(ctx(t), k1.Scope, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key %s: %v, want ErrNotFound", k, err)
		}
	}

	// The answer is stored once, on the claimed key.
	ans := store.IdempotentRequest{Scope: k1.Scope, Key: "k1", Hash: "h1", Status: 201,
		Header: map[string][]string{"Location": {"/fhir/Basic/first"}}, Body: []byte(`{"id":"first"}`)}
	if _, stored, err := s.Idempotency().Answer(ctx(t), ans); err != nil || !stored {
		t.Fatalf("answer: stored %v, %v", stored, err)
	}
	later := ans
	later.Status, later.Body = 500, []byte("later")
	first, stored, err := s.Idempotency().Answer(ctx(t), later)
	if err != nil || stored || first.Status != 201 || string(first.Body) != `{"id":"first"}` {
		t.Fatalf("second answer: stored %v, %+v, %v; want the first answer kept", stored, first, err)
	}
	// A key no write claimed takes its answer directly; another request
	// reusing it gets that key back.
	free := store.IdempotentRequest{Scope: k1.Scope, Key: "no-write", Hash: "hx", Status: 303, Body: []byte{}}
	if _, stored, err := s.Idempotency().Answer(ctx(t), free); err != nil || !stored {
		t.Fatalf("answer without a write: stored %v, %v", stored, err)
	}
	free.Hash = "hy"
	if got, stored, err := s.Idempotency().Answer(ctx(t), free); err != nil || stored || got.Hash != "hx" {
		t.Fatalf("answer of another request on a used key: stored %v, %+v, %v", stored, got, err)
	}

	// Another handle (a restart, another replica) sees the key and its answer.
	s2 := o.Reopen(t)
	got, err = s2.Idempotency().Get(ctx(t), k1.Scope, "k1")
	if err != nil || got.Status != 201 || got.Header["Location"][0] != "/fhir/Basic/first" || string(got.Body) != `{"id":"first"}` {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
	if err := createWithKey(s2, &store.IdempotencyKey{Scope: k1.Scope, Key: "k1", Hash: "h1"}, "third"); !errors.Is(err, store.ErrKeyInUse) {
		t.Errorf("same key after reopening: %v, want ErrKeyInUse", err)
	}

	// Keys are purged by age.
	clk.Advance(7 * 24 * time.Hour)
	if err := createWithKey(s, &store.IdempotencyKey{Scope: k1.Scope, Key: "recent", Hash: "h"}, "recent"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Idempotency().Purge(ctx(t), clk.Now().Add(-7*24*time.Hour+time.Second))
	if err != nil || n != 3 {
		t.Fatalf("purge: %d, %v; want the 3 keys older than 7 days", n, err)
	}
	if _, err := s.Idempotency().Get(ctx(t), k1.Scope, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("purged key: %v", err)
	}
	if _, err := s.Idempotency().Get(ctx(t), k1.Scope, "recent"); err != nil {
		t.Errorf("recent key purged: %v", err)
	}
}

// testIdempotencyConcurrent: requests racing with one key on two handles
// write once.
func testIdempotencyConcurrent(t *testing.T, open Factory) {
	o := open(t, clock.NewFake(t0))
	a, b := o.Store, o.Reopen(t)
	const n = 8
	var wg sync.WaitGroup
	var won, lost atomic.Int32
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := &store.IdempotencyKey{Scope: "demo Device/x", Key: "same", Hash: "h"}
			err := createWithKey(s, k, fmt.Sprintf("race-%d", i))
			switch {
			case err == nil && k.Claimed():
				won.Add(1)
			case errors.Is(err, store.ErrKeyInUse) && k.Lost():
				lost.Add(1)
			default:
				t.Errorf("writer %d: %v (claimed %v, lost %v)", i, err, k.Claimed(), k.Lost())
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 || lost.Load() != n-1 {
		t.Fatalf("%d writes won and %d lost, want 1 and %d", won.Load(), lost.Load(), n-1)
	}
	written := 0
	for i := range n {
		if _, err := a.Read(ctx(t), "Basic", fmt.Sprintf("race-%d", i)); err == nil {
			written++
		}
	}
	if written != 1 {
		t.Errorf("%d resources written, want 1", written)
	}
}

// oneWins runs n writes at once, each expecting the same version: exactly
// one must succeed and every other fail with ErrVersionConflict.
func oneWins(t *testing.T, n int, what string, write func(i int) error) {
	t.Helper()
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			switch err := write(i); {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, store.ErrVersionConflict):
				conflicts.Add(1)
			default:
				t.Errorf("%s: %v", what, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != int32(n-1) {
		t.Fatalf("%s: wins %d, conflicts %d; want 1 and %d", what, wins.Load(), conflicts.Load(), n-1)
	}
}
