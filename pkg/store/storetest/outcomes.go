package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// The outcomes service's projection: one record per patient, written
// optimistically inside transactions, scanned per tenant.

// readOutcome reads a patient's record in a transaction of its own.
func readOutcome(t *testing.T, s store.Store, tenant, patient string) (store.OutcomeRecord, error) {
	t.Helper()
	var r store.OutcomeRecord
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		var err error
		r, err = tx.OutcomeRecord(ctx(t), tenant, patient)
		return err
	})
	return r, err
}

// putOutcome writes r in a transaction of its own.
func putOutcome(t *testing.T, s store.Store, r store.OutcomeRecord) (int64, error) {
	t.Helper()
	var v int64
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		var err error
		v, err = tx.PutOutcomeRecord(ctx(t), r)
		return err
	})
	return v, err
}

// scanOutcomes returns the texts a scan yields, sorted.
func scanOutcomes(t *testing.T, s store.Store, tenant string, tasks bool) []string {
	t.Helper()
	var got []string
	if err := s.ScanOutcomeRecords(ctx(t), tenant, tasks, func(text string) error {
		got = append(got, text)
		return nil
	}); err != nil {
		t.Fatalf("scan %s (tasks %v): %v", tenant, tasks, err)
	}
	slices.Sort(got)
	return got
}

func testOutcomeRecords(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	if _, err := readOutcome(t, s, "demo", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read before any write: %v, want ErrNotFound", err)
	}

	// Create.
	v, err := putOutcome(t, s, store.OutcomeRecord{Tenant: "demo", Patient: "p1", Record: "r1;P|p1", Tasks: ";T|e1|t1"})
	if err != nil || v != 1 {
		t.Fatalf("create: version %d, %v; want 1", v, err)
	}
	want := store.OutcomeRecord{Tenant: "demo", Patient: "p1", Version: 1, Record: "r1;P|p1", Tasks: ";T|e1|t1"}
	if got, err := readOutcome(t, s, "demo", "p1"); err != nil || got != want {
		t.Fatalf("read after create: %+v, %v; want %+v", got, err, want)
	}
	// A second create finds the record there.
	if _, err := putOutcome(t, s, store.OutcomeRecord{Tenant: "demo", Patient: "p1", Record: "r1;P|other"}); !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("create again: %v, want ErrVersionConflict", err)
	}

	// Update with the version read.
	next := want
	next.Record, next.Tasks = "r1;P|p1|Martin", ""
	if v, err := putOutcome(t, s, next); err != nil || v != 2 {
		t.Fatalf("update at version 1: version %d, %v; want 2", v, err)
	}
	want = next
	want.Version = 2
	if got, err := readOutcome(t, s, "demo", "p1"); err != nil || got != want {
		t.Fatalf("read after update: %+v, %v; want %+v", got, err, want)
	}
	// A stale version, or one ahead, changes nothing.
	for _, v := range []int64{1, 3} {
		stale := want
		stale.Version, stale.Record = v, "r1;P|stale"
		if _, err := putOutcome(t, s, stale); !errors.Is(err, store.ErrVersionConflict) {
			t.Errorf("update at version %d: %v, want ErrVersionConflict", v, err)
		}
	}
	// An update of a record never created conflicts too.
	if _, err := putOutcome(t, s, store.OutcomeRecord{Tenant: "demo", Patient: "nobody", Version: 1, Record: "r1;P|nobody"}); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("update of a missing record: %v, want ErrVersionConflict", err)
	}
	if got, err := readOutcome(t, s, "demo", "p1"); err != nil || got != want {
		t.Fatalf("read after conflicts: %+v, %v; want %+v", got, err, want)
	}

	// Tenants are apart: the same patient id elsewhere is another record.
	if _, err := readOutcome(t, s, "other", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other tenant's read: %v, want ErrNotFound", err)
	}
	if v, err := putOutcome(t, s, store.OutcomeRecord{Tenant: "other", Patient: "p1", Record: "r1;P|p1|Durand"}); err != nil || v != 1 {
		t.Fatalf("create in other tenant: version %d, %v; want 1", v, err)
	}
	if got, err := readOutcome(t, s, "demo", "p1"); err != nil || got != want {
		t.Errorf("demo's record after other's write: %+v, %v; want %+v", got, err, want)
	}

	// No tenant or no patient: invalid.
	for _, r := range []store.OutcomeRecord{{Patient: "p2", Record: "x"}, {Tenant: "demo", Record: "x"}} {
		if _, err := putOutcome(t, s, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("put %+v: %v, want ErrInvalid", r, err)
		}
	}

	// A record write claims the request's idempotency key, as a resource
	// write does.
	k := &store.IdempotencyKey{Scope: "demo System/outcomes", Key: "k-outcome", Hash: "h"}
	c := store.WithIdempotencyKey(context.Background(), k)
	if err := s.Tx(c, func(tx store.Tx) error {
		_, err := tx.PutOutcomeRecord(c, store.OutcomeRecord{Tenant: "demo", Patient: "p3", Record: "r1;P|p3"})
		return err
	}); err != nil || !k.Claimed() {
		t.Fatalf("write with a key: %v, claimed %v", err, k.Claimed())
	}
	if _, err := s.Idempotency().Get(ctx(t), k.Scope, k.Key); err != nil {
		t.Errorf("key after the record write: %v", err)
	}
	again := &store.IdempotencyKey{Scope: k.Scope, Key: k.Key, Hash: "h"}
	c = store.WithIdempotencyKey(context.Background(), again)
	err = s.Tx(c, func(tx store.Tx) error {
		_, err := tx.PutOutcomeRecord(c, store.OutcomeRecord{Tenant: "demo", Patient: "p4", Record: "r1;P|p4"})
		return err
	})
	if !errors.Is(err, store.ErrKeyInUse) {
		t.Fatalf("write with a used key: %v, want ErrKeyInUse", err)
	}
	if _, err := readOutcome(t, s, "demo", "p4"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record written under a used key: %v, want ErrNotFound", err)
	}
}

