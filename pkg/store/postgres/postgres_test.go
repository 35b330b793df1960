package postgres_test

import (
	"context"
	"testing"

	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/pkg/store/storetest"
)

func open(t testing.TB, url string, clk clock.Clock) *sqlstore.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{Options: sqlstore.Options{Clock: clk}, MaxConns: 6})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, clk clock.Clock) storetest.Opened {
		url := testenv.PostgresURL(t)
		s := open(t, url, clk)
		return storetest.Opened{
			Store:    s,
			Reopen:   func(t testing.TB) store.Store { return open(t, url, clk) },
			KeyAudit: s.SetAuditKey,
		}
	})
}

func TestMigrateIdempotent(t *testing.T) {
	url := testenv.PostgresURL(t)
	be, err := postgres.Connect(context.Background(), url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	first, err := postgres.Migrate(context.Background(), be)
	if err != nil || len(first) == 0 {
		t.Fatalf("first migrate: %v, %v", first, err)
	}
	again, err := postgres.Migrate(context.Background(), be)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %v, %v", again, err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(t testing.TB, clk clock.Clock) storetest.Opened {
		return storetest.Opened{Store: open(t, testenv.PostgresURL(t), clk)}
	})
}
