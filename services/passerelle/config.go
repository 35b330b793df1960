package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// Config is every setting of docs/contract.md, "Configuration". It is read here
// and nowhere else: each variable from the environment, each overridden by
// its flag.
type Config struct {
	HTTPAddr          string
	MLLPAddr          string
	PublicURL         string
	DataDir           string
	DatabaseURL       string
	NATSURL           string
	OIDCIssuer        string
	OIDCClientID      string
	OIDCClientSecret  string
	PractitionerClaim string
	// PractitionerSystem is the one identifier system the practitioner
	// claim is matched against.
	PractitionerSystem string
	Env                string
	Tenant             string
	TLSCert, TLSKey    string
	SMTPURL            string
	ProfilesDir        string
	// MetricsToken, when set, is the bearer token /metrics asks for;
	// without it /metrics answers the loopback interface only.
	MetricsToken string
	// HTTPMaxConnsPerAddr bounds the HTTP connections one address holds
	// at a time (0: no bound).
	HTTPMaxConnsPerAddr int
	httpMaxConns        string
	AuditKeyFile        string
	Demo                bool

	// MLLPClientCA is the PEM file of the authorities whose client
	// certificates the MLLP listener accepts (mutual TLS); MLLPAllow the
	// addresses allowed to send without one, each for one facility.
	MLLPClientCA, MLLPAllow string
	// AccessGrace is how long a professional still reads, and only reads,
	// a patient's data after her care relationship with the patient ended
	// (access.Policy.Grace). Zero: not at all.
	AccessGrace time.Duration
	accessGrace string
}

// Production tells whether the instance runs in production mode.
func (c Config) Production() bool { return c.Env == "production" }

// DevIdP tells whether the development identity provider runs.
func (c Config) DevIdP() bool { return c.OIDCIssuer == "" }

// devClientSecret is the web client's secret in development mode only.
const devClientSecret = "passerelle-dev-secret"

type setting struct {
	env, flag, def, usage string
	dst                   *string
	secret                bool
}

func (c *Config) settings() []setting {
	return []setting{
		{"PASSERELLE_HTTP_ADDR", "http-addr", ":8080", "HTTP listen address", &c.HTTPAddr, false},
		{"PASSERELLE_MLLP_ADDR", "mllp-addr", ":2575", "HL7 v2 MLLP listen address; empty turns MLLP off", &c.MLLPAddr, false},
		{"PASSERELLE_PUBLIC_URL", "public-url", "", "the URL people and systems use (default http://<HTTP address>)", &c.PublicURL, false},
		{"PASSERELLE_DATA_DIR", "data-dir", "./data", "embedded database, NATS storage, development keys", &c.DataDir, false},
		{"PASSERELLE_DATABASE_URL", "database-url", "", "postgres://… (empty: embedded SQLite)", &c.DatabaseURL, true},
		{"PASSERELLE_NATS_URL", "nats-url", "", "nats://… , comma-separated (empty: embedded NATS server)", &c.NATSURL, false},
		{"PASSERELLE_OIDC_ISSUER", "oidc-issuer", "", "external OpenID Connect issuer (empty: development provider)", &c.OIDCIssuer, false},
		{"PASSERELLE_OIDC_CLIENT_ID", "oidc-client-id", "passerelle", "the web app's client id, required in tokens' aud or azp", &c.OIDCClientID, false},
		{"PASSERELLE_OIDC_CLIENT_SECRET", "oidc-client-secret", "", "the web app's client secret", &c.OIDCClientSecret, true},
		{"PASSERELLE_OIDC_PRACTITIONER_CLAIM", "oidc-practitioner-claim", "preferred_username", "token claim matched to a Practitioner identifier", &c.PractitionerClaim, false},
		{"PASSERELLE_OIDC_PRACTITIONER_SYSTEM", "oidc-practitioner-system", directory.SystemLogin,
			"the one identifier system that claim is matched against: the login NamingSystem, RPPS or idNat_PS", &c.PractitionerSystem, false},
		{"PASSERELLE_ENV", "env", "development", "development or production", &c.Env, false},
		{"PASSERELLE_TENANT", "tenant", "demo", "the CPTS this instance serves", &c.Tenant, false},
		{"PASSERELLE_TLS_CERT", "tls-cert", "", "TLS certificate (PEM) for HTTP and MLLP", &c.TLSCert, false},
		{"PASSERELLE_TLS_KEY", "tls-key", "", "TLS private key (PEM)", &c.TLSKey, false},
		{"PASSERELLE_MLLP_CLIENT_CA", "mllp-client-ca", "", "CA certificates (PEM) of the hospitals' MLLP client certificates: mutual TLS", &c.MLLPClientCA, false},
		{"PASSERELLE_MLLP_ALLOW", "mllp-allow", "", "<FINESS>=<ip or cidr>,… addresses that may send MLLP without a client certificate, each for its facility", &c.MLLPAllow, false},
		{"PASSERELLE_SMTP_URL", "smtp-url", "", "smtp://host:port for e-mail notifications (empty: log)", &c.SMTPURL, true},
		{"PASSERELLE_PROFILES_DIR", "profiles-dir", "", "directory overriding the built-in FHIR package", &c.ProfilesDir, false},
		{"PASSERELLE_ACCESS_GRACE", "access-grace", "7d", "read-only access after the care relationship ends (e.g. 7d, 48h; 0: none)", &c.accessGrace, false},
		{"PASSERELLE_METRICS_TOKEN", "metrics-token", "", "bearer token /metrics asks for (empty: /metrics from the loopback interface only)", &c.MetricsToken, true},
		{"PASSERELLE_HTTP_MAX_CONNS_PER_ADDR", "http-max-conns-per-addr", "256", "HTTP connections one client address may hold at a time (0: no bound)", &c.httpMaxConns, false},
		{"PASSERELLE_AUDIT_KEY_FILE", "audit-key-file", "", "the audit chain's HMAC key (empty: <data dir>/" + auditKeyFile + ", made at first start)", &c.AuditKeyFile, false},
	}
}

