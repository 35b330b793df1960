package sqlstore

import (
	"context"
	"fmt"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// The outcomes service's projection lives in outcome_records (migration
// 0004): one row per patient, two opaque texts and a version.

// OutcomeRecord implements store.Tx.
func (t *tx) OutcomeRecord(ctx context.Context, tenant, patient string) (store.OutcomeRecord, error) {
	r := store.OutcomeRecord{Tenant: tenant, Patient: patient}
	err := t.c.QueryRow(ctx, `SELECT version, record, tasks FROM outcome_records WHERE tenant = $1 AND patient = $2`, tenant, patient).
		Scan(&r.Version, &r.Record, &r.Tasks)
	if isNoRows(err) {
		return store.OutcomeRecord{}, fmt.Errorf("outcome record of %s: %w", patient, store.ErrNotFound)
	}
	if err != nil {
		return store.OutcomeRecord{}, fmt.Errorf("outcome record of %s: %w", patient, err)
	}
	return r, nil
}

// PutOutcomeRecord implements store.Tx. The create does nothing on a row
// that exists rather than failing on the primary key: a consumer that raced
// another to create a patient's record then sees ErrVersionConflict, as an
// update that lost does, not a unique violation.
func (t *tx) PutOutcomeRecord(ctx context.Context, r store.OutcomeRecord) (int64, error) {
	if r.Tenant == "" || r.Patient == "" || r.Version < 0 {
		return 0, fmt.Errorf("outcome record %q of tenant %q at version %d: %w", r.Patient, r.Tenant, r.Version, store.ErrInvalid)
	}
	if err := t.claimKey(ctx); err != nil {
		return 0, err
	}
	var n int64
	var err error
	if r.Version == 0 {
		n, err = t.c.Exec(ctx, `INSERT INTO outcome_records (tenant, patient, version, record, tasks) VALUES ($1, $2, 1, $3, $4)
ON CONFLICT DO NOTHING`, r.Tenant, r.Patient, r.Record, r.Tasks)
	} else {
		n, err = t.c.Exec(ctx, `UPDATE outcome_records SET version = $1, record = $2, tasks = $3
WHERE tenant = $4 AND patient = $5 AND version = $6`, r.Version+1, r.Record, r.Tasks, r.Tenant, r.Patient, r.Version)
	}
	if err != nil {
		return 0, fmt.Errorf("outcome record of %s: %w", r.Patient, err)
	}
	if n != 1 {
		return 0, fmt.Errorf("outcome record of %s is not at version %d: %w", r.Patient, r.Version, store.ErrVersionConflict)
	}
	return r.Version + 1, nil
}

// scanBatch is how many records the reader hands over at a time, and
// scanAhead how many batches it may read ahead of fn: the hand-over stays
// cheap and the memory bounded.
const (
	scanBatch = 512
	scanAhead = 4
)

// ScanOutcomeRecords implements store.Store: one query whose rows are read
// by one goroutine while the caller's goroutine runs fn on them (decoding
// and counting, on another core).
func (s *Store) ScanOutcomeRecords(ctx context.Context, tenant string, tasks bool, fn func(text string) error) error {
	// "tenant || ''" keeps SQLite from walking the primary key and seeking
	// each row in the table (a random read per record): a plain scan of the
	// table reads its pages in order, and a region's tenants share it.
	q := `SELECT record FROM outcome_records WHERE tenant || '' = $1`
	if tasks {
		q = `SELECT record || tasks FROM outcome_records WHERE tenant || '' = $1`
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []string, scanAhead)
	errc := make(chan error, 1)
	go func() {
		defer close(batches)
		errc <- s.readOutcomeRecords(ctx, q, tenant, batches)
	}()
	var ferr error
	for batch := range batches {
		if ferr != nil {
			continue // drain, so that the reader ends
		}
		for _, text := range batch {
			if err := fn(text); err != nil {
				ferr = err
				cancel()
				break
			}
		}
	}
	rerr := <-errc
	switch {
	case ferr != nil:
		return ferr
	case rerr != nil:
		return fmt.Errorf("outcome records of %s: %w", tenant, rerr)
	}
	return ctx.Err()
}

// readOutcomeRecords sends the texts q selects to batches.
func (s *Store) readOutcomeRecords(ctx context.Context, q, tenant string, batches chan<- []string) error {
	rows, err := s.be.Reader().Query(ctx, q, tenant)
	if err != nil {
		return err
	}
	defer rows.Close()
	send := func(b []string) error {
		select {
		case batches <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	batch := make([]string, 0, scanBatch)
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return err
		}
		batch = append(batch, text)
		if len(batch) == scanBatch {
			if err := send(batch); err != nil {
				return err
			}
			batch = make([]string, 0, scanBatch)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return send(batch)
	}
	return nil
}