func testOutcomeRecordsConcurrentCreate(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	const n = 8
	oneWins(t, n, "create", func(i int) error {
		_, err := putOutcome(t, s, store.OutcomeRecord{Tenant: "demo", Patient: "p1", Record: fmt.Sprintf("r1;P|p1|%d", i)})
		return err
	})
	if got, err := readOutcome(t, s, "demo", "p1"); err != nil || got.Version != 1 {
		t.Fatalf("after race: %+v, %v; want version 1", got, err)
	}
}

func testOutcomeRecordsScan(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	// More records than one batch of the reader, in two tenants.
	const n = 1300
	var records, withTasks []string
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		for i := range n {
			r := store.OutcomeRecord{Tenant: "demo", Patient: fmt.Sprintf("p%04d", i), Record: fmt.Sprintf("r1;P|p%04d", i)}
			if i%3 == 0 {
				r.Tasks = fmt.Sprintf(";T|e%d|t%d", i, i)
			}
			if _, err := tx.PutOutcomeRecord(ctx(t), r); err != nil {
				return err
			}
			records = append(records, r.Record)
			withTasks = append(withTasks, r.Record+r.Tasks)
		}
		_, err := tx.PutOutcomeRecord(ctx(t), store.OutcomeRecord{Tenant: "other", Patient: "p0000", Record: "r1;P|elsewhere", Tasks: ";T|x|y"})
		return err
	})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	slices.Sort(records)
	slices.Sort(withTasks)
	if got := scanOutcomes(t, s, "demo", false); !slices.Equal(got, records) {
		t.Errorf("scan without tasks: %d texts, want %d (first %q)", len(got), len(records), first(got))
	}
	if got := scanOutcomes(t, s, "demo", true); !slices.Equal(got, withTasks) {
		t.Errorf("scan with tasks: %d texts, want %d (first %q)", len(got), len(withTasks), first(got))
	}
	if got := scanOutcomes(t, s, "other", true); !slices.Equal(got, []string{"r1;P|elsewhere;T|x|y"}) {
		t.Errorf("other tenant's scan: %q", got)
	}
	if got := scanOutcomes(t, s, "empty", true); len(got) != 0 {
		t.Errorf("empty tenant's scan: %q, want nothing", got)
	}

	// fn's error stops the scan and comes back as is.
	stop := errors.New("stop")
	calls := 0
	err = s.ScanOutcomeRecords(ctx(t), "demo", false, func(string) error {
		calls++
		if calls == 600 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 600 {
		t.Errorf("scan stopped by fn: %v after %d calls, want stop after 600", err, calls)
	}
	// A cancelled context ends the scan with its error.
	c, cancel := context.WithCancel(ctx(t))
	calls = 0
	err = s.ScanOutcomeRecords(c, "demo", false, func(string) error {
		calls++
		if calls == 1 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("scan with its context cancelled: %v, want context.Canceled", err)
	}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func testOutcomeRecordsRollback(t *testing.T, open Factory) {
	s := open(t, clock.NewFake(t0)).Store
	if _, err := putOutcome(t, s, store.OutcomeRecord{Tenant: "demo", Patient: "kept", Record: "r1;P|kept"}); err != nil {
		t.Fatalf("create: %v", err)
	}
	err := s.Tx(ctx(t), func(tx store.Tx) error {
		if _, err := tx.PutOutcomeRecord(ctx(t), store.OutcomeRecord{Tenant: "demo", Patient: "ghost", Record: "r1;P|ghost"}); err != nil {
			return err
		}
		if _, err := tx.PutOutcomeRecord(ctx(t), store.OutcomeRecord{Tenant: "demo", Patient: "kept", Version: 1, Record: "r1;P|changed"}); err != nil {
			return err
		}
		// Inside the transaction, its writes are seen.
		if r, err := tx.OutcomeRecord(ctx(t), "demo", "kept"); err != nil || r.Version != 2 || r.Record != "r1;P|changed" {
			return fmt.Errorf("read inside the transaction: %+v, %v", r, err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("tx: %v, want errBoom", err)
	}
	if _, err := readOutcome(t, s, "demo", "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("created record after rollback: %v, want ErrNotFound", err)
	}
	want := store.OutcomeRecord{Tenant: "demo", Patient: "kept", Version: 1, Record: "r1;P|kept"}
	if got, err := readOutcome(t, s, "demo", "kept"); err != nil || got != want {
		t.Errorf("updated record after rollback: %+v, %v; want %+v", got, err, want)
	}
	if got := scanOutcomes(t, s, "demo", true); !slices.Equal(got, []string{"r1;P|kept"}) {
		t.Errorf("scan after rollback: %q", got)
	}
}
