package teams

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCountLoadShared: handlers that need a member's count at once share
// one search; a later need counts again.
func TestCountLoadShared(t *testing.T) {
	s := &Service{counting: map[string]*loadCount{}}
	var calls atomic.Int32
	release := make(chan struct{})
	count := func() (int, error) {
		calls.Add(1)
		<-release
		return 7, nil
	}
	var wg sync.WaitGroup
	got := make([]int, 8)
	for i := range got {
		wg.Go(func() {
			n, err := s.countLoad("cpts", "PractitionerRole/a", count)
			if err != nil {
				t.Error(err)
			}
			got[i] = n
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the others join the count under way
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("%d searches for one member at once, want 1", n)
	}
	for i, n := range got {
		if n != 7 {
			t.Errorf("handler %d got %d, want 7", i, n)
		}
	}
	// Another member, and the same member later: counted again.
	if _, err := s.countLoad("cpts", "PractitionerRole/b", count); err != nil {
		t.Fatal(err)
	}
	if _, err := s.countLoad("cpts", "PractitionerRole/a", count); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d searches in all, want 3", n)
	}
}
