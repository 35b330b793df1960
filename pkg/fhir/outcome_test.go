package fhir

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestFromError: each typed store error, bare or wrapped, gets its kind and
// FHIR issue code; an Error passes through as it is; anything else is
// internal and keeps the error for the log.
func TestFromError(t *testing.T) {
	own := Errorf(Conflict, "business-rule", "Tâche déjà terminée", "Task already done", "Task.status")
	cases := []struct {
		name string
		err  error
		kind Kind
		code string
	}{
		{"not found", store.ErrNotFound, NotFound, "not-found"},
		{"gone", store.ErrGone, Gone, "deleted"},
		{"version conflict", store.ErrVersionConflict, Stale, "conflict"},
		{"exists", store.ErrExists, Conflict, "duplicate"},
		{"key in use", store.ErrKeyInUse, Conflict, "conflict"},
		{"too large", store.ErrTooLarge, TooLarge, "too-costly"},
		{"invalid", store.ErrInvalid, Invalid, "invalid"},
		{"wrapped not found", fmt.Errorf("read Task/t1: %w", store.ErrNotFound), NotFound, "not-found"},
		{"wrapped invalid", fmt.Errorf("%w: no resourceType", store.ErrInvalid), Invalid, "invalid"},
		{"domain error", own, Conflict, "business-rule"},
		{"wrapped domain error", fmt.Errorf("transition: %w", own), Conflict, "business-rule"},
		{"unknown", errors.New("connection reset"), Internal, "exception"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fe := FromError(c.err)
			if fe.Kind != c.kind || len(fe.Issues) != 1 || fe.Issues[0].Code != c.code {
				t.Fatalf("FromError(%v) = %s %+v, want %s with one %s issue", c.err, fe.Kind, fe.Issues, c.kind, c.code)
			}
			if fe.Issues[0].FR == "" || fe.Issues[0].EN == "" {
				t.Errorf("issue without both texts: %+v", fe.Issues[0])
			}
			if !slices.Contains(Kinds, fe.Kind) {
				t.Errorf("kind %q is not one of Kinds", fe.Kind)
			}
			if fe != own && !errors.Is(fe, c.err) {
				t.Errorf("the error %v is not kept for the log", c.err)
			}
		})
	}
	// The reason an invalid input gives is shown in both texts, without
	// repeating the sentinel's own text.
	fe := FromError(fmt.Errorf("%w: no resourceType", store.ErrInvalid))
	if fe.Issues[0].EN != "Invalid request: no resourceType" {
		t.Errorf("invalid: %q", fe.Issues[0].EN)
	}
}

// TestKindsDistinct: every kind is listed once, under its own name.
func TestKindsDistinct(t *testing.T) {
	seen := map[Kind]bool{}
	for _, k := range Kinds {
		if k == "" || seen[k] {
			t.Errorf("kind %q empty or listed twice", k)
		}
		seen[k] = true
	}
	if !seen[Internal] {
		t.Error("Internal is not listed")
	}
}
