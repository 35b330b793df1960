package intake

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/mllp"
)

// MLLPPolicy says who may send HL7 v2 over an MLLP connection. A connection
// with a verified client certificate (mllp.MutualTLS) sends for the
// facility whose Device carries the certificate's fingerprint
// (directory.SystemCertificate), whatever its address. A connection without
// one is judged by its remote address.
type MLLPPolicy struct {
	// Allow lists the addresses that may send without a client
	// certificate, each for one facility only (a loopback or VPN address
	// of a hospital that cannot do mutual TLS). When an address falls in
	// several entries, the narrowest wins.
	Allow []AllowedSender
	// OpenLoopback lets a loopback connection without a certificate, and
	// listed in no entry, send for any registered facility: development
	// mode, so that a plain printf to localhost works.
	OpenLoopback bool
}

// AllowedSender is one entry of MLLPPolicy.Allow.
type AllowedSender struct {
	FINESS string
	Prefix netip.Prefix
}

// ParseAllow reads "<FINESS>=<ip or cidr>,…" (PASSERELLE_MLLP_ALLOW).
func ParseAllow(s string) ([]AllowedSender, error) {
	var out []AllowedSender
	seen := map[netip.Prefix]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		finess, addr, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not <FINESS>=<ip or cidr>", item)
		}
		finess, addr = strings.TrimSpace(finess), strings.TrimSpace(addr)
		if err := ident.CheckFINESS(finess); err != nil {
			return nil, fmt.Errorf("%q: %v", item, err)
		}
		var p netip.Prefix
		var err error
		if strings.Contains(addr, "/") {
			p, err = netip.ParsePrefix(addr)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(addr)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("%q: not an IP address or CIDR prefix", item)
		}
		p = p.Masked()
		if p.Addr().Unmap().IsUnspecified() || p.Bits() == 0 {
			return nil, fmt.Errorf("%q: every address is not a list of addresses", item)
		}
		if other, dup := seen[p]; dup && other != finess {
			return nil, fmt.Errorf("%q: %s is already allowed for %s", item, p, other)
		}
		seen[p] = finess
		out = append(out, AllowedSender{FINESS: finess, Prefix: p})
	}
	return out, nil
}

// connSender is whom a connection may send for.
type connSender struct {
	finess string // the one facility
	any    bool   // any registered facility (open loopback, in-process)
	// by says how the facility was recognised, for the ERR text and logs.
	by string
}

// anySender is an in-process caller's: it is trusted as code of the binary.
var anySender = connSender{any: true, by: "in-process"}

func (c connSender) allows(finess string) bool { return c.any || c.finess == finess }

// connectionSender tells whom the connection may send for, or the AR
// errors refusing it.
func (s *Service) connectionSender(ctx context.Context, p MLLPPolicy, c mllp.ConnInfo) (connSender, []hl7v2.AckError, error) {
	refuse := func(text string) []hl7v2.AckError {
		return []hl7v2.AckError{{Code: hl7v2.CodeUnknownKey, Severity: hl7v2.SeverityError, Message: text}}
	}
	if c.Verified() {
		fp := directory.Fingerprint(c.PeerCertificate.Raw)
		a, err := s.d.Dir.Certificate(ctx, s.d.Tenant, fp)
		if errors.Is(err, directory.ErrUnknown) {
			s.log.WarnContext(ctx, "MLLP client certificate not registered", "remote_addr", addrString(c),
				"client_cert_sha256", fp, "client_cert_subject", c.PeerCertificate.Subject.String(), "reason", err.Error())
			return connSender{}, refuse("Certificat client non enregistré dans l'annuaire (empreinte SHA-256 " + fp +
				") / Client certificate not registered in the directory"), nil
		}
		if err != nil {
			return connSender{}, nil, err
		}
		return connSender{finess: a.FINESS, by: "certificate"}, nil, nil
	}
	ip := remoteIP(c)
	best := -1
	var who connSender
	for _, e := range p.Allow {
		if ip.IsValid() && e.Prefix.Contains(ip) && e.Prefix.Bits() > best {
			best, who = e.Prefix.Bits(), connSender{finess: e.FINESS, by: "address"}
		}
	}
	if best >= 0 {
		return who, nil, nil
	}
	if p.OpenLoopback && ip.IsLoopback() {
		return connSender{any: true, by: "loopback"}, nil, nil
	}
	s.log.WarnContext(ctx, "MLLP connection without a client certificate from an address not allowed", "remote_addr", addrString(c))
	return connSender{}, refuse("Connexion sans certificat client depuis une adresse non autorisée / " +
		"Connection without a client certificate from an address that is not allowed"), nil
}

// mismatch is the AR error of a message whose MSH-4 names another facility
// than the one the connection may send for.
func (c connSender) mismatch(finess string) []hl7v2.AckError {
	fr, en := "l'établissement du certificat client", "the client certificate's facility"
	if c.by == "address" {
		fr, en = "l'établissement autorisé pour cette adresse", "the facility allowed for this address"
	}
	return []hl7v2.AckError{{Location: hl7v2.Location{Segment: "MSH", Sequence: 1, Field: 4}, Code: hl7v2.CodeUnknownKey,
		Severity: hl7v2.SeverityError, Message: fmt.Sprintf("MSH-4 (FINESS %s) n'est pas %s (FINESS %s) / MSH-4 (FINESS %s) is not %s (FINESS %s)",
			finess, fr, c.finess, finess, en, c.finess)}}
}

func remoteIP(c mllp.ConnInfo) netip.Addr {
	if c.RemoteAddr == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func addrString(c mllp.ConnInfo) string {
	if c.RemoteAddr == nil {
		return ""
	}
	return c.RemoteAddr.String()
}
