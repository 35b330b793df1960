package fhirapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TokenVerifier verifies bearer tokens.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (auth.Principal, error)
}

// Authenticate verifies the request's bearer token and finds who it belongs
// to in the directory. No token or a bad one: 401 with WWW-Authenticate; a
// valid token that matches nobody: 403, never a default role.
func Authenticate(v TokenVerifier, dir *directory.Resolver, tenant string, log *slog.Logger) func(http.Handler) http.Handler {
	refusals := &refusalLimiter{}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, err := auth.FromRequest(r)
			var p auth.Principal
			if err == nil {
				p, err = v.Verify(r.Context(), raw)
			}
			if err != nil {
				if errors.Is(err, auth.ErrUnavailable) {
					WriteError(w, r, log, fhir.Errorf(fhir.Unavailable, "transient",
						"Le fournisseur d'identité ne répond pas", "The identity provider is unavailable"))
					return
				}
				w.Header().Set("WWW-Authenticate", auth.Challenge(err))
				fr, en := "Jeton d'accès requis", "An access token is required"
				if !errors.Is(err, auth.ErrNoToken) {
					fr, en = "Jeton d'accès refusé", "Access token rejected"
				}
				auditRefused(r, dir, refusals, tenant, log, "", "401 "+en)
				WriteError(w, r, log, fhir.Errorf(fhir.Unauthenticated, "login", fr, en))
				return
			}
			var a directory.Actor
			if p.IsSystem {
				a, err = dir.System(r.Context(), tenant, p.ClientID)
			} else {
				a, err = dir.Person(r.Context(), tenant, p.Login)
			}
			if errors.Is(err, directory.ErrUnknown) {
				auditRefused(r, dir, refusals, tenant, log, p.Login+p.ClientID, "403 account not in the directory")
				WriteError(w, r, log, fhir.Errorf(fhir.Forbidden, "forbidden",
					"Ce compte n'est pas inscrit à l'annuaire de la CPTS", "This account is not registered in the CPTS directory"))
				return
			}
			if err != nil {
				WriteError(w, r, log, err)
				return
			}
			ctx := auth.WithPrincipal(access.WithActor(r.Context(), a), p)
			if tp := r.Header.Get("traceparent"); validTraceParent(tp) {
				ctx = WithTraceParent(ctx, tp)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// validTraceParent checks the W3C shape 00-<32 hex>-<16 hex>-<2 hex>.
func validTraceParent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	for i, c := range s {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// auditRefused records a refused authentication on the API in the tenant's
// trail: the request (method and path, never its body) and why.
//
// A flood of bad tokens must not flood the trail: each client address gets
// at most refusalBurst records a minute; the refusals past it are counted
// and the count goes in that address's next record.
func auditRefused(r *http.Request, dir *directory.Resolver, refusals *refusalLimiter, tenant string, log *slog.Logger, who, why string) {
	if dir == nil || dir.Store == nil {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ok, skipped := refusals.allow(host, time.Now())
	if !ok {
		return
	}
	rec := store.AuditRecord{Tenant: tenant, Action: "E", Entity: AuditAPIAuth, Outcome: "4",
		Detail: why + ": " + r.Method + " " + r.URL.Path}
	if who != "" {
		rec.Detail += " (" + who + ")"
	}
	if host != "" {
		rec.Detail += " from " + host
	}
	if skipped > 0 {
		rec.Detail += fmt.Sprintf(" (+%d refusals from this address not recorded one by one)", skipped)
	}
	err = dir.Store.Tx(context.WithoutCancel(r.Context()), func(tx store.Tx) error { return tx.Audit(r.Context(), rec) })
	if err != nil && log != nil {
		log.ErrorContext(r.Context(), "audit append failed", "entity", AuditAPIAuth, "error", err)
	}
}

// refusalBurst is how many refused authentications of one address a minute
// are recorded one by one.
const refusalBurst = 10

// refusalLimiter bounds the audit records of refused authentications per
// client address (see auditRefused).
type refusalLimiter struct {
	mu    sync.Mutex
	addrs map[string]*refusalWindow
}

type refusalWindow struct {
	start            time.Time
	recorded, unsaid int
}

// allow tells whether a refusal from host at now is recorded, and how many
// refusals from host went unrecorded before it (reported in this record).
func (l *refusalLimiter) allow(host string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Bounded: past 4096 addresses the table starts again (an attacker with
	// many addresses gets a few more records, never unbounded memory).
	if l.addrs == nil || len(l.addrs) >= 4096 {
		l.addrs = map[string]*refusalWindow{}
	}
	w := l.addrs[host]
	if w == nil || now.Sub(w.start) >= time.Minute || now.Before(w.start) {
		unsaid := 0
		if w != nil {
			unsaid = w.unsaid
		}
		l.addrs[host] = &refusalWindow{start: now, recorded: 1}
		return true, unsaid
	}
	if w.recorded < refusalBurst {
		w.recorded++
		return true, 0
	}
	w.unsaid++
	return false, 0
}
