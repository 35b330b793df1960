package outcomes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
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

// recordScanner is what StoreRecords needs of the store.
type recordScanner interface {
	ScanOutcomeRecords(ctx context.Context, tenant string, tasks bool, fn func(text string) error) error
}

// StoreRecords reads the records from the store's outcome records
// (store.Store.ScanOutcomeRecords), which reads ahead while this decodes.
type StoreRecords struct{ Store recordScanner }

// Scan implements Records, decoding each record into the same Record so
// that a scan over a million records allocates little.
func (s StoreRecords) Scan(ctx context.Context, tenant string, tasks bool, fn func(r *outcome.Record) error) error {
	var rec outcome.Record
	return s.Store.ScanOutcomeRecords(ctx, tenant, tasks, func(text string) error {
		if err := outcome.DecodeInto(&rec, text); err != nil {
			return fmt.Errorf("outcome record: %w", err)
		}
		return fn(&rec)
	})
}

// errUnchanged, from an update's fn, leaves the record as it was.
var errUnchanged = errors.New("unchanged")

// errNoRecords: the service has no store to read the records from.
var errNoRecords = errors.New("outcomes: no store to read the outcome records from")

// update loads a patient's record inside tx, applies fn and saves it when
// it changed, optimistically on its version: another consumer that changed
// it meanwhile makes the save fail with store.ErrVersionConflict, and the
// message is delivered again.
func update(ctx context.Context, tx store.Tx, tenant, patient string, fn func(r *outcome.Record) error) error {
	if patient == "" {
		return nil
	}
	cur, err := tx.OutcomeRecord(ctx, tenant, patient)
	r := &outcome.Record{Patient: patient, BirthDate: outcome.NoDay}
	switch {
	case err == nil:
		if err := outcome.DecodeInto(r, cur.Record+cur.Tasks); err != nil {
			return fmt.Errorf("outcome record of %s: %w", patient, err)
		}
	case errors.Is(err, store.ErrNotFound):
		cur = store.OutcomeRecord{Tenant: tenant, Patient: patient}
	default:
		return err
	}
	if err := fn(r); err != nil {
		if errors.Is(err, errUnchanged) {
			return nil
		}
		return err
	}
	r.Patient = patient
	nrec, ntasks := r.EncodeParts()
	if cur.Version > 0 && nrec == cur.Record && ntasks == cur.Tasks {
		return nil
	}
	cur.Record, cur.Tasks = nrec, ntasks
	_, err = tx.PutOutcomeRecord(ctx, cur)
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
