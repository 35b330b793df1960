package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/passerelle-sante/passerelle/pkg/mllp"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// validateMLLP checks who may send over MLLP (README "Hospitals over
// MLLP"): in production, either mutual TLS, or plaintext on a loopback or
// VPN address for the facilities listed in PASSERELLE_MLLP_ALLOW.
func (c *Config) validateMLLP() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	if c.MLLPClientCA != "" {
		if c.TLSCert == "" {
			return bad("PASSERELLE_MLLP_CLIENT_CA", "needs PASSERELLE_TLS_CERT and PASSERELLE_TLS_KEY: client certificates are checked in the TLS handshake")
		}
		if _, err := loadCAs(c.MLLPClientCA); err != nil {
			return bad("PASSERELLE_MLLP_CLIENT_CA", "%v", err)
		}
	}
	allowed, err := intake.ParseAllow(c.MLLPAllow)
	if err != nil {
		return bad("PASSERELLE_MLLP_ALLOW", "%v", err)
	}
	if len(allowed) > 0 && c.MLLPClientCA != "" {
		return bad("PASSERELLE_MLLP_ALLOW", "with PASSERELLE_MLLP_CLIENT_CA every sender presents a client certificate; the address list is for MLLP without one")
	}
	if !c.Production() || c.MLLPAddr == "" {
		return nil
	}
	if c.TLSCert != "" {
		if c.MLLPClientCA == "" {
			return bad("PASSERELLE_MLLP_CLIENT_CA", "required in production with TLS: hospitals authenticate with a client certificate (or set PASSERELLE_MLLP_ADDR empty to turn MLLP off)")
		}
		return nil
	}
	if len(allowed) == 0 {
		return bad("PASSERELLE_MLLP_ADDR", "plaintext MLLP is refused in production: set PASSERELLE_TLS_CERT, PASSERELLE_TLS_KEY and PASSERELLE_MLLP_CLIENT_CA (mutual TLS), or list the loopback or VPN senders in PASSERELLE_MLLP_ALLOW, or set it empty to turn MLLP off")
	}
	host, _, _ := net.SplitHostPort(c.MLLPAddr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return bad("PASSERELLE_MLLP_ADDR", "plaintext MLLP in production must listen on a loopback or VPN address, not on every interface (%q)", c.MLLPAddr)
	}
	return nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// mllpServer is the intake's MLLP listener as configured: mutual TLS with
// PASSERELLE_MLLP_CLIENT_CA; otherwise plaintext (or, in development, TLS
// without client certificates) where only the PASSERELLE_MLLP_ALLOW
// addresses, and in development the loopback, may send.
func mllpServer(p *Platform, svc *intake.Service) (*mllp.Server, error) {
	cfg := p.Cfg
	allowed, err := intake.ParseAllow(cfg.MLLPAllow)
	if err != nil {
		return nil, fmt.Errorf("PASSERELLE_MLLP_ALLOW: %v", err)
	}
	policy := intake.MLLPPolicy{Allow: allowed, OpenLoopback: !cfg.Production()}
	tlsCfg, err := p.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil && cfg.MLLPClientCA != "" {
		pool, err := loadCAs(cfg.MLLPClientCA)
		if err != nil {
			return nil, fmt.Errorf("PASSERELLE_MLLP_CLIENT_CA: %v", err)
		}
		tlsCfg = mllp.MutualTLS(tlsCfg.Certificates, pool)
	} else if tlsCfg != nil {
		p.Log.Warn("MLLP over TLS without PASSERELLE_MLLP_CLIENT_CA: no client certificate is asked, only the loopback (development) and the PASSERELLE_MLLP_ALLOW addresses may send")
	}
	return &mllp.Server{Handler: svc.MLLP(policy), TLSConfig: tlsCfg, Logger: p.Log.With("component", "mllp")}, nil
}
