package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// errClosed is returned to writers once the store is closing.
var errClosed = errors.New("store closed")

// job is one unit of work for the group committer.
type job struct {
	ctx  context.Context
	fn   func(ctx context.Context, c WriteConn) error
	done chan error
}

// committer gathers concurrent writes into shared transactions. Each worker
// takes whatever jobs are waiting when it becomes free (no artificial delay:
// under light load a job commits alone, under heavy load many share one
// commit), runs each inside its own savepoint so that one job's failure does
// not undo the others, and commits once.
type committer struct {
	be       Backend
	maxBatch int
	jobs     chan *job
	// urgent jobs (store.Urgent) go first: a batch holds only them while
	// any wait, except one batch in starveAfter, so that background work
	// still moves under a sustained load.
	urgent   chan *job
	quit     chan struct{}
	wg       sync.WaitGroup
	onCommit func(batch int, d time.Duration)
	// beforeCommit writes, last in the transaction, the audit records of
	// the jobs that succeeded (see auditLater).
	beforeCommit func(ctx context.Context, c WriteConn, recs []store.AuditRecord) error

	closeOnce sync.Once
}

func newCommitter(be Backend, workers, maxBatch int) *committer {
	if workers < 1 {
		workers = 1
	}
	if maxBatch < 1 {
		maxBatch = 1
	}
	c := &committer{be: be, maxBatch: maxBatch, jobs: make(chan *job, 4096), urgent: make(chan *job, 4096), quit: make(chan struct{})}
	for range workers {
		c.wg.Add(1)
		go c.work()
	}
	return c
}

// do runs fn in a write transaction and waits for its commit.
func (c *committer) do(ctx context.Context, fn func(ctx context.Context, c WriteConn) error) error {
	j := &job{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-c.quit:
		return errClosed
	default:
	}
	queue := c.jobs
	if store.IsUrgent(ctx) {
		queue = c.urgent
	}
	select {
	case queue <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return errClosed
	}
	// Once queued, the job's outcome must be awaited even if ctx ends: the
	// caller must not believe a write failed that then commits.
	return <-j.done
}

func (c *committer) close() {
	c.closeOnce.Do(func() { close(c.quit) })
	c.wg.Wait()
	// Fail whatever is still queued.
	for {
		select {
		case j := <-c.jobs:
			j.done <- errClosed
		case j := <-c.urgent:
			j.done <- errClosed
		default:
			return
		}
	}
}

// starveAfter bounds how many urgent-only batches run in a row.
const starveAfter = 8

func (c *committer) work() {
	defer c.wg.Done()
	batch := make([]*job, 0, c.maxBatch)
	// carry holds the background jobs an urgent one preempted: they go
	// first in the next batch.
	var carry []*job
	urgentRun := 0
	for {
		batch = append(batch[:0], carry...)
		carry = nil
		if len(batch) == 0 {
			select {
			case j := <-c.urgent:
				batch = append(batch, j)
			default:
				select {
				case j := <-c.urgent:
					batch = append(batch, j)
				case j := <-c.jobs:
					batch = append(batch, j)
				case <-c.quit:
					return
				}
			}
		}
	fillUrgent:
		for len(batch) < c.maxBatch {
			select {
			case j := <-c.urgent:
				batch = append(batch, j)
			default:
				break fillUrgent
			}
		}
		hasUrgent := store.IsUrgent(batch[0].ctx)
		if hasUrgent {
			urgentRun++
		}
		if !hasUrgent || urgentRun >= starveAfter {
			urgentRun = 0
		fill:
			for len(batch) < c.maxBatch {
				select {
				case j := <-c.jobs:
					batch = append(batch, j)
				default:
					break fill
				}
			}
		}
		carry = c.run(batch)
	}
}

// run commits one batch, retrying the whole batch when the database says a
// retry may succeed. It returns the jobs an urgent one preempted, not run.
func (c *committer) run(batch []*job) (leftover []*job) {
	live := batch[:0:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return nil
	}
	const attempts = 5
	var ran []*job
	var results []error
	var err error
	start := time.Now()
	for attempt := range attempts {
		ran, results, leftover, err = c.runOnce(live)
		if err == nil || !c.be.Retryable(err) {
			break
		}
		// The urgent jobs taken in join the next attempt.
		live = append(ran, leftover...)
		leftover = nil
		if attempt < attempts-1 {
			// Back off a little, more each time, so that two writers in a
			// deadlock do not meet again at once.
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
		}
	}
	if c.onCommit != nil && err == nil {
		c.onCommit(len(ran), time.Since(start))
	}
	for i, j := range ran {
		if err != nil {
			j.done <- err
		} else {
			j.done <- results[i]
		}
	}
	return leftover
}

