package main

import (
	"context"
	"fmt"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/services/intake"
	"github.com/passerelle-sante/passerelle/services/pathway"
	"github.com/passerelle-sante/passerelle/services/teams"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// service is one entry of the wiring table: a service's name for `serve`,
// and what it adds to the platform when it runs in this process (its
// routes, its consumers and its timers); add returns what to run.
type service struct {
	name string
	add  func(p *Platform) ([]func(context.Context) error, error)
}

// services are the services `serve` can run alone, wired in this order.
// Teams comes before pathway, which applies its team rules to the tasks it
// creates (pathway.Deps.Staff); the worklist comes last: its web pages use
// the intake, teams and outcomes services built above. A process without
// one of them builds it for that use only, without its consumers and
// timers (those run in their own processes).
var services = []service{
	{"intake", addIntake},
	{"teams", addTeams},
	{"pathway", addPathway},
	{"outcomes", addOutcomes},
	{"worklist", addWorklist},
}

func addIntake(p *Platform) ([]func(context.Context) error, error) {
	svc := newIntake(p)
	p.intakeSvc = svc
	svc.Register(p.Mux, p.Authn())
	svc.RegisterAdmin(p.Mux, p.Authn())
	p.API.Operations["process-message"] = intake.OperationURL
	fns := []func(context.Context) error{svc.Run}
	if p.MLLPListener != nil {
		srv, err := mllpServer(p, svc)
		if err != nil {
			return nil, err
		}
		ln := p.MLLPListener
		fns = append(fns, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	}
	return fns, nil
}

// newIntake builds the intake service. It decodes archived HL7 v2 messages
// for a replay whether or not this process listens for MLLP.
//
// On the embedded database the process is the only one, and intake applies
// messages in lanes; on PostgreSQL other replicas may consume beside it, and
// it applies one message at a time (intake.Deps.Lanes).
func newIntake(p *Platform) *intake.Service {
	lanes := 0
	if p.Cfg.DatabaseURL == "" {
		lanes = bus.DefaultLanes
	}
	return intake.New(intake.Deps{Store: p.Store, Bus: p.Bus, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant,
		Production: p.Cfg.Production(), Validator: p.Validator, PublicURL: p.Cfg.PublicURL, Dir: p.Dir, Lanes: lanes})
}

func addPathway(p *Platform) ([]func(context.Context) error, error) {
	pkg := fhirprofiles.FS()
	if p.Cfg.ProfilesDir != "" {
		pkg = os.DirFS(p.Cfg.ProfilesDir)
	}
	var v pathway.Validator
	if b, ok := p.Validator.(validate.Bundles); ok {
		v = b.V
	}
	staff := p.teamsSvc
	if staff == nil {
		staff = teams.New(teams.Deps{Store: p.Store, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant})
	}
	svc, err := pathway.New(pathway.Deps{Store: p.Store, Bus: p.Bus, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant,
		Validator: v, Package: pkg, Staff: staff})
	if err != nil {
		return nil, err
	}
	svc.Register(p.Mux, p.Authn())
	for kind, h := range svc.TimerHandlers() {
		p.Timers.Handlers[kind] = h
	}
	return []func(context.Context) error{svc.Run}, nil
}

func addWorklist(p *Platform) ([]func(context.Context) error, error) {
	registerLogin(p)
	p.API.Register(p.Mux, p.Authn())
	svc := worklist.New(worklist.Deps{Store: p.Store, Bus: p.Bus, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant, Metrics: p.Metrics})
	p.worklistSvc = svc
	svc.Register(p.Mux, p.Authn())
	p.API.Operations["acknowledge"] = worklist.OperationAcknowledge
	for kind, h := range svc.TimerHandlers() {
		p.Timers.Handlers[kind] = h
	}
	live := registerWeb(p, svc)
	return []func(context.Context) error{svc.Run, live}, nil
}

func serviceNames() string {
	var names []string
	for _, s := range services {
		names = append(names, s.name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func cmdRun(ctx context.Context, only string, args []string, stderr io.Writer) error {
	cfg, rest, err := loadConfig("run", args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	if only != "" {
		if !slices.ContainsFunc(services, func(s service) bool { return s.name == only }) {
			return fmt.Errorf("serve: unknown service %q (available: %s)", only, serviceNames())
		}
		if cfg.DatabaseURL == "" || cfg.NATSURL == "" {
			return fmt.Errorf("serve %s: a distributed deployment needs PASSERELLE_DATABASE_URL and PASSERELLE_NATS_URL", only)
		}
	}
	if cfg.Demo && only != "" {
		return fmt.Errorf("--demo runs every service in one process: use passerelle run --demo")
	}
	level := new(slog.LevelVar)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	start := time.Now()
	p, extra, err := build(ctx, cfg, only, log)
	if err != nil {
		return err
	}
	defer p.Close()
	if cfg.Demo {
		run, err := p.demo(ctx, newLogger(stderr), level)
		if err != nil {
			return err
		}
		if run != nil {
			extra = append(extra, run)
		}
	}
	banner(p, only, time.Since(start))
	return p.Serve(ctx, extra...)
}

// testHook, set by tests only, adds to a platform before it serves.
var testHook func(p *Platform)

// build opens the platform and adds the services to run (all, or only one).
func build(ctx context.Context, cfg Config, only string, log *slog.Logger) (*Platform, []func(context.Context) error, error) {
	p, err := Open(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if cfg.DevIdP() || cfg.Demo {
		// With an external issuer, --demo still registers the demo
		// accounts in the directory (docs/contract.md, "Accounts").
		n, err := directory.SeedDev(ctx, p.Store, cfg.Tenant)
		if err != nil {
			p.Close()
			return nil, nil, fmt.Errorf("development directory: %w", err)
		}
		if n > 0 {
			log.Info("development directory seeded", "resources", n)
		}
	}
	var extra []func(context.Context) error
	for _, s := range services {
		if only != "" && s.name != only {
			continue
		}
		fns, err := s.add(p)
		if err != nil {
			p.Close()
			return nil, nil, fmt.Errorf("%s: %w", s.name, err)
		}
		extra = append(extra, fns...)
	}
	if testHook != nil {
		testHook(p)
	}
	return p, extra, nil
}

// banner logs where Passerelle listens, what it uses and how to get a token.
func banner(p *Platform, only string, took time.Duration) {
	cfg := p.Cfg
	db := "embedded SQLite (" + cfg.DataDir + "/passerelle.db)"
	if cfg.DatabaseURL != "" {
		db = "PostgreSQL " + hostOf(cfg.DatabaseURL)
	}
	nats := "embedded NATS JetStream (" + cfg.DataDir + "/nats)"
	if cfg.NATSURL != "" {
		nats = "NATS " + hostOf(cfg.NATSURL)
	}
	what := "all services"
	if only != "" {
		what = "service " + only
	}
	token := "tokens from " + cfg.OIDCIssuer
	if cfg.DevIdP() {
		token = "development identity provider at " + cfg.PublicURL + "/dev-idp — token: passerelle dev token ide.martin"
	}
	mllpAddr := "off"
	if p.MLLPListener != nil {
		mllpAddr = p.MLLPListener.Addr().String()
	}
	p.Log.Info("passerelle started",
		"what", what, "http", p.HTTPAddr(), "mllp", mllpAddr, "public_url", cfg.PublicURL, "fhir", cfg.PublicURL+"/fhir",
		"database", db, "nats", nats, "identity", token, "tenant", cfg.Tenant, "env", cfg.Env,
		"startup_ms", took.Milliseconds())
}

// hostOf shows where a URL points without its credentials.
func hostOf(raw string) string {
	var hosts []string
	for _, u := range strings.Split(raw, ",") {
		u = strings.TrimSpace(u)
		if i := strings.Index(u, "://"); i >= 0 {
			u = u[i+3:]
		}
		if i := strings.LastIndex(u, "@"); i >= 0 {
			u = u[i+1:]
		}
		if i := strings.IndexAny(u, "/?"); i >= 0 {
			u = u[:i]
		}
		hosts = append(hosts, u)
	}
	return strings.Join(hosts, ",")
}
