package outcomes

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// Canonical URLs of the projection's resources.
const (
	SystemOutcomes = "https://passerelle.health/fhir/CodeSystem/outcomes"
	ExtRegister    = "https://passerelle.health/fhir/StructureDefinition/death-register-months"
	codeRegister   = "death-register"
	registerID     = "outcomes-death-register"
)

// Records is where the outcome records live: read in one streaming pass by
// every evaluation.
type Records interface {
	// Scan calls fn with every record of tenant, with their tasks when
	// tasks is set. fn must not keep r.
	Scan(ctx context.Context, tenant string, tasks bool, fn func(r *outcome.Record) error) error
}

// sqlTx is what the projection needs of a store transaction: statements on
// the outcome_records table (migration 0004) that commit with the inbox
// mark. Both store backends (pkg/store/sqlstore) provide it.
type sqlTx interface {
	ExecSQL(ctx context.Context, sql string, args ...any) (int64, error)
	QueryRowSQL(ctx context.Context, sql string, args ...any) sqlstore.Row
}

// sqlReader reads the table outside transactions, streaming.
type sqlReader interface {
	QuerySQL(ctx context.Context, sql string, args ...any) (sqlstore.Rows, error)
}

// TableRecords reads the records from the outcome_records table.
type TableRecords struct{ DB sqlReader }