// preempt takes the urgent jobs waiting, if any, up to room.
func (c *committer) preempt(room int) []*job {
	var got []*job
	for len(got) < room {
		select {
		case j := <-c.urgent:
			if j.ctx.Err() != nil {
				j.done <- j.ctx.Err()
				continue
			}
			got = append(got, j)
		default:
			return got
		}
	}
	return got
}

// runOnce runs the jobs in one transaction. It returns the jobs it ran, each
// one's own error, and a transaction-level error when nothing was committed;
// every job it was given and did not run is in leftover.
//
// Between two background jobs it looks for urgent ones (an acknowledgement
// a hospital waits for): if any wait, they run next and the transaction
// commits at once, the background jobs not yet run returned as leftover. An
// acknowledgement thus waits for at most one background job, not a batch.
func (c *committer) runOnce(jobs []*job) (ran []*job, results []error, leftover []*job, err error) {
	ctx := context.WithoutCancel(jobs[0].ctx)
	tx, err := c.be.Begin(ctx)
	if err != nil {
		return jobs, nil, nil, fmt.Errorf("begin: %w", err)
	}
	single := len(jobs) == 1
	var audit []store.AuditRecord
	ran = make([]*job, 0, len(jobs))
	results = make([]error, 0, len(jobs))
	for i := 0; i < len(jobs); i++ {
		j := jobs[i]
		if i > 0 && !store.IsUrgent(j.ctx) && len(c.urgent) > 0 {
			if urgent := c.preempt(c.maxBatch); len(urgent) > 0 {
				leftover = jobs[i:]
				jobs = append(jobs[:i:i], urgent...)
				single = false
				j = jobs[i]
			}
		}
		ran = append(ran, j)
		if single {
			res := runJob(j, tx, &audit)
			results = append(results, res)
			if res != nil {
				_ = tx.Rollback(ctx)
				if c.be.Retryable(res) {
					return ran, nil, leftover, res
				}
				return ran, results, leftover, nil
			}
			continue
		}
		sp := "sp" + strconv.Itoa(i)
		tx.Queue("SAVEPOINT " + sp)
		mark := len(audit)
		res := runJob(j, tx, &audit)
		results = append(results, res)
		if res != nil {
			audit = audit[:mark]
			if c.be.Retryable(res) {
				// The whole batch is tried again: the jobs not run yet go
				// with it (leaving them out left their writers waiting for
				// ever).
				_ = tx.Rollback(ctx)
				return ran, nil, append(leftover, jobs[i+1:]...), res
			}
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
				_ = tx.Rollback(ctx)
				return ran, nil, leftover, fmt.Errorf("rollback to savepoint: %w", err)
			}
		}
		tx.Queue("RELEASE SAVEPOINT " + sp)
	}
	if err := tx.Flush(ctx); err != nil {
		_ = tx.Rollback(ctx)
		return ran, nil, leftover, fmt.Errorf("release savepoint: %w", err)
	}
	if c.beforeCommit != nil && len(audit) > 0 {
		err := c.beforeCommit(ctx, tx, audit)
		if err == nil {
			err = tx.Flush(ctx)
		}
		if err != nil {
			_ = tx.Rollback(ctx)
			return ran, nil, leftover, fmt.Errorf("audit: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return ran, nil, leftover, fmt.Errorf("commit: %w", err)
	}
	return ran, results, leftover, nil
}

// jobConn is the connection a job runs on: the transaction's, plus the audit
// records the job leaves for the end of the batch.
type jobConn struct {
	WriteTx
	audit []store.AuditRecord
}

// auditLater leaves records to be chained when the batch commits, if the
// job succeeds (a job rolled back to its savepoint leaves none).
func auditLater(c WriteConn, recs []store.AuditRecord) {
	if jc, ok := c.(*jobConn); ok {
		jc.audit = append(jc.audit, recs...)
	}
}

// runJob runs one job and sends its queued statements, so that their errors
// are the job's own. A job runs to its end once dequeued, whatever becomes of
// its caller (its outcome is awaited anyway): a caller's cancellation must not
// break, midway through a statement, the connection the whole batch shares.
func runJob(j *job, tx WriteTx, audit *[]store.AuditRecord) error {
	ctx := context.WithoutCancel(j.ctx)
	jc := &jobConn{WriteTx: tx}
	err := j.fn(ctx, jc)
	if ferr := tx.Flush(ctx); err == nil {
		err = ferr
	}
	if err == nil {
		*audit = append(*audit, jc.audit...)
	}
	return err
}
