package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/mllp"
)

// TestMLLPConfig: production refuses plaintext MLLP unless the senders are
// listed by address, and then on every interface; TLS in production needs
// the client CA; the client CA needs TLS.
func TestMLLPConfig(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newTestCA(t).cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	prod := map[string]string{"PASSERELLE_ENV": "production", "PASSERELLE_OIDC_ISSUER": "https://auth.example.invalid/realms/passerelle",
		"PASSERELLE_PUBLIC_URL": "https://passerelle.example.invalid"}
	with := func(base map[string]string, kv ...string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tlsOn := []string{"PASSERELLE_TLS_CERT", certFile, "PASSERELLE_TLS_KEY", keyFile}
	cases := []struct {
		name    string
		env     map[string]string
		wantErr string // the error's start; "" for none from the MLLP settings
	}{
		{"production plaintext", prod, "PASSERELLE_MLLP_ADDR: plaintext MLLP is refused in production"},
		{"production plaintext listed on every interface", with(prod, "PASSERELLE_MLLP_ALLOW", "420000002=10.8.0.2"), "PASSERELLE_MLLP_ADDR: plaintext MLLP in production must listen"},
		{"production plaintext listed on 0.0.0.0", with(prod, "PASSERELLE_MLLP_ALLOW", "420000002=10.8.0.2", "PASSERELLE_MLLP_ADDR", "0.0.0.0:2575"), "PASSERELLE_MLLP_ADDR: plaintext MLLP in production must listen"},
		{"production plaintext listed on [::]", with(prod, "PASSERELLE_MLLP_ALLOW", "420000002=10.8.0.2", "PASSERELLE_MLLP_ADDR", "[::]:2575"), "PASSERELLE_MLLP_ADDR: plaintext MLLP in production must listen"},
		{"production plaintext listed on a VPN address", with(prod, "PASSERELLE_MLLP_ALLOW", "420000002=10.8.0.2", "PASSERELLE_MLLP_ADDR", "10.8.0.1:2575"), ""},
		{"production TLS without client CA", with(prod, tlsOn...), "PASSERELLE_MLLP_CLIENT_CA: required in production"},
		{"production mutual TLS on every interface", with(prod, append(tlsOn, "PASSERELLE_MLLP_CLIENT_CA", caFile)...), ""},
		{"production MLLP off", with(prod, "PASSERELLE_MLLP_ADDR", ""), ""},
		{"client CA without TLS", map[string]string{"PASSERELLE_MLLP_CLIENT_CA": caFile}, "PASSERELLE_MLLP_CLIENT_CA: needs PASSERELLE_TLS_CERT"},
		{"client CA not PEM", with(nil, append(tlsOn, "PASSERELLE_MLLP_CLIENT_CA", keyFile)...), "PASSERELLE_MLLP_CLIENT_CA:"},
		{"address list with client CA", with(nil, append(tlsOn, "PASSERELLE_MLLP_CLIENT_CA", caFile, "PASSERELLE_MLLP_ALLOW", "420000002=127.0.0.1")...), "PASSERELLE_MLLP_ALLOW:"},
		{"bad address list", map[string]string{"PASSERELLE_MLLP_ALLOW": "420000002=everyone"}, "PASSERELLE_MLLP_ALLOW:"},
		{"development plaintext", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), nil, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			switch {
			case tc.wantErr == "" && err != nil && strings.Contains(err.Error(), "MLLP"):
				t.Errorf("error %v, want none from the MLLP settings", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one starting %q", err, tc.wantErr)
			}
		})
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "hospitals CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key}
}

func (ca testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestMLLPMutualTLSPlatform: the binary with PASSERELLE_MLLP_CLIENT_CA
// takes CH Démo's discharge over TLS with the certificate registered on its
// system, and refuses the handshake without one, from the loopback too.
func TestMLLPMutualTLSPlatform(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	ca := newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tp := startPlatform(t, map[string]string{"PASSERELLE_TLS_CERT": certFile, "PASSERELLE_TLS_KEY": keyFile, "PASSERELLE_MLLP_CLIENT_CA": caFile})
	dpi := ca.client(t, "dpi.ch-demo.example")
	// Registered as README says: an identifier of the hospital's Device.
	if _, err := directory.Seed(context.Background(), tp.Store, tp.Cfg.Tenant, []map[string]any{{"resourceType": "Device", "id": "mllp-ch-demo",
		"status": "active", "owner": map[string]any{"reference": "Organization/" + directory.DevHospital},
		"identifier": []any{map[string]any{"system": directory.SystemCertificate, "value": directory.Fingerprint(dpi.Leaf.Raw)}}}}); err != nil {
		t.Fatal(err)
	}
	msg, err := os.ReadFile(filepath.Join("..", "intake", "testdata", "hl7", "adt-a03-cardiology-discharge.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	send := func(certs []tls.Certificate) (string, error) {
		c, err := tls.Dial("tcp", tp.MLLPListener.Addr().String(), &tls.Config{RootCAs: pool, Certificates: certs})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := mllp.WriteFrame(c, []byte(strings.ReplaceAll(string(msg), "\n", "\r"))); err != nil {
			return "", err
		}
		ack, err := mllp.NewReader(c, 1<<20).ReadMessage()
		return string(ack), err
	}
	if ack, err := send(nil); err == nil || strings.Contains(ack, "MSA") {
		t.Errorf("without a client certificate: %q %v", ack, err)
	}
	if ack, err := send([]tls.Certificate{dpi}); err != nil || !strings.Contains(ack, "MSA|AA|MSG000123") {
		t.Errorf("with CH Démo's certificate: %q %v", ack, err)
	}
}
