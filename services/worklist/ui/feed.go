package ui

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// Consumer runs bus consumers.
type Consumer = bus.Consumer

// BusFeed is the live Feed of one process: a transient consumer of the
// tenant's Task events, fanned out to the subscribed pages of each task's
// owner. A page that reads slowly misses events rather than holding the
// others back: it refreshes its list on the next one.
type BusFeed struct {
	Bus    Consumer
	Tenant string
	// Name makes the consumer this process's own.
	Name string
	Log  *slog.Logger

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	refs map[string]bool
	ch   chan Event
}

// Run consumes until ctx ends.
func (f *BusFeed) Run(ctx context.Context) error {
	return f.Bus.Consume(ctx, bus.ConsumerConfig{Durable: f.Name, Subject: bus.ResourceSubject(f.Tenant, "Task", "*"), Transient: true},
		func(ctx context.Context, m bus.Msg) error {
			c, err := event.Decode(m)
			if err != nil {
				// A live view has nothing to retry: the page refreshes on
				// the next event.
				return nil
			}
			for _, ev := range taskEvents(c) {
				f.publish(ev)
			}
			return nil
		})
}

// taskEvents reads the owned Tasks a change carries.
func taskEvents(c event.Change) []Event {
	var out []Event
	for _, t := range c.Of("Task") {
		owner := fhirjson.Str(t, "owner", "reference")
		if owner == "" {
			continue
		}
		kind := "task"
		if strings.HasPrefix(fhirjson.Str(t, "focus", "reference"), "Flag/") {
			kind = "alert"
		}
		id, _ := t["id"].(string)
		out = append(out, Event{Kind: kind, Resource: "Task/" + id, Owners: []string{owner}})
	}
	return out
}

func (f *BusFeed) publish(ev Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		for _, o := range ev.Owners {
			if s.refs[o] {
				select {
				case s.ch <- ev:
				default:
				}
				break
			}
		}
	}
}

// Subscribe returns the events about the actor's tasks.
func (f *BusFeed) Subscribe(ctx context.Context, a directory.Actor) (<-chan Event, func()) {
	s := &subscriber{refs: map[string]bool{}, ch: make(chan Event, 16)}
	for _, r := range a.Roles {
		s.refs["PractitionerRole/"+r.ID] = true
	}
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[*subscriber]struct{}{}
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, s)
			f.mu.Unlock()
		})
	}
	go func() { <-ctx.Done(); cancel() }()
	return s.ch, cancel
}
