package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/internal/demo"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
	"github.com/passerelle-sante/passerelle/pkg/fhir/search"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/idempotency"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/pkg/timer"
	"github.com/passerelle-sante/passerelle/pkg/websession"
	"github.com/passerelle-sante/passerelle/services/intake"
	"github.com/passerelle-sante/passerelle/services/outcomes"
	"github.com/passerelle-sante/passerelle/services/teams"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// Platform is what every service runs on: the store, the bus, identity, the
// outbox relay, the timer runner and the HTTP server with its health and
// metrics endpoints.
type Platform struct {
	Cfg      Config
	Log      *slog.Logger
	Clock    clock.Clock
	Store    store.Store
	Bus      bus.Bus
	Metrics  *prometheus.Registry
	Search   *search.Registry
	Dir      *directory.Resolver
	Verifier *auth.Verifier
	IdP      *devidp.Provider
	Relay    *bus.Relay
	Timers   *timer.Runner
	Mux      *http.ServeMux
	API      *fhirapi.API
	// Sessions logs people into the web pages (registerLogin sets it).
	Sessions *websession.Manager
	// Profiles is the FHIR package in use.
	Profiles *profile.Registry
	// Validator checks incoming messages against the FHIR package.
	Validator interface {
		ValidateBundle(body []byte) []fhir.Issue
	}

	// MLLPListener is bound at open when MLLP is on; the intake service
	// serves it.
	MLLPListener net.Listener

	// sim is the clock of a --demo instance: the simulated months, then
	// the wall clock.
	sim *clock.Sim
	// commits is told of every group commit; the demo waits on it.
	commits notice
	// The services built in this process, set as they are added: the web
	// pages and the demo use them.
	intakeSvc   *intake.Service
	teamsSvc    *teams.Service
	worklistSvc *worklist.Service
	outcomesSvc *outcomes.Service

	nats     *jetstream.Server
	httpLn   net.Listener
	closers  []func()
	owner    string
	ready    func() error
	readyMu  sync.Mutex
	notReady string
}

// Open builds the platform from cfg: binds the HTTP listener first (so a
// port in use is reported before anything else starts), opens the store and
// the bus, and sets identity up.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (p *Platform, err error) {
	p = &Platform{Cfg: cfg, Log: log, Clock: clock.System{}, Metrics: prometheus.NewRegistry(), Search: search.Default()}
	if cfg.Demo {
		p.sim = &clock.Sim{}
		p.Clock = p.sim
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	host, _ := os.Hostname()
	p.owner = fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()%100000)
	p.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := cfg.checkDataDir(); err != nil {
		return p, err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return p, fmt.Errorf("PASSERELLE_HTTP_ADDR: cannot listen on %s: %v", cfg.HTTPAddr, unwrapOp(err))
	}
	p.httpLn = ln
	p.closers = append(p.closers, func() { _ = ln.Close() })
	if cfg.MLLPAddr != "" {
		mln, err := net.Listen("tcp", cfg.MLLPAddr)
		if err != nil {
			return p, fmt.Errorf("PASSERELLE_MLLP_ADDR: cannot listen on %s: %v", cfg.MLLPAddr, unwrapOp(err))
		}
		p.MLLPListener = mln
		p.closers = append(p.closers, func() { _ = mln.Close() })
	}

	commitHist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "passerelle_store_commit_batch_size",
		Help: "Transactions per group commit.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128}})
	p.Metrics.MustRegister(commitHist)
	p.Relay = &bus.Relay{Clock: p.Clock, Logger: log, Owner: p.owner, Metrics: p.Metrics}
	p.Relay.Init()
	opts := sqlstore.Options{Clock: p.Clock, Indexer: sqlstore.RegistryIndexer(p.Search), OnCommit: func(n int, _ time.Duration) {
		commitHist.Observe(float64(n))
		p.commits.fire()
	}, OnEmit: p.Relay.Notify}
	if cfg.DatabaseURL != "" {
		p.Store, err = postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{Options: opts})
		if err != nil {
			return p, fmt.Errorf("PASSERELLE_DATABASE_URL: %v", redact(err, cfg.DatabaseURL))
		}
	} else {
		// A demo's invented months are written with the write-ahead log
		// synced at checkpoints rather than at every commit (a third
		// faster; a commit survives a crash of the process, not a power
		// cut): never an instance for real patients (refused in production).
		p.Store, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "passerelle.db"), sqlite.Options{Options: opts, RelaxedSync: cfg.Demo})
		if err != nil {
			return p, fmt.Errorf("PASSERELLE_DATA_DIR: database: %v", err)
		}
	}
	p.closers = append(p.closers, func() { _ = p.Store.Close() })
	if err := keyAudit(ctx, cfg, p.Store); err != nil {
		return p, err
	}

	jcfg := jetstream.Config{Logger: log.With("component", "bus"), Registerer: p.Metrics}
	if cfg.NATSURL != "" {
		jcfg.URL = cfg.NATSURL
	} else {
		p.nats, err = jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(cfg.DataDir, "nats"), Logger: slog.New(warnOnly{log.Handler()})})
		if err != nil {
			return p, fmt.Errorf("PASSERELLE_DATA_DIR: embedded NATS: %v", err)
		}
		srv := p.nats
		p.closers = append(p.closers, func() { srv.Shutdown(); srv.WaitForShutdown() })
		jcfg.Server = p.nats
	}
	b, err := jetstream.New(ctx, jcfg)
	if err != nil {
		return p, fmt.Errorf("PASSERELLE_NATS_URL: %v", err)
	}
	p.Bus = b
	p.closers = append(p.closers, func() { _ = b.Close() })
	p.Relay.Store, p.Relay.Publisher, p.Relay.DeadLetters = p.Store, p.Bus, b

	if err := p.openIdentity(ctx); err != nil {
		return p, err
	}
	if err := p.openProfiles(); err != nil {
		return p, err
	}
	p.Dir = &directory.Resolver{Store: p.Store, LoginSystem: cfg.PractitionerSystem}
	p.Timers = &timer.Runner{Store: p.Store, Clock: p.Clock, Logger: log, Owner: p.owner, Handlers: map[string]timer.Handler{}, Metrics: p.Metrics}
	p.Mux = http.NewServeMux()
	p.API = &fhirapi.API{Store: p.Store, Search: p.Search, Logger: log, BaseURL: cfg.PublicURL + "/fhir",
		Policy:  access.Policy{Now: p.Clock.Now, Grace: cfg.AccessGrace},
		Version: version, Published: bus.Published, Now: p.Clock.Now, Operations: map[string]string{}}
	if p.IdP != nil {
		p.API.TokenURL, p.API.AuthorizeURL = p.IdP.Issuer()+"/token", p.IdP.Issuer()+"/authorize"
	}
	p.ready = func() error { return nil }
	return p, nil
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func (p *Platform) openIdentity(ctx context.Context) error {
	cfg := p.Cfg
	vcfg := auth.Config{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID, PractitionerClaim: cfg.PractitionerClaim, Logger: p.Log}
	if cfg.DevIdP() {
		idp, err := devidp.New(devidp.Config{DataDir: cfg.DataDir, Issuer: cfg.PublicURL + "/dev-idp", Audience: cfg.OIDCClientID,
			Users: devUsers(cfg.Demo), Clients: devClients(cfg), Logger: p.Log, Production: cfg.Production()})
		if err != nil {
			return fmt.Errorf("PASSERELLE_DATA_DIR: development identity provider: %v", err)
		}
		p.IdP = idp
		vcfg.Issuer = idp.Issuer()
		// Discovery and keys come through go-oidc exactly as from an external
		// issuer, only without a network round trip.
		vcfg.HTTPClient = idp.HTTPClient()
	}
	v, err := auth.NewVerifier(ctx, vcfg)
	if err != nil {
		return fmt.Errorf("PASSERELLE_OIDC_ISSUER: %v", err)
	}
	p.Verifier = v
	return nil
}

