package pathway_test

import (
	"testing"

	"github.com/google/uuid"
)

// BenchmarkDischarge is the pathway service's own share of a discharge:
// one heart-failure discharge event handled in its inbox transaction —
// episode, care plan, 2 goals, 13 tasks, 13 timers and one event — on
// SQLite.
func BenchmarkDischarge(b *testing.B) {
	r := newRig(b)
	for b.Loop() {
		b.StopTimer()
		p := r.patient("1948-03-15")
		m := encounterMsg(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
		b.StartTimer()
		r.deliver("pathway-encounter", r.svc.HandleEncounter, m)
	}
}
