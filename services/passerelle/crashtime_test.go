package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

var crashRounds = flag.Int("crash-rounds", 0, "rounds of TestCrashRecoveryTime (0: skipped)")

// testINS is a valid test INS (NIR with its key) of the sample's patient
// (a woman born in March 1948 in Roanne) with order number n.
func testINS(n int) string {
	base := fmt.Sprintf("2480342187%03d", n)
	var v int64
	fmt.Sscan(base, &v)
	return fmt.Sprintf("%s%02d", base, 97-v%97)
}

// TestCrashRecoveryTime measures, it does not assert a time: 20 distinct
// discharges are posted, the binary is killed with SIGKILL once they are all
// answered and the first is applied (the others still in flight), then restarted on
// the same data directory; the round ends when every discharge is applied
// and has opened its episode. It logs, per round, the time from the kill and
// from the restart to the last one applied, and the medians. Run with
//
//	go test ./services/passerelle -run TestCrashRecoveryTime -crash-rounds 5 -v
//
// It also checks that nothing is lost or doubled across the kill.
func TestCrashRecoveryTime(t *testing.T) {
	if *crashRounds <= 0 {
		t.Skip("a measurement: run with -crash-rounds N")
	}
	raw, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var fromKill, fromRestart []time.Duration
	for round := range *crashRounds {
		dir, addr := t.TempDir(), freeAddr(t)
		child := startChild(t, dir, addr)
		tok := mintFromDir(t, dir, addr, "chu-demo-dpi")
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			body := bytes.ReplaceAll(raw, []byte("MSG-2026-10-03-000123"), []byte(fmt.Sprintf("K-%d", i)))
			body = bytes.ReplaceAll(body, []byte("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001"), []byte(fmt.Sprintf("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a6%03d", i)))
			body = bytes.ReplaceAll(body, []byte("V0004567"), []byte(fmt.Sprintf("V-%d", i)))
			body = bytes.ReplaceAll(body, []byte(`"000123456"`), []byte(fmt.Sprintf(`"P-%d"`, i)))
			body = bytes.ReplaceAll(body, []byte("248034218701255"), []byte(testINS(100+i)))
			wg.Go(func() {
				req, _ := http.NewRequest("POST", "http://"+addr+"/fhir/$process-message", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/fhir+json")
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					errs <- fmt.Errorf("discharge %d: status %d", i, res.StatusCode)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		// Killed once the first is applied: the others are then in flight at
		// every stage (outbox, intake's consumer, pathway's, teams').
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for first := time.Now(); ; time.Sleep(2 * time.Millisecond) {
			if a, _ := progress(t, s); a > 0 || time.Since(first) > 30*time.Second {
				break
			}
		}
		killed := time.Now()
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		applied, episodes := progress(t, s)
		restarted := time.Now()
		child = startChild(t, dir, addr)
		ready := time.Now()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			a, e := progress(t, s)
			if a == n && e == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d applied, %d episodes after restart", round, a, n, e)
			}
			time.Sleep(10 * time.Millisecond)
		}
		done := time.Now()
		fromKill, fromRestart = append(fromKill, done.Sub(killed)), append(fromRestart, done.Sub(restarted))
		t.Logf("round %d: at the kill %d of %d applied, %d episodes; ready %s after the restart; last applied %s after the kill, %s after the restart",
			round, applied, n, episodes, ready.Sub(restarted).Round(time.Millisecond), done.Sub(killed).Round(time.Millisecond), done.Sub(restarted).Round(time.Millisecond))
		if page, err := s.Search(context.Background(), store.Query{Type: "Encounter", Total: true}); err != nil || page.Total != n {
			t.Errorf("round %d: %d encounters (%v), want %d", round, page.Total, err, n)
		}
		_ = s.Close()
		_ = child.Process.Signal(syscall.SIGTERM)
		_ = child.Wait()
	}
	t.Logf("median over %d rounds: %s after the kill, %s after the restart", len(fromKill), median(fromKill), median(fromRestart))
}

// progress counts the discharges applied by intake and the episodes the
// pathway opened for them.
func progress(t *testing.T, s store.Store) (applied, episodes int) {
	t.Helper()
	list, _, err := s.Messages().List(context.Background(), store.MessageFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if m.Status == "applied" {
			applied++
		}
	}
	page, err := s.Search(context.Background(), store.Query{Type: "EpisodeOfCare", Total: true})
	if err != nil {
		t.Fatal(err)
	}
	return applied, page.Total
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
