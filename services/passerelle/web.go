package main

import (
	"context"

	"github.com/passerelle-sante/passerelle/pkg/websession"
)

// registerLogin sets up the web login (authorization code with PKCE against
// the configured issuer, or the development provider) and its routes:
// /login, /auth/callback, /logout. The web pages use p.Sessions.
func registerLogin(p *Platform) {
	m, err := websession.New(websession.Config{Provider: p.Verifier, Directory: p.Dir, Audit: p.Store,
		Tenant: p.Cfg.Tenant, PublicURL: p.Cfg.PublicURL, ClientID: p.Cfg.OIDCClientID, ClientSecret: p.Cfg.OIDCClientSecret,
		Now: p.Clock.Now, Logger: p.Log.With("component", "websession")})
	if err != nil {
		// The configuration was validated at start-up: the public URL is
		// an absolute URL and identity is open.
		panic(err)
	}
	p.Sessions = m
	m.Register(p.Mux)
	if p.IdP != nil {
		p.IdP.OnLoginFailure(func(login string) { m.AuditFailedLogin(context.Background(), login) })
	}
}