// devUsers are the development accounts (password = login), with the demo
// CPTS's members when demo is set.
func devUsers(demoMembers bool) []devidp.User {
	var out []devidp.User
	for _, a := range directory.DevAccounts {
		out = append(out, devidp.User{Login: a.Login, Password: a.Login, Name: a.Given + " " + a.Family})
	}
	if demoMembers {
		for _, m := range demo.Members() {
			out = append(out, devidp.User{Login: m.Login, Password: m.Login, Name: m.Name})
		}
	}
	return out
}

func devClients(cfg Config) []devidp.Client {
	return []devidp.Client{
		{ID: cfg.OIDCClientID, Secret: cfg.OIDCClientSecret, RedirectURIs: []string{cfg.PublicURL + "/auth/callback"},
			PostLogoutRedirectURIs: []string{cfg.PublicURL + "/"}},
		{ID: directory.DevClient, Secret: directory.DevClient},
	}
}

// Authn is the middleware of API routes: the bearer token, then the
// Idempotency-Key of writes, scoped to the authenticated caller.
func (p *Platform) Authn() func(http.Handler) http.Handler {
	authn := fhirapi.Authenticate(p.Verifier, p.Dir, p.Cfg.Tenant, p.Log)
	idem := idempotency.Middleware(idempotency.Config{Store: p.Store, Now: p.Clock.Now, Log: p.Log})
	return func(h http.Handler) http.Handler { return authn(idem(h)) }
}

// SetNotReady makes /readyz answer 503 with reason until cleared with "".
func (p *Platform) SetNotReady(reason string) {
	p.readyMu.Lock()
	p.notReady = reason
	p.readyMu.Unlock()
}

// routes adds the platform's own endpoints.
func (p *Platform) routes() {
	p.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	p.Mux.HandleFunc("GET /readyz", p.readyz)
	p.Mux.Handle("GET /metrics", metricsGuard(p.Cfg.MetricsToken, promhttp.HandlerFor(p.Metrics, promhttp.HandlerOpts{Registry: p.Metrics})))
	// Profiles, for the operator measuring where the time goes (bench/README.md),
	// behind the same guard as the metrics.
	p.Mux.Handle("GET /debug/pprof/", metricsGuard(p.Cfg.MetricsToken, http.HandlerFunc(pprof.Index)))
	p.Mux.Handle("GET /debug/pprof/profile", metricsGuard(p.Cfg.MetricsToken, http.HandlerFunc(pprof.Profile)))
	if p.IdP != nil {
		p.Mux.Handle("/dev-idp/", p.IdP.Handler())
	}
}

