package fhirapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

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
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, err := auth.FromRequest(r)
			var p auth.Principal
			if err == nil {
				p, err = v.Verify(r.Context(), raw)
			}
			if err != nil {
				if errors.Is(err, auth.ErrUnavailable) {
					WriteError(w, r, log, fhir.Errorf(http.StatusServiceUnavailable, "transient",
						"Le fournisseur d'identité ne répond pas", "The identity provider is unavailable"))
					return
				}
				w.Header().Set("WWW-Authenticate", auth.Challenge(err))
				fr, en := "Jeton d'accès requis", "An access token is required"
				if !errors.Is(err, auth.ErrNoToken) {
					fr, en = "Jeton d'accès refusé", "Access token rejected"
				}
				auditRefused(r, dir, tenant, log, "", "401 "+en)
				WriteError(w, r, log, fhir.Errorf(http.StatusUnauthorized, "login", fr, en))
				return
			}
			var a directory.Actor
			if p.IsSystem {
				a, err = dir.System(r.Context(), tenant, p.ClientID)
			} else {
				a, err = dir.Person(r.Context(), tenant, p.Login)
			}
			if errors.Is(err, directory.ErrUnknown) {
				auditRefused(r, dir, tenant, log, p.Login+p.ClientID, "403 account not in the directory")
				WriteError(w, r, log, fhir.Errorf(http.StatusForbidden, "forbidden",
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
func auditRefused(r *http.Request, dir *directory.Resolver, tenant string, log *slog.Logger, who, why string) {
	if dir == nil || dir.Store == nil {
		return
	}
	rec := store.AuditRecord{Tenant: tenant, Action: "E", Entity: AuditAPIAuth, Outcome: "4",
		Detail: why + ": " + r.Method + " " + r.URL.Path}
	if who != "" {
		rec.Detail += " (" + who + ")"
	}
	err := dir.Store.Tx(context.WithoutCancel(r.Context()), func(tx store.Tx) error { return tx.Audit(r.Context(), rec) })
	if err != nil && log != nil {
		log.ErrorContext(r.Context(), "audit append failed", "entity", AuditAPIAuth, "error", err)
	}
}
