package sqlite_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// An acknowledgement waits for at most one background job: an urgent write
// that arrives while a batch of background jobs is running goes right after
// the job under way, and commits before the rest of the batch runs.
func TestUrgentPreemptsTheBatch(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "passerelle.db"), clock.System{})
	ctx := context.Background()

	var mu sync.Mutex
	var order []string
	note := func(n string) {
		mu.Lock()
		order = append(order, n)
		mu.Unlock()
	}
	write := func(ctx context.Context, name string, hold <-chan struct{}, started chan<- struct{}) error {
		return s.Tx(ctx, func(tx store.Tx) error {
			note(name)
			if started != nil {
				close(started)
			}
			if hold != nil {
				<-hold
			}
			_, err := tx.Create(ctx, "t", []byte(`{"resourceType":"Basic"}`))
			return err
		})
	}
	var wg sync.WaitGroup
	run := func(ctx context.Context, name string, hold <-chan struct{}, started chan<- struct{}) {
		wg.Go(func() {
			if err := write(ctx, name, hold, started); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}

	// A holds the writer while B, C, D queue up behind it: they then make
	// one batch, B first.
	releaseA, startedA := make(chan struct{}), make(chan struct{})
	run(ctx, "A", releaseA, startedA)
	<-startedA
	releaseB, startedB := make(chan struct{}), make(chan struct{})
	run(ctx, "B", releaseB, startedB)
	waitQueued(t, s, 1)
	run(ctx, "C", nil, nil)
	waitQueued(t, s, 2)
	run(ctx, "D", nil, nil)
	waitQueued(t, s, 3)
	close(releaseA)
	<-startedB
	// While B runs, an acknowledgement comes in.
	run(store.Urgent(ctx), "U", nil, nil)
	waitQueued(t, s, 1)
	close(releaseB)
	wg.Wait()

	if want := []string{"A", "B", "U", "C", "D"}; !slices.Equal(order, want) {
		t.Fatalf("order of the writes %v, want %v (the urgent one right after the job under way)", order, want)
	}
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(t *testing.T, s interface{ Queued() int }, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", s.Queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
