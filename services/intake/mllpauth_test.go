package intake_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/mllp"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// serial is a fresh random serial number for a test certificate.
func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newCA(t testing.TB, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return testCA{cert: cert, key: key, pool: pool}
}

// issue signs a server (for 127.0.0.1) or client certificate.
func (ca testCA) issue(t testing.TB, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(t), Subject: pkix.Name{CommonName: cn, Organization: []string{"Passerelle test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// lockedBuffer collects a server's log while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// otherFINESS is a second facility of the directory, with its own system.
const otherFINESS = "690000013"

// registerSystems registers a second facility, and each certificate on a
// Device of its facility as a hospital's certificate is registered (README).
func registerSystems(t testing.TB, r *rig, certs map[string]tls.Certificate) {
	t.Helper()
	res := []map[string]any{{"resourceType": "Organization", "id": "ch-autre", "active": true, "name": "CH Autre",
		"identifier": []any{map[string]any{"system": directory.SystemFINESS, "value": otherFINESS}}}}
	for org, c := range certs {
		res = append(res, map[string]any{"resourceType": "Device", "id": "mllp-" + org, "status": "active",
			"identifier": []any{map[string]any{"system": directory.SystemCertificate, "value": directory.Fingerprint(c.Leaf.Raw)}},
			"owner":      map[string]any{"reference": "Organization/" + org}})
	}
	if _, err := directory.Seed(context.Background(), r.store, "demo", res); err != nil {
		t.Fatal(err)
	}
}

// sendOver sends msg on a new connection made by dial and returns the ACK,
// or the error that came instead.
func sendOver(t testing.TB, dial func() (net.Conn, error), msg []byte) (string, error) {
	t.Helper()
	c, err := dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := mllp.WriteFrame(c, msg); err != nil {
		return "", err
	}
	ack, err := mllp.NewReader(bufio.NewReader(c), 1<<20).ReadMessage()
	return string(ack), err
}

// TestMLLPMutualTLS: over mutual TLS, only a certificate of the configured
// authority that is registered for the facility MSH-4 names gets its
// message taken.
func TestMLLPMutualTLS(t *testing.T) {
	r := newRig(t, false)
	ca, rogue := newCA(t, "hospitals CA"), newCA(t, "rogue CA")
	chdemo, other := ca.issue(t, "dpi.ch-demo.example", false), ca.issue(t, "dpi.ch-autre.example", false)
	unregistered := ca.issue(t, "unregistered.example", false)
	forged := rogue.issue(t, "dpi.ch-demo.example", false)
	registerSystems(t, r, map[string]tls.Certificate{directory.DevHospital: chdemo, "ch-autre": other})
	serverCA := newCA(t, "server CA")
	logs := &lockedBuffer{}
	addr := r.mllpServer(intake.MLLPPolicy{OpenLoopback: true},
		mllp.MutualTLS([]tls.Certificate{serverCA.issue(t, "passerelle", true)}, ca.pool), logs)
	a03 := hl7Sample(t, "adt-a03-cardiology-discharge.hl7")
	with := func(certs ...tls.Certificate) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			return tls.Dial("tcp", addr, &tls.Config{RootCAs: serverCA.pool, Certificates: certs, MinVersion: tls.VersionTLS12})
		}
	}

	// Refused in the handshake, and logged: no certificate, or one of
	// another authority, even from the loopback.
	for name, dial := range map[string]func() (net.Conn, error){"no certificate": with(), "another authority": with(forged)} {
		if ack, err := sendOver(t, dial, a03); err == nil || strings.Contains(ack, "MSA") {
			t.Errorf("%s: answered %q", name, ack)
		}
	}
	// The client may see the refusal before the server has logged it.
	waitFor(t, "two refused handshakes logged", func() bool { return strings.Count(logs.String(), "mllp TLS handshake failed") >= 2 })
	if n := strings.Count(logs.String(), "mllp TLS handshake failed"); n != 2 {
		t.Errorf("%d refused handshakes logged, want 2:\n%s", n, logs)
	}

	// Refused with AR and its ERR: a certificate of the right authority
	// that no system carries, and another facility's certificate.
	ack, err := sendOver(t, with(unregistered), a03)
	if err != nil || msa(ack) != "AR" || !strings.Contains(errSegment(ack), "Client certificate not registered") {
		t.Errorf("unregistered certificate: %q %v", ack, err)
	}
	ack, err = sendOver(t, with(other), a03)
	if err != nil || msa(ack) != "AR" || !strings.Contains(errSegment(ack), "MSH^1^4") ||
		!strings.Contains(errSegment(ack), "is not the client certificate's facility (FINESS "+otherFINESS+")") {
		t.Errorf("another facility's certificate: %q %v", ack, err)
	}
	if list, _, _ := r.store.Messages().List(context.Background(), store.MessageFilter{Tenant: "demo"}); len(list) != 0 {
		t.Errorf("refused messages archived: %+v", list)
	}

	// The facility's own certificate.
	ack, err = sendOver(t, with(chdemo), a03)
	if err != nil || msa(ack) != "AA" {
		t.Fatalf("CH Démo's certificate: %q %v", ack, err)
	}
	r.waitApplied("MSG000123")

	// Revoked by making its system inactive: refused again (once the
	// directory's short cache has gone: a fresh service here).
	dev, err := r.store.Read(context.Background(), "Device", "mllp-"+directory.DevHospital)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(dev.Body, &d); err != nil {
		t.Fatal(err)
	}
	d["status"] = "inactive"
	body, _ := json.Marshal(d)
	if err := r.store.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Update(context.Background(), "demo", body, dev.Version)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a := intake.New(intake.Deps{Store: r.store, Tenant: "demo", Production: true})
	h := a.MLLP(intake.MLLPPolicy{})
	state := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{chdemo.Leaf, ca.cert}}}
	ack = string(h.ServeMLLP(context.Background(), mllp.ConnInfo{TLS: &state, PeerCertificate: chdemo.Leaf,
		RemoteAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}, a03))
	if msa(ack) != "AR" {
		t.Errorf("inactive system's certificate: %q", ack)
	}
}

