package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// TestRetryKeepsEveryJob: when one job of a batch meets an error the
// database calls worth retrying (here a real serialization failure raised by
// PostgreSQL), the whole batch is tried again — the jobs after it in the
// batch included. Before, those were dropped and their writers waited for
// ever (a consumer's lane stuck, found by the pipeline's load test).
func TestRetryKeepsEveryJob(t *testing.T) {
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	be, err := postgres.Connect(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, be); err != nil {
		t.Fatal(err)
	}
	// One writer, so that the jobs below wait together and share a batch.
	s := sqlstore.New(be, sqlstore.Dialect{Writers: 1, SeqExpr: "nextval('resource_seq')"}, sqlstore.Options{Clock: clock.System{}})
	t.Cleanup(func() { _ = s.Close() })

	// A first job holds the writer while the others queue behind it.
	hold := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.Write(ctx, func(ctx context.Context, c sqlstore.WriteConn) error {
			<-hold
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)

	const n = 8
	var failed sync.Once
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Write(ctx, func(ctx context.Context, c sqlstore.WriteConn) error {
				if i == 2 {
					var raise bool
					failed.Do(func() { raise = true })
					if raise {
						_, err := c.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
						return err
					}
				}
				_, err := c.Exec(ctx, `INSERT INTO leases (name, owner, until) VALUES ($1, 'test', 0)`, fmt.Sprint("job-", i))
				return err
			})
		})
	}
	time.Sleep(200 * time.Millisecond) // all eight queued
	close(hold)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("writers still waiting 20 s after a retried batch: jobs were dropped")
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("job %d: %v", i, err)
		}
	}
	var count int
	if err := be.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM leases WHERE owner = 'test'`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Errorf("%d jobs committed, want %d", count, n)
	}
}
