package fhirapi

import (
	"testing"
	"time"
)

// TestRefusalRecordsBounded: a flood of bad tokens from one address is
// recorded refusalBurst times a minute, the rest counted into the next
// record; another address is not held back by it.
func TestRefusalRecordsBounded(t *testing.T) {
	l := &refusalLimiter{}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	recorded := 0
	for i := range 1000 {
		if ok, _ := l.allow("203.0.113.7", t0.Add(time.Duration(i)*time.Millisecond)); ok {
			recorded++
		}
	}
	if recorded != refusalBurst {
		t.Errorf("%d records for 1000 refusals in a second, want %d", recorded, refusalBurst)
	}
	if ok, _ := l.allow("198.51.100.1", t0.Add(time.Second)); !ok {
		t.Error("another address held back")
	}
	ok, unsaid := l.allow("203.0.113.7", t0.Add(61*time.Second))
	if !ok || unsaid != 1000-refusalBurst {
		t.Errorf("next minute: recorded %v, unsaid %d, want %d", ok, unsaid, 1000-refusalBurst)
	}
}
