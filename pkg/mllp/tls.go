package mllp

import (
	"crypto/tls"
	"crypto/x509"
)

// MutualTLS returns the server TLS configuration of an MLLP listener whose
// senders authenticate with a client certificate: TLS 1.2 or later, and a
// certificate chaining to clientCAs required and verified during the
// handshake. A client without one, or with one from another authority,
// never gets to send a frame. Which facility a verified certificate speaks
// for is the Handler's business (ConnInfo.PeerCertificate).
func MutualTLS(certs []tls.Certificate, clientCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: certs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}
}

// Verified tells whether the connection's client certificate was verified
// against the server's client CAs during the handshake: only then does it
// say who the sender is.
func (c ConnInfo) Verified() bool {
	return c.TLS != nil && c.PeerCertificate != nil && len(c.TLS.VerifiedChains) > 0
}
