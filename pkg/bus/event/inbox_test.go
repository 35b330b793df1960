package event_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

// InboxPrepared hands apply what prepare made of the change, once per
// message; a message prepare cannot read is refused for good, and a
// delivery again of a handled message changes nothing.
func TestInboxPrepared(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ev, err := event.Change{Tenant: "t1", Op: "created", Resources: []event.Resource{
		{Type: "Task", ID: "t1", Version: 1, Body: []byte(`{"resourceType":"Task","id":"t1","status":"requested"}`)}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m := msgOf(ev)
	m.Header[bus.HeaderEventID] = "e1"

	prepared, applied := 0, 0
	var got string
	h := event.InboxPrepared(s, "test", func(_ context.Context, c event.Change) (string, error) {
		prepared++
		st, _ := c.Resources[0].Obj["status"].(string)
		return c.Resources[0].ID + ":" + st, nil
	}, func(ctx context.Context, tx store.Tx, p string) error {
		applied++
		got = p
		return nil
	})
	for range 2 {
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if got != "t1:requested" || applied != 1 || prepared != 2 {
		t.Errorf("apply got %q, applied %d times, prepared %d times; want t1:requested, once, at each delivery", got, applied, prepared)
	}

	bad := bus.Msg{Subject: m.Subject, Header: map[string]string{bus.HeaderEventID: "e2"}, Data: []byte(`{"not":"fhir"}`)}
	err = h(ctx, bad)
	if !errors.Is(err, bus.ErrPermanent) {
		t.Errorf("undecodable event: %v, want a permanent error", err)
	}
	if applied != 1 {
		t.Errorf("apply ran for an undecodable event")
	}
}