func (p *Platform) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	problems := map[string]string{}
	if err := p.Store.Ping(ctx); err != nil {
		problems["database"] = err.Error()
	}
	if err := p.Bus.Ping(ctx); err != nil {
		problems["nats"] = err.Error()
	}
	if err := p.Relay.Check(ctx); err != nil {
		problems["outbox"] = err.Error()
	}
	p.readyMu.Lock()
	if p.notReady != "" {
		problems["startup"] = p.notReady
	}
	p.readyMu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		writeJSON(w, map[string]any{"status": "unavailable", "problems": problems})
		return
	}
	writeJSON(w, map[string]any{"status": "ready"})
}

// Serve runs the HTTP server, the relay and the timer runner, plus extra
// until ctx ends, then shuts down in order: stop accepting, drain, close the
// bus, then the store.
func (p *Platform) Serve(ctx context.Context, extra ...func(context.Context) error) error {
	p.routes()
	srv := newHTTPServer(p.Handler(), p.Log)
	tlsCfg, err := p.TLSConfig()
	if err != nil {
		return err
	}
	srv.TLSConfig = tlsCfg
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var runMu sync.Mutex
	running := map[string]bool{}
	errc := make(chan error, 4+len(extra))
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		runMu.Lock()
		running[name] = true
		runMu.Unlock()
		go func() {
			defer wg.Done()
			defer func() {
				runMu.Lock()
				delete(running, name)
				runMu.Unlock()
			}()
			if err := fn(runCtx); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	run("outbox relay", p.Relay.Run)
	run("timers", p.Timers.Run)
	for i, fn := range extra {
		run(fmt.Sprintf("service %d", i), fn)
	}
	ln := limitConns(p.httpLn, p.Cfg.HTTPMaxConnsPerAddr)
	go func() {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	select {
	case <-ctx.Done():
	case err = <-errc:
		p.Log.Error("stopping after a failure", "error", err)
	}
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer shutCancel()
	_ = srv.Shutdown(shutCtx)
	cancel()
	// A handler that never returns (a write waiting for ever) must not keep
	// the process from stopping: past stopGrace it stops without it, and
	// says which part was still running.
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-stopped:
	case <-grace.C:
		runMu.Lock()
		var names []string
		for n := range running {
			names = append(names, n)
		}
		runMu.Unlock()
		sort.Strings(names)
		p.Log.Error("stopping without the parts still running", "after", stopGrace.String(), "running", strings.Join(names, ", "))
		if err == nil {
			err = fmt.Errorf("stopped after %v with %s still running", stopGrace, strings.Join(names, ", "))
		}
	}
	return err
}

// stopGrace is how long a stop waits for the services to finish what they
// are doing (changed by tests).
var stopGrace = 30 * time.Second

// Handler is the whole HTTP surface: the routes behind the security
// headers, the body limits and the request metrics.
func (p *Platform) Handler() http.Handler {
	hsts := p.Cfg.TLSCert != "" || isHTTPS(p.Cfg.PublicURL)
	return securityHeaders(hsts)(httpMetrics(p.Metrics)(limitBody(p.Mux)))
}

// Close releases everything in reverse order of opening.
func (p *Platform) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// HTTPAddr is the bound HTTP address.
func (p *Platform) HTTPAddr() string { return p.httpLn.Addr().String() }

// warnOnly passes on warnings and errors only: the embedded NATS server's
// notices (its banner, its configuration) would drown Passerelle's own.
type warnOnly struct{ slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{w.Handler.WithAttrs(as)} }
func (w warnOnly) WithGroup(g string) slog.Handler       { return warnOnly{w.Handler.WithGroup(g)} }

// TLSConfig is the server TLS configuration, nil without a certificate.
func (p *Platform) TLSConfig() (*tls.Config, error) {
	if p.Cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(p.Cfg.TLSCert, p.Cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("PASSERELLE_TLS_CERT: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// openProfiles loads the FHIR package — built in, or PASSERELLE_PROFILES_DIR
// — and the validator driven by its snapshots. A package that does not load
// stops start-up.
func (p *Platform) openProfiles() error {
	pkg := fhirprofiles.FS()
	name := "PASSERELLE_PROFILES_DIR"
	if p.Cfg.ProfilesDir != "" {
		pkg = os.DirFS(p.Cfg.ProfilesDir)
	}
	reg, err := profile.Load(pkg)
	if err != nil {
		return fmt.Errorf("%s: FHIR package: %v", name, err)
	}
	v, err := validate.New(reg)
	if err != nil {
		return fmt.Errorf("%s: validator: %v", name, err)
	}
	p.Profiles = reg
	p.Validator = validate.Bundles{V: v}
	return nil
}

// notice tells its waiters that something happened: next returns a channel
// closed at the next fire.
type notice struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *notice) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *notice) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
