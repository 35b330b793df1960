package worklist_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// TestMissedVisitRetriedAfterReadError: the task consumer's first delivery
// of the overdue task meets a database that fails (a worklist whose store
// handle is closed, as a lost connection is); the delivery must fail, so
// that the message comes again, and the next delivery raises the alert.
// Before, the read error was passed over, the message acknowledged and the
// alert lost for good.
func TestMissedVisitRetriedAfterReadError(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.followed()
	first := r.task(p, "first-contact")
	due, _ := time.Parse(time.RFC3339, s(first, "restriction", "period", "end"))

	broken, err := sqlite.Open(r.ctx, filepath.Join(r.dir, "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := broken.Close(); err != nil {
		t.Fatal(err)
	}
	failing := worklist.New(worklist.Deps{Store: broken, Clock: r.clk, Tenant: tenant, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	var failed []error
	var hook func(bus.Msg)
	hook = func(m bus.Msg) {
		if strings.Contains(m.Subject, ".Task.") {
			// The first delivery to the task consumer, on the failing
			// database; whatever it answers, the bus would then deliver
			// again only if it failed.
			if err := event.Inbox(r.s, worklist.DurableTask, failing.HandleTask)(context.Background(), m); err != nil {
				failed = append(failed, err)
			}
		}
		r.deliverHook = nil
		r.deliver(m)
		r.deliverHook = hook
	}
	r.deliverHook = hook
	r.clk.Set(due.Add(time.Minute))
	r.advance(0)
	r.deliverHook = nil

	if len(failed) == 0 {
		t.Errorf("no delivery failed on the failing database: the overdue task's message would be acknowledged")
	}
	if n := len(r.flags(p)["missed-visit"]); n != 1 {
		t.Fatalf("missed-visit alerts after the redelivery: %d, want 1", n)
	}
}
