package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// TestReadyzReportsStuckOutbox: another replica holds the relay's lease and
// publishes nothing, and an event has waited two minutes: /readyz answers 503
// naming the outbox. Once the lease is released the relay publishes it and
// /readyz is ready again. Before, /readyz kept answering ready.
func TestReadyzReportsStuckOutbox(t *testing.T) {
	tp := startPlatform(t, nil)
	ctx := context.Background()
	old := clock.NewFake(time.Now().Add(-2 * time.Minute))
	s, err := sqlite.Open(ctx, filepath.Join(tp.Cfg.DataDir, "passerelle.db"), sqlite.Options{Options: sqlstore.Options{Clock: old}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A replica whose clock runs a minute ahead takes the lease and hangs.
	if ok, err := s.Leases().Acquire(ctx, "outbox-relay", "wedged", time.Now().Add(time.Minute), 10*time.Minute); err != nil || !ok {
		t.Fatalf("take the relay's lease: %v %v", ok, err)
	}
	// The running relay renews its lease only a few times per TTL: until it
	// has seen the lease taken it may still publish a row or two. Rows are
	// written until one stays unsent and readiness says so.
	deadline := time.Now().Add(30 * time.Second)
	var r response
	for i := 0; ; i++ {
		if err := s.Tx(ctx, func(tx store.Tx) error {
			return tx.Emit(ctx, store.Event{Subject: bus.ResourceSubject("demo", "Task", bus.OpUpdated), MsgID: fmt.Sprintf("Task/stuck/_history/%d", i+1),
				Key: "Task/stuck", Data: []byte(`{"resourceType":"Task"}`)})
		}); err != nil {
			t.Fatal(err)
		}
		r = tp.do(t, "GET", "/readyz", "", "")
		if r.status == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz with a stuck outbox: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(r.body), `"outbox"`) || !strings.Contains(string(r.body), "outbox stuck") {
		t.Fatalf("readyz with a stuck outbox: %d %s", r.status, r.body)
	}
	if err := s.Leases().Release(ctx, "outbox-relay", "wedged"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		r = tp.do(t, "GET", "/readyz", "", "")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz once the lease is released: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
