// Package clock gives every component its notion of "now", so that due dates,
// timers and leases can be tested by moving time instead of sleeping.
package clock

import (
	"sync"
	"time"
	_ "time/tzdata" // Europe/Paris must resolve on hosts without a zoneinfo database
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// System is the wall clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Fake is a clock that only moves when told to. It is safe for concurrent use.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// Set moves the clock to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

// Paris is the Europe/Paris location, in which every due date and outcome
// window of Passerelle is counted.
var Paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("clock: load " + name + ": " + err.Error())
	}
	return loc
}

// Sim is the clock of a simulation run inside a live process (the demo's
// months of activity): it tells the wall time until Start, then the time
// the simulation sets, until Release hands it back to the wall clock for
// good. Released, it never goes back before the last simulated instant.
type Sim struct {
	mu         sync.Mutex
	now        time.Time
	simulating bool
}

// Now returns the simulated time while simulating, the wall time otherwise.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.simulating {
		return s.now
	}
	if wall := time.Now(); wall.After(s.now) {
		return wall
	}
	return s.now
}

// Start begins a simulation at t.
func (s *Sim) Start(t time.Time) {
	s.mu.Lock()
	s.now, s.simulating = t, true
	s.mu.Unlock()
}

// Set moves the simulated time to t; it never goes back.
func (s *Sim) Set(t time.Time) {
	s.mu.Lock()
	if t.After(s.now) {
		s.now = t
	}
	s.mu.Unlock()
}

// Release ends the simulation: from now on the clock is the wall clock.
func (s *Sim) Release() {
	s.mu.Lock()
	s.simulating = false
	s.mu.Unlock()
}

// Simulating tells whether a simulation holds the clock.
func (s *Sim) Simulating() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.simulating
}
