package timer_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/pkg/timer"
)

var t0 = time.Date(2026, 3, 28, 12, 0, 0, 0, clock.Paris)

func open(t *testing.T, path string, clk clock.Clock) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Options: sqlstore.Options{Clock: clk}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFiresAfterRestart schedules a timer, closes the store as a stopped
// process would, and a new runner on a new handle fires it when the clock
// reaches it, once, with its writes in the same transaction.
func TestFiresAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	clk := clock.NewFake(t0)
	s := open(t, path, clk)
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		return tx.Schedule(context.Background(), store.Timer{Key: "task/1/due", Tenant: "demo", Kind: "due",
			Due: t0.Add(48 * time.Hour), Payload: json.RawMessage(`{"task":"1"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s = open(t, path, clk)
	defer s.Close()
	var fired atomic.Int32
	r := &timer.Runner{Store: s, Clock: clk, Owner: "b", Handlers: map[string]timer.Handler{
		"due": func(ctx context.Context, tx store.Tx, tm store.Timer) error {
			fired.Add(1)
			_, err := tx.Create(ctx, tm.Tenant, json.RawMessage(`{"resourceType":"Basic","id":"reminder-1"}`))
			return err
		},
	}}
	if n, err := r.FireDue(context.Background(), nil); err != nil || n != 0 {
		t.Fatalf("fired before due: %d %v", n, err)
	}
	clk.Advance(48 * time.Hour)
	if n, err := r.FireDue(context.Background(), nil); err != nil || n != 1 {
		t.Fatalf("fire: %d %v", n, err)
	}
	if n, _ := r.FireDue(context.Background(), nil); n != 0 || fired.Load() != 1 {
		t.Fatalf("fired again: %d, handler ran %d times", n, fired.Load())
	}
	if _, err := s.Read(context.Background(), "Basic", "reminder-1"); err != nil {
		t.Errorf("the timer's write: %v", err)
	}
}

// TestFailureRetriesAfterLease: a failing handler leaves no write and the
// timer comes back once its lease has run out.
func TestFailureRetriesAfterLease(t *testing.T) {
	clk := clock.NewFake(t0)
	s := open(t, filepath.Join(t.TempDir(), "db"), clk)
	defer s.Close()
	_ = s.Tx(context.Background(), func(tx store.Tx) error {
		return tx.Schedule(context.Background(), store.Timer{Key: "k", Kind: "flaky", Due: t0})
	})
	calls := 0
	r := &timer.Runner{Store: s, Clock: clk, Owner: "a", Lease: time.Minute, Handlers: map[string]timer.Handler{
		"flaky": func(ctx context.Context, tx store.Tx, tm store.Timer) error {
			calls++
			if _, err := tx.Create(ctx, "demo", json.RawMessage(`{"resourceType":"Basic","id":"once"}`)); err != nil {
				return err
			}
			if tm.Attempts == 1 {
				return errors.New("first attempt fails")
			}
			return nil
		},
	}}
	_, _ = r.FireDue(context.Background(), nil)
	if _, err := s.Read(context.Background(), "Basic", "once"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed handler's write was kept: %v", err)
	}
	if n, _ := r.FireDue(context.Background(), nil); n != 0 {
		t.Fatal("retried inside its lease")
	}
	clk.Advance(2 * time.Minute)
	if n, _ := r.FireDue(context.Background(), nil); n != 1 || calls != 2 {
		t.Fatalf("retry: %d claimed, %d calls", n, calls)
	}
	if _, err := s.Read(context.Background(), "Basic", "once"); err != nil {
		t.Errorf("second attempt's write: %v", err)
	}
}