// Scan implements Records: one query whose rows are read by one goroutine
// while the caller's goroutine decodes and counts them (two cores, two
// halves of the work); batches keep the hand-over cheap and the memory
// bounded.
func (t TableRecords) Scan(ctx context.Context, tenant string, tasks bool, fn func(r *outcome.Record) error) error {
	// "tenant || ''" keeps SQLite from walking the primary key and seeking
	// each row in the table (a random read per record): a plain scan of the
	// table reads its pages in order, and a region's tenants share it.
	q := `SELECT record FROM outcome_records WHERE tenant || '' = $1`
	if tasks {
		q = `SELECT record || tasks FROM outcome_records WHERE tenant || '' = $1`
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const batchSize = 512
	batches := make(chan []string, 4)
	errc := make(chan error, 1)
	go func() {
		defer close(batches)
		errc <- func() error {
			rows, err := t.DB.QuerySQL(ctx, q, tenant)
			if err != nil {
				return err
			}
			defer rows.Close()
			batch := make([]string, 0, batchSize)
			for rows.Next() {
				var text string
				if err := rows.Scan(&text); err != nil {
					return err
				}
				batch = append(batch, text)
				if len(batch) == batchSize {
					select {
					case batches <- batch:
					case <-ctx.Done():
						return ctx.Err()
					}
					batch = make([]string, 0, batchSize)
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(batch) > 0 {
				select {
				case batches <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}()
	}()
	var rec outcome.Record
	var ferr error
	for batch := range batches {
		if ferr != nil {
			continue
		}
		for _, text := range batch {
			if err := outcome.DecodeInto(&rec, text); err != nil {
				ferr = fmt.Errorf("outcome record: %w", err)
				cancel()
				break
			}
			if err := fn(&rec); err != nil {
				ferr = err
				cancel()
				break
			}
		}
	}
	if err := <-errc; err != nil && ferr == nil {
		return fmt.Errorf("outcome records: %w", err)
	}
	if ferr != nil {
		return ferr
	}
	return ctx.Err()
}

// errUnchanged, from an update's fn, leaves the record as it was.
var errUnchanged = errors.New("unchanged")

// errNoSQL: the store gives no access to the projection's table.
var errNoSQL = errors.New("outcomes: the store does not give access to the outcome_records table")

// errConcurrent: another consumer changed the record meanwhile; the
// message is delivered again.
var errConcurrent = errors.New("outcome record changed concurrently")

// update loads a patient's record inside tx, applies fn and saves it when
// it changed, optimistically on its version.
func update(ctx context.Context, tx store.Tx, tenant, patient string, fn func(r *outcome.Record) error) error {
	if patient == "" {
		return nil
	}
	st, ok := tx.(sqlTx)
	if !ok {
		return errNoSQL
	}
	var version int64
	var text, tasks string
	err := st.QueryRowSQL(ctx, `SELECT version, record, tasks FROM outcome_records WHERE tenant = $1 AND patient = $2`, tenant, patient).
		Scan(&version, &text, &tasks)
	r := &outcome.Record{Patient: patient, BirthDate: outcome.NoDay}
	switch {
	case err == nil:
		if err := outcome.DecodeInto(r, text+tasks); err != nil {
			return fmt.Errorf("outcome record of %s: %w", patient, err)
		}
	case errors.Is(err, sql.ErrNoRows):
	default:
		return fmt.Errorf("outcome record of %s: %w", patient, err)
	}
	if err := fn(r); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	r.Patient = patient
	nrec, ntasks := r.EncodeParts()
	if version > 0 && nrec == text && ntasks == tasks {
		return nil
	}
	if version == 0 {
		_, err = st.ExecSQL(ctx, `INSERT INTO outcome_records (tenant, patient, version, record, tasks) VALUES ($1, $2, 1, $3, $4)`,
			tenant, patient, nrec, ntasks)
		return err
	}
	n, err := st.ExecSQL(ctx, `UPDATE outcome_records SET version = $1, record = $2, tasks = $3 WHERE tenant = $4 AND patient = $5 AND version = $6`,
		version+1, nrec, ntasks, tenant, patient, version)
	if err == nil && n != 1 {
		err = errConcurrent
	}
	return err
}

// PutRecord writes a record as is (the bench's loader; tests).
func PutRecord(ctx context.Context, tx store.Tx, tenant string, r *outcome.Record) error {
	return update(ctx, tx, tenant, r.Patient, func(cur *outcome.Record) error {
		*cur = *r
		return nil
	})
}

// RegisterMonths returns the months (YYYYMM) of the INSEE register
// imported for tenant.
func (s *Service) RegisterMonths(ctx context.Context, tenant string) (map[int]bool, error) {
	res, err := s.d.Store.Read(ctx, "Basic", registerID+"-"+tenantSlug(tenant))
	if errors.Is(err, store.ErrNotFound) {
		return map[int]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	return registerMonthsOf(res.Body), nil
}

func registerMonthsOf(body []byte) map[int]bool {
	var b struct {
		Extension []struct {
			URL         string `json:"url"`
			ValueString string `json:"valueString"`
		} `json:"extension"`
	}
	out := map[int]bool{}
	if json.Unmarshal(body, &b) != nil {
		return out
	}
	for _, e := range b.Extension {
		if e.URL == ExtRegister {
			for _, m := range strings.Split(e.ValueString, ",") {
				if n, err := strconv.Atoi(m); err == nil {
					out[n] = true
				}
			}
		}
	}
	return out
}

// addRegisterMonth records, inside tx, that the file of month is imported.
func addRegisterMonth(ctx context.Context, tx store.Tx, tenant string, month int) error {
	id := registerID + "-" + tenantSlug(tenant)
	months := map[int]bool{}
	var version int64
	res, err := tx.Read(ctx, "Basic", id)
	switch {
	case err == nil:
		months, version = registerMonthsOf(res.Body), res.Version
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	months[month] = true
	var list []string
	for m := range months {
		list = append(list, strconv.Itoa(m))
	}
	sort.Strings(list)
	body, _ := json.Marshal(map[string]any{
		"resourceType": "Basic", "id": id,
		"code":      map[string]any{"coding": []any{map[string]any{"system": SystemOutcomes, "code": codeRegister}}},
		"extension": []any{map[string]any{"url": ExtRegister, "valueString": strings.Join(list, ",")}},
	})
	_, err = tx.Update(ctx, tenant, body, version)
	return err
}

func tenantSlug(t string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, t)
}
