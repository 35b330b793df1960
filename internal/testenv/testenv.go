// Package testenv finds the external services tests run against. Tests that
// need PostgreSQL or an external NATS server read their URLs from the
// environment; CI always sets them, so when CI is set a missing URL fails the
// test instead of skipping it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Variables the tests read.
const (
	DatabaseURLVar = "PASSERELLE_TEST_DATABASE_URL"
	NATSURLVar     = "PASSERELLE_TEST_NATS_URL"
)

// need returns the variable's value, or skips (fails under CI) the test.
func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set, and CI is: this test must run", name)
		}
		t.Skipf("%s is not set", name)
	}
	return v
}

// NATSURL returns the external NATS server's URL.
func NATSURL(t testing.TB) string {
	t.Helper()
	return need(t, NATSURLVar)
}

// PostgresURL returns the URL of a fresh, empty schema in the test database,
// dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := need(t, DatabaseURLVar)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", DatabaseURLVar, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", DatabaseURLVar, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
