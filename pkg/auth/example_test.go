package auth_test

import (
	"context"
	"errors"
	"log"
	"net/http"

	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
)

// A middleware that authenticates every request, mapping the errors once.
func Example_middleware() {
	v, err := auth.NewVerifier(context.Background(), auth.Config{
		Issuer:   "https://keycloak.example/realms/cpts",
		ClientID: "passerelle",
	})
	if err != nil {
		log.Fatal(err)
	}
	authenticate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, err := auth.FromRequest(r)
			var p auth.Principal
			if err == nil {
				p, err = v.Verify(r.Context(), tok)
			}
			switch {
			case errors.Is(err, auth.ErrUnavailable):
				http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
				return
			case err != nil:
				w.Header().Set("WWW-Authenticate", auth.Challenge(err))
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
		})
	}
	_ = authenticate
}

// With no external issuer, the development provider is served under the
// public URL and verified through its in-process transport, before the
// HTTP server listens.
func Example_developmentProvider() {
	idp, err := devidp.New(devidp.Config{
		DataDir: "./data",
		Issuer:  "http://localhost:8080" + devidp.MountPath,
		Users:   []devidp.User{{Login: "ide.martin", Password: "ide.martin", Name: "Claire Martin"}},
		Clients: []devidp.Client{{ID: "chu-demo-dpi", Secret: "chu-demo-dpi"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(devidp.MountPath+"/", idp.Handler())
	v, err := auth.NewVerifier(context.Background(), auth.Config{
		Issuer:     idp.Issuer(),
		ClientID:   "passerelle",
		HTTPClient: idp.HTTPClient(),
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = v
}