// TestMLLPPlaintextByAddress: without a certificate, an address listed for
// a facility sends only for it; an unlisted address is refused unless it
// is the loopback of a development instance.
func TestMLLPPlaintextByAddress(t *testing.T) {
	r := newRig(t, false)
	registerSystems(t, r, nil)
	a03 := hl7Sample(t, "adt-a03-cardiology-discharge.hl7")
	from := func(addr, local string) func() (net.Conn, error) {
		return func() (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
			return d.Dial("tcp", addr)
		}
	}
	// 127.0.0.1 is allowed for the other facility only: CH Démo's MSH-4
	// from it is refused, even with the loopback open.
	addr := r.mllpServer(intake.MLLPPolicy{OpenLoopback: true,
		Allow: []intake.AllowedSender{{FINESS: otherFINESS, Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}, nil, &lockedBuffer{})
	ack, err := sendOver(t, from(addr, "127.0.0.1"), a03)
	if err != nil || msa(ack) != "AR" || !strings.Contains(errSegment(ack), "is not the facility allowed for this address") {
		t.Errorf("listed for another facility: %q %v", ack, err)
	}
	// Production: no open loopback. Listed for CH Démo: taken; from an
	// unlisted address: refused.
	addr = r.mllpServer(intake.MLLPPolicy{
		Allow: []intake.AllowedSender{{FINESS: directory.DevHospitalFINES, Prefix: netip.MustParsePrefix("127.0.0.1/32")}}}, nil, &lockedBuffer{})
	ack, err = sendOver(t, from(addr, "127.0.0.2"), a03)
	if err != nil || msa(ack) != "AR" || !strings.Contains(errSegment(ack), "address that is not allowed") {
		t.Errorf("unlisted address: %q %v", ack, err)
	}
	ack, err = sendOver(t, from(addr, "127.0.0.1"), a03)
	if err != nil || msa(ack) != "AA" {
		t.Errorf("listed for CH Démo: %q %v", ack, err)
	}
}

func TestParseAllow(t *testing.T) {
	got, err := intake.ParseAllow(" 420000002=10.8.0.0/24, 690000013=127.0.0.1 ,")
	want := []intake.AllowedSender{{FINESS: "420000002", Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		{FINESS: "690000013", Prefix: netip.MustParsePrefix("127.0.0.1/32")}}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseAllow = %v %v, want %v", got, err, want)
	}
	for _, bad := range []string{"420000002", "420000003=10.0.0.1", "420000002=host", "420000002=0.0.0.0/0", "420000002=::",
		"420000002=10.0.0.1,690000013=10.0.0.1/32"} {
		if _, err := intake.ParseAllow(bad); err == nil {
			t.Errorf("ParseAllow(%q) accepted", bad)
		}
	}
}
