package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/pkg/store/storetest"
)

func open(t testing.TB, path string, clk clock.Clock) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{Options: sqlstore.Options{Clock: clk}})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, clk clock.Clock) storetest.Opened {
		path := filepath.Join(t.TempDir(), "passerelle.db")
		s := open(t, path, clk)
		return storetest.Opened{
			Store:    s,
			Reopen:   func(t testing.TB) store.Store { return open(t, path, clk) },
			KeyAudit: s.SetAuditKey,
		}
	})
}

func TestMigrateIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passerelle.db")
	be, err := sqlite.Connect(context.Background(), path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	first, err := sqlite.Migrate(context.Background(), be)
	if err != nil || len(first) == 0 {
		t.Fatalf("first migrate: %v, %v", first, err)
	}
	again, err := sqlite.Migrate(context.Background(), be)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %v, %v", again, err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(t testing.TB, clk clock.Clock) storetest.Opened {
		return storetest.Opened{Store: open(t, filepath.Join(t.TempDir(), "passerelle.db"), clk)}
	})
}