// LoadConfig reads the environment, then the flags of fs parsed from args.
// Secrets may come from <VAR>_FILE.
func LoadConfig(fs *flag.FlagSet, args []string, getenv func(string) (string, bool)) (Config, []string, error) {
	var c Config
	sets := c.settings()
	for _, s := range sets {
		v, ok := getenv(s.env)
		if s.secret {
			if file, fok := getenv(s.env + "_FILE"); fok && file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return c, nil, fmt.Errorf("%s_FILE: %w", s.env, err)
				}
				v, ok = strings.TrimSpace(string(b)), true
			}
		}
		if !ok {
			v = s.def
		}
		*s.dst = v
		fs.StringVar(s.dst, s.flag, v, s.usage+" ("+s.env+")")
	}
	if fs.Lookup("demo") == nil {
		fs.BoolVar(&c.Demo, "demo", false, "add a demo CPTS with months of simulated activity")
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	return c, fs.Args(), c.validate()
}

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// validate checks every value and fills the derived defaults; its error is
// one line naming the variable and what is wrong.
func (c *Config) validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	if err := checkAddr(c.HTTPAddr); err != nil {
		return bad("PASSERELLE_HTTP_ADDR", "%v", err)
	}
	if c.MLLPAddr != "" {
		if err := checkAddr(c.MLLPAddr); err != nil {
			return bad("PASSERELLE_MLLP_ADDR", "%v", err)
		}
	}
	switch c.Env {
	case "development", "production":
	default:
		return bad("PASSERELLE_ENV", "%q is neither development nor production", c.Env)
	}
	if !tenantRE.MatchString(c.Tenant) {
		return bad("PASSERELLE_TENANT", "%q must be lower-case letters, digits and dashes", c.Tenant)
	}
	if c.PublicURL == "" {
		host, port, _ := net.SplitHostPort(c.HTTPAddr)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		c.PublicURL = scheme + "://" + net.JoinHostPort(host, port)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if err := checkURL(c.PublicURL, "http", "https"); err != nil {
		return bad("PASSERELLE_PUBLIC_URL", "%v", err)
	}
	if c.DatabaseURL != "" {
		if err := checkURL(c.DatabaseURL, "postgres", "postgresql"); err != nil {
			return bad("PASSERELLE_DATABASE_URL", "%v", redact(err, c.DatabaseURL))
		}
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if err := checkURL(strings.TrimSpace(u), "nats", "tls"); err != nil {
				return bad("PASSERELLE_NATS_URL", "%v", err)
			}
		}
	}
	if c.OIDCIssuer != "" {
		if err := checkURL(c.OIDCIssuer, "http", "https"); err != nil {
			return bad("PASSERELLE_OIDC_ISSUER", "%v", err)
		}
		if c.Production() && !isHTTPS(c.OIDCIssuer) {
			// Discovery and the signing keys fetched in clear could be
			// replaced on the way, and with them every token.
			return bad("PASSERELLE_OIDC_ISSUER", "%q: production needs an https:// issuer", c.OIDCIssuer)
		}
	} else if c.Production() {
		return bad("PASSERELLE_OIDC_ISSUER", "required in production: the development identity provider never runs in production")
	}
	if c.Production() && !isHTTPS(c.PublicURL) {
		// Session cookies, tokens and patient data would cross the network
		// in clear; behind a proxy that terminates TLS the public URL is
		// still https.
		return bad("PASSERELLE_PUBLIC_URL", "%q: production needs an https:// public URL (set PASSERELLE_TLS_CERT, or the https address of the proxy that terminates TLS)", c.PublicURL)
	}
	if c.OIDCClientID == "" {
		return bad("PASSERELLE_OIDC_CLIENT_ID", "must not be empty")
	}
	if c.OIDCClientSecret == "" && c.DevIdP() {
		c.OIDCClientSecret = devClientSecret
	}
	if c.PractitionerClaim == "" {
		return bad("PASSERELLE_OIDC_PRACTITIONER_CLAIM", "must not be empty")
	}
	if !slices.Contains(directory.LoginSystems, c.PractitionerSystem) {
		return bad("PASSERELLE_OIDC_PRACTITIONER_SYSTEM", "%q is none of %s", c.PractitionerSystem, strings.Join(directory.LoginSystems, ", "))
	}
	if c.DevIdP() && c.PractitionerSystem != directory.SystemLogin {
		return bad("PASSERELLE_OIDC_PRACTITIONER_SYSTEM", "the development identity provider's tokens carry the login: keep %s", directory.SystemLogin)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return bad("PASSERELLE_TLS_CERT", "PASSERELLE_TLS_CERT and PASSERELLE_TLS_KEY go together")
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return bad("PASSERELLE_TLS_CERT", "%v", err)
		}
	}
	if c.SMTPURL != "" {
		if err := checkURL(c.SMTPURL, "smtp", "smtps"); err != nil {
			return bad("PASSERELLE_SMTP_URL", "%v", err)
		}
	}
	n, err := strconv.Atoi(c.httpMaxConns)
	if err != nil || n < 0 {
		return bad("PASSERELLE_HTTP_MAX_CONNS_PER_ADDR", "%q is not a number of connections (0: no bound)", c.httpMaxConns)
	}
	c.HTTPMaxConnsPerAddr = n
	if c.ProfilesDir != "" {
		if st, err := os.Stat(c.ProfilesDir); err != nil || !st.IsDir() {
			return bad("PASSERELLE_PROFILES_DIR", "%q is not a readable directory", c.ProfilesDir)
		}
	}
	if c.Demo && c.Production() {
		return bad("PASSERELLE_ENV", "--demo is refused in production")
	}
	g, err := parseGrace(c.accessGrace)
	if err != nil {
		return bad("PASSERELLE_ACCESS_GRACE", "%v", err)
	}
	c.AccessGrace = g
	return c.validateMLLP()
}

