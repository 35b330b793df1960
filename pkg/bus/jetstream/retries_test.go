package jetstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestHandlerRetriesByReason: a handler that fails on a version conflict
// (wrapped, as the store returns it) and one that fails otherwise are both
// redelivered, and passerelle_handler_retries_total tells them apart, so
// that the retries one writer causes another can be watched.
func TestHandlerRetriesByReason(t *testing.T) {
	srv := startServer(t, ServerConfig{StoreDir: t.TempDir()})
	reg := prometheus.NewRegistry()
	b := newTestBus(t, Config{Server: srv, Registerer: reg})
	t.Cleanup(func() { b.Close() })

	subject := bus.ResourceSubject("t1", "Task", bus.OpUpdated)
	msgs := []bus.Msg{
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "a"}, Data: []byte("conflict")},
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "b"}, Data: []byte("other")},
		{Subject: subject, Header: map[string]string{bus.HeaderMsgID: "c"}, Data: []byte("ok")},
	}
	if n, err := b.Publish(t.Context(), msgs); err != nil || n != len(msgs) {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	var (
		mu    sync.Mutex
		tries = map[string]int{}
		done  = make(chan struct{})
	)
	runConsumer(t, b, bus.ConsumerConfig{Durable: "retries", Subject: subject, BackOff: []time.Duration{10 * time.Millisecond}}, func(_ context.Context, m bus.Msg) error {
		mu.Lock()
		defer mu.Unlock()
		kind := string(m.Data)
		tries[kind]++
		switch {
		case kind == "conflict" && tries[kind] <= 2:
			return fmt.Errorf("update Task/t1: Task/t1 is at version 2, not 1: %w", store.ErrVersionConflict)
		case kind == "other" && tries[kind] == 1:
			return errors.New("read Patient/p1: connection reset")
		case kind == "ok":
			close(done)
		}
		return nil
	})
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("last message not handled")
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "passerelle_handler_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			got[labels["durable"]+" "+labels["reason"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"retries version_conflict": 2, "retries error": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("passerelle_handler_retries_total by durable and reason = %v, want %v", got, want)
	}
}
