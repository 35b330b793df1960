package ui

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"

	"github.com/passerelle-sante/passerelle/pkg/bus"
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
			for _, ev := range taskEvents(m.Data) {
				f.publish(ev)
			}
			return nil
		})
}

// taskEvents reads the Tasks an event carries (one, or a history Bundle).
func taskEvents(data []byte) []Event {
	type task struct {
		ResourceType string
		ID           string `json:"id"`
		Owner        struct{ Reference string }
		Focus        struct{ Reference string }
	}
	var root struct {
		task
		Entry []struct{ Resource task } `json:"entry"`
	}
	if json.Unmarshal(data, &root) != nil {
		return nil
	}
	tasks := []task{root.task}
	if root.ResourceType == "Bundle" {
		tasks = tasks[:0]
		for _, e := range root.Entry {
			tasks = append(tasks, e.Resource)
		}
	}
	var out []Event
	for _, t := range tasks {
		if t.ResourceType != "Task" || t.Owner.Reference == "" {
			continue
		}
		kind := "task"
		if strings.HasPrefix(t.Focus.Reference, "Flag/") {
			kind = "alert"
		}
		out = append(out, Event{Kind: kind, Resource: "Task/" + t.ID, Owners: []string{t.Owner.Reference}})
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
