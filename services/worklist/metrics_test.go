package worklist_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/services/worklist"
)

func TestTasksByStatusGauge(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.patient()
	r.discharge(p)
	first := r.task(p, "first-contact")["id"].(string)
	r.assign(first, "pr-ide-martin")
	if _, err := r.svc.Transition(r.ctx, r.actor("ide.martin"), first, 0, "accept", ""); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	worklist.New(worklist.Deps{Store: r.s, Tenant: tenant, Metrics: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "passerelle_tasks" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	requested := len(r.search("Task", tokenParam("status", "requested")))
	if got["accepted"] != 1 || got["requested"] != float64(requested) || requested == 0 {
		t.Errorf("gauge %v, want accepted 1 and requested %d", got, requested)
	}
}
