package pathway_test

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
)

// BenchmarkDischarge is the pathway service's own share of a discharge:
// heart-failure discharge events handled in their inbox transactions —
// episode, care plan, 2 goals, 13 tasks, their timers and one event — on
// SQLite, eight at once as the consumer's lanes hand them over (their
// transactions share commits). It reports the process's CPU per discharge
// beside the time: the pipeline is bound by the writer's CPU, not by one
// discharge's wait.
func BenchmarkDischarge(b *testing.B) {
	r := newRig(b)
	h := event.Inbox(r.s, "pathway-encounter", r.svc.HandleEncounter)
	const lanes = 8
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		msgs := make([]bus.Msg, lanes)
		for i := range msgs {
			p := r.patient("1948-03-15")
			msgs[i] = encounterMsg(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
		}
		cpu0 := cpuTime()
		b.StartTimer()
		var wg sync.WaitGroup
		for _, m := range msgs {
			wg.Go(func() {
				if err := h(r.ctx, m); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		cpu += cpuTime() - cpu0
		b.StartTimer()
	}
	n := float64(b.N * lanes)
	b.ReportMetric(b.Elapsed().Seconds()*1000/n, "ms/discharge")
	b.ReportMetric(float64(cpu.Microseconds())/1000/n, "cpu-ms/discharge")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
