package sqlite

import "testing"

func TestAnonymousParams(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)", "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"},
		{"SELECT 1 FROM r WHERE a = $1 AND b = $2", "SELECT 1 FROM r WHERE a = ? AND b = ?"},
		// Out of order, repeated or mixed: left as written.
		{"UPDATE t SET a = $2 WHERE b = $1", "UPDATE t SET a = $2 WHERE b = $1"},
		{"SELECT 1 WHERE a = $1 OR b = $1", "SELECT 1 WHERE a = $1 OR b = $1"},
		{"SELECT 1 WHERE a = $1 AND b = ?", "SELECT 1 WHERE a = $1 AND b = ?"},
		// A $ in a string literal is not a parameter.
		{"SELECT '$9' WHERE a = $1", "SELECT '$9' WHERE a = ?"},
		{"SELECT 1", "SELECT 1"},
		{"SELECT $10", "SELECT $10"},
	} {
		if got := anonymousParams(c.in); got != c.want {
			t.Errorf("anonymousParams(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