// maxAccessGrace bounds the grace period: it lets a professional look back
// at what she did, it does not prolong the care.
const maxAccessGrace = 30 * 24 * time.Hour

// parseGrace reads a duration in days ("7d") or in Go's notation ("48h").
func parseGrace(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days (7d) nor a duration (48h)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a number of days (7d) nor a duration (48h)", s)
		}
	}
	if d < 0 || d > maxAccessGrace {
		return 0, fmt.Errorf("%q must be between 0 and 30 days", s)
	}
	return d, nil
}

// checkDataDir makes sure the data directory exists and is writable.
func (c Config) checkDataDir() error {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
	}
	f, err := os.CreateTemp(c.DataDir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("PASSERELLE_DATA_DIR: %s is not writable: %v", c.DataDir, errors.Unwrap(err))
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return nil
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return nil
}

func checkURL(raw string, schemes ...string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	ok := false
	for _, s := range schemes {
		if u.Scheme == s {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("scheme %q, want %s", u.Scheme, strings.Join(schemes, " or "))
	}
	if u.Host == "" {
		return fmt.Errorf("no host")
	}
	return nil
}

// isHTTPS tells whether a URL (already checked) uses https.
func isHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https"
}

// redact keeps a password in a URL out of an error message.
func redact(err error, raw string) error {
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return errors.New(strings.ReplaceAll(err.Error(), p, "xxxxx"))
		}
	}
	return err
}
