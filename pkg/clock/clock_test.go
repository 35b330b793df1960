package clock

import (
	"testing"
	"time"
)

func TestSimTellsSimulatedTimeThenWallTime(t *testing.T) {
	var s Sim
	if s.Simulating() {
		t.Fatal("a new Sim simulates")
	}
	if d := time.Since(s.Now()); d < 0 || d > time.Minute {
		t.Fatalf("before Start, Now is %v away from the wall clock", d)
	}
	t0 := time.Date(2025, 8, 1, 9, 0, 0, 0, Paris)
	s.Start(t0)
	if !s.Now().Equal(t0) {
		t.Fatalf("after Start: %v, want %v", s.Now(), t0)
	}
	s.Set(t0.Add(48 * time.Hour))
	s.Set(t0) // never back
	if want := t0.Add(48 * time.Hour); !s.Now().Equal(want) {
		t.Fatalf("after Set: %v, want %v", s.Now(), want)
	}
	s.Release()
	if s.Simulating() {
		t.Fatal("released Sim still simulates")
	}
	if d := time.Since(s.Now()); d < 0 || d > time.Minute {
		t.Fatalf("after Release, Now is %v away from the wall clock", d)
	}
	// A simulation that ran ahead of the wall clock is not undone.
	var ahead Sim
	future := time.Now().Add(time.Hour)
	ahead.Start(future)
	ahead.Release()
	if ahead.Now().Before(future) {
		t.Fatalf("released clock went back from %v to %v", future, ahead.Now())
	}
}
