package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// childEnv makes the test binary act as the passerelle command, so that a
// test can run it as a real process and kill it.
const childEnv = "PASSERELLE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		// A timer kind the crash test schedules: it writes a Basic resource
		// named after the timer.
		testHook = func(p *Platform) {
			p.Timers.Handlers["test.touch"] = func(ctx context.Context, tx store.Tx, t store.Timer) error {
				_, err := tx.Create(ctx, t.Tenant, json.RawMessage(`{"resourceType":"Basic","id":"fired-`+strings.ReplaceAll(t.Key, "/", "-")+`"}`))
				return err
			}
		}
		if os.Getenv("PASSERELLE_TEST_KILL_AFTER_ACCEPT") == "1" {
			intake.AfterAccept = func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		}
		os.Exit(Main(flag.Args(), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testPlatform runs a whole instance in process on a random port with its
// own data directory (embedded SQLite and NATS, development identity).
type testPlatform struct {
	*Platform
	base string
	stop func()
}

// testConfig is the configuration of an instance in a test: a data
// directory of its own, HTTP and MLLP on free loopback ports, then env;
// "--demo": "true" is the flag.
func testConfig(t *testing.T, env map[string]string) Config {
	t.Helper()
	dir := t.TempDir()
	get := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		switch k {
		case "PASSERELLE_DATA_DIR":
			return dir, true
		case "PASSERELLE_HTTP_ADDR", "PASSERELLE_MLLP_ADDR":
			return "127.0.0.1:0", true
		}
		return "", false
	}
	var args []string
	if env["--demo"] == "true" {
		args = append(args, "--demo")
	}
	cfg, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), args, get)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startPlatform(t *testing.T, env map[string]string) *testPlatform {
	t.Helper()
	cfg := testConfig(t, env)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, extra, err := build(ctx, cfg, "", log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if cfg.Demo {
		run, err := p.demo(ctx, log, nil)
		if err != nil {
			cancel()
			p.Close()
			t.Fatal(err)
		}
		if run != nil {
			extra = append(extra, run)
		}
	}
	// The public URL follows the bound port.
	base := "http://" + p.HTTPAddr()
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, extra...) }()
	tp := &testPlatform{Platform: p, base: base}
	tp.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		p.Close()
	}
	t.Cleanup(func() {
		if tp.stop != nil {
			tp.stop()
		}
	})
	return tp
}

func (tp *testPlatform) token(t *testing.T, who string) string {
	t.Helper()
	tok, err := tp.IdP.Mint(who, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, r.body)
	}
	return m
}

func (tp *testPlatform) do(t *testing.T, method, path, token, body string, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, tp.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, b}
}

// outcome checks r is an OperationOutcome with status and, if given, an
// issue whose expression is expr.
func outcome(t *testing.T, r response, status int, expr string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("content type %q", ct)
	}
	m := r.json(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome: %s", r.body)
	}
	if expr == "" {
		return
	}
	for _, i := range m["issue"].([]any) {
		for _, e := range i.(map[string]any)["expression"].([]any) {
			if e == expr {
				return
			}
		}
	}
	t.Errorf("no issue with expression %q: %s", expr, r.body)
}

func (tp *testPlatform) count(t *testing.T, typ string) int {
	t.Helper()
	page, err := tp.Store.Search(context.Background(), store.Query{Type: typ, Total: true, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	return page.Total
}

func TestHealthReadyMetrics(t *testing.T) {
	tp := startPlatform(t, nil)
	if r := tp.do(t, "GET", "/healthz", "", ""); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := tp.do(t, "GET", "/readyz", "", ""); r.status != 200 || !strings.Contains(string(r.body), "ready") {
		t.Errorf("readyz %d %s", r.status, r.body)
	}
	tp.do(t, "GET", "/fhir/metadata", "", "")
	r := tp.do(t, "GET", "/metrics", "", "")
	for _, want := range []string{`passerelle_http_requests_total{code="200",route="GET /fhir/metadata"}`, "passerelle_outbox_backlog", "passerelle_bus_published_total"} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetadataListsWhatIsSupported(t *testing.T) {
	tp := startPlatform(t, nil)
	r := tp.do(t, "GET", "/fhir/metadata", "", "")
	if r.status != 200 {
		t.Fatalf("metadata %d", r.status)
	}
	var cs struct {
		ResourceType string
		FhirVersion  string
		Rest         []struct {
			Resource []struct {
				Type        string
				SearchParam []struct{ Name, Type string }
			}
		}
	}
	if err := json.Unmarshal(r.body, &cs); err != nil || cs.ResourceType != "CapabilityStatement" || cs.FhirVersion != "4.0.1" {
		t.Fatalf("not a CapabilityStatement: %v %s", err, r.body[:100])
	}
	params := map[string]map[string]string{}
	for _, res := range cs.Rest[0].Resource {
		params[res.Type] = map[string]string{}
		for _, p := range res.SearchParam {
			params[res.Type][p.Name] = p.Type
		}
	}
	for typ, names := range map[string][]string{
		"Patient": {"identifier"}, "EpisodeOfCare": {"patient", "status"}, "CarePlan": {"patient", "status"},
		"CareTeam": {"patient"}, "Task": {"owner", "status", "patient", "focus"}, "Observation": {"patient", "code"},
		"Encounter": {"patient"}, "AuditEvent": {"patient"},
	} {
		for _, n := range names {
			if params[typ][n] == "" {
				t.Errorf("CapabilityStatement lacks %s?%s", typ, n)
			}
		}
	}
}

func TestAuthentication(t *testing.T) {
	tp := startPlatform(t, nil)
	r := tp.do(t, "GET", "/fhir/Patient", "", "")
	outcome(t, r, 401, "")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	outcome(t, tp.do(t, "GET", "/fhir/Patient", "not.a.token", ""), 401, "")
	good := tp.token(t, "coord.cpts")
	tampered := good[:len(good)-4] + "AAAA"
	outcome(t, tp.do(t, "GET", "/fhir/Patient", tampered, ""), 401, "")
	// A valid token of a client that is not in the directory: 403, never a
	// default role.
	outcome(t, tp.do(t, "GET", "/fhir/Patient", tp.token(t, "passerelle"), ""), 403, "")
	if r := tp.do(t, "GET", "/fhir/Patient", good, ""); r.status != 200 {
		t.Errorf("coordinator search: %d %s", r.status, r.body)
	}
}

func TestBadInput(t *testing.T) {
	tp := startPlatform(t, nil)
	coord := tp.token(t, "coord.cpts")
	before := tp.count(t, "Practitioner")
	outcome(t, tp.do(t, "POST", "/fhir/Practitioner", coord, `{"resourceType":"Practitioner","name":[{"family":"X"}`), 400, "")
	outcome(t, tp.do(t, "POST", "/fhir/Practitioner", coord, `{"resourceType":"Patient"}`), 400, "resourceType")
	outcome(t, tp.do(t, "POST", "/fhir/Practitioner", coord, `[1,2]`), 400, "")
	outcome(t, tp.do(t, "GET", "/fhir/Practitioner?shoe-size=42", coord, ""), 400, "shoe-size")
	outcome(t, tp.do(t, "GET", "/fhir/Practitioner?_count=abc", coord, ""), 400, "_count")
	outcome(t, tp.do(t, "GET", "/fhir/Nonsense/1", coord, ""), 404, "")
	if got := tp.count(t, "Practitioner"); got != before {
		t.Fatalf("rejected requests wrote: %d practitioners, want %d", got, before)
	}
	// Create, then update with a stale If-Match.
	r := tp.do(t, "POST", "/fhir/Practitioner", coord, `{"resourceType":"Practitioner","name":[{"family":"NOUVEAU"}]}`)
	if r.status != 201 || r.header.Get("ETag") != `W/"1"` || r.header.Get("Location") == "" {
		t.Fatalf("create: %d %v %s", r.status, r.header, r.body)
	}
	id := r.json(t)["id"].(string)
	body := `{"resourceType":"Practitioner","id":"` + id + `","name":[{"family":"RENOMME"}]}`
	if r := tp.do(t, "PUT", "/fhir/Practitioner/"+id, coord, body, "If-Match", `W/"1"`); r.status != 200 || r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("update: %d %s", r.status, r.body)
	}
	outcome(t, tp.do(t, "PUT", "/fhir/Practitioner/"+id, coord, body, "If-Match", `W/"1"`), 412, "")
	outcome(t, tp.do(t, "PUT", "/fhir/Practitioner/"+id, coord, body, "If-Match", `yesterday`), 400, "If-Match")
	outcome(t, tp.do(t, "PUT", "/fhir/Practitioner/other", coord, body), 400, "Practitioner.id")
	if r := tp.do(t, "GET", "/fhir/Practitioner/"+id+"/_history/1", coord, ""); r.status != 200 || !strings.Contains(string(r.body), "NOUVEAU") {
		t.Errorf("vread 1: %d %s", r.status, r.body)
	}
	if r := tp.do(t, "GET", "/fhir/Practitioner/"+id+"/_history", coord, ""); r.status != 200 || strings.Count(string(r.body), `"fullUrl"`) != 2 {
		t.Errorf("history: %d %s", r.status, r.body)
	}
	// Only the coordinator manages the directory.
	outcome(t, tp.do(t, "PUT", "/fhir/Practitioner/"+id, tp.token(t, "ide.martin"), body, "If-Match", `W/"2"`), 403, "")
}

func TestSearchPagingLinks(t *testing.T) {
	tp := startPlatform(t, nil)
	coord := tp.token(t, "coord.cpts")
	seen := map[string]bool{}
	next := "/fhir/PractitionerRole?_count=3&_total=accurate"
	pages := 0
	for next != "" && pages < 10 {
		r := tp.do(t, "GET", next, coord, "")
		if r.status != 200 {
			t.Fatalf("search: %d %s", r.status, r.body)
		}
		var b struct {
			Total int
			Link  []struct{ Relation, URL string }
			Entry []struct{ Resource struct{ ID string } }
		}
		_ = json.Unmarshal(r.body, &b)
		if b.Total != 8 {
			t.Errorf("total %d, want 8 development roles", b.Total)
		}
		for _, e := range b.Entry {
			if seen[e.Resource.ID] {
				t.Errorf("%s on two pages", e.Resource.ID)
			}
			seen[e.Resource.ID] = true
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = strings.TrimPrefix(l.URL, tp.Cfg.PublicURL)
			}
		}
		pages++
	}
	if len(seen) != 8 || pages != 3 {
		t.Errorf("%d roles over %d pages, want 8 over 3", len(seen), pages)
	}
}

func TestAccessAndAudit(t *testing.T) {
	tp := startPlatform(t, nil)
	nurse := tp.token(t, "ide.martin")
	// A nurse's search is narrowed to her patients: in no care team, none.
	if r := tp.do(t, "GET", "/fhir/Patient?_total=accurate", nurse, ""); r.status != 200 || r.json(t)["total"] != float64(0) {
		t.Errorf("nurse's patients: %d %s", r.status, r.body)
	}
	// Clinical data not tied to a patient is not hers to search.
	outcome(t, tp.do(t, "GET", "/fhir/MessageHeader", nurse, ""), 403, "")
	if r := tp.do(t, "GET", "/fhir/Task?status=requested", nurse, ""); r.status != 200 {
		t.Errorf("nurse's own tasks: %d %s", r.status, r.body)
	}
	outcome(t, tp.do(t, "GET", "/fhir/Patient", tp.token(t, "admin"), ""), 403, "")
	// A hospital system does not browse records.
	outcome(t, tp.do(t, "GET", "/fhir/Patient", tp.token(t, "chu-demo-dpi"), ""), 403, "")
	n, err := VerifyAudit(context.Background(), tp.Store.AuditLog())
	if err != nil || n < 4 {
		t.Fatalf("audit: %d records, %v", n, err)
	}
	recs, _ := tp.Store.AuditLog().List(context.Background(), 0, 100)
	var agents []string
	for _, r := range recs {
		agents = append(agents, r.Agent+" "+r.Outcome)
	}
	joined := strings.Join(agents, ",")
	for _, want := range []string{"PractitionerRole/pr-ide-martin 4", "PractitionerRole/pr-ide-martin 0", "Device/client-chu-demo-dpi 4"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit lacks %q: %s", want, joined)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"PASSERELLE_HTTP_ADDR":    {"PASSERELLE_HTTP_ADDR": "nonsense"},
		"PASSERELLE_DATABASE_URL": {"PASSERELLE_DATABASE_URL": "mysql://x"},
		"PASSERELLE_NATS_URL":     {"PASSERELLE_NATS_URL": "nats://a:4222,http://b"},
		"PASSERELLE_ENV":          {"PASSERELLE_ENV": "staging"},
		"PASSERELLE_OIDC_ISSUER":  {"PASSERELLE_ENV": "production"},
		"PASSERELLE_TLS_CERT":     {"PASSERELLE_TLS_CERT": "/nonexistent.pem"},
		"PASSERELLE_TENANT":       {"PASSERELLE_TENANT": "Bad Tenant"},
		"PASSERELLE_PUBLIC_URL":   {"PASSERELLE_PUBLIC_URL": "ftp://x"},
	}
	for name, env := range cases {
		_, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err == nil || !strings.HasPrefix(err.Error(), name+":") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line starting %s:", env, err, name)
		}
	}
	// A flag overrides the environment.
	cfg, _, err := LoadConfig(flag.NewFlagSet("t", flag.ContinueOnError), []string{"--tenant", "roanne"},
		func(k string) (string, bool) {
			if k == "PASSERELLE_TENANT" {
				return "other", true
			}
			return "", false
		})
	if err != nil || cfg.Tenant != "roanne" || cfg.PublicURL != "http://localhost:8080" {
		t.Errorf("flag override: %+v %v", cfg, err)
	}
	// Port in use and unwritable data dir stop start-up with the variable.
	tp := startPlatform(t, nil)
	_, err = Open(context.Background(), Config{HTTPAddr: tp.HTTPAddr(), DataDir: t.TempDir(), PublicURL: "http://x", OIDCClientID: "passerelle"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.HasPrefix(err.Error(), "PASSERELLE_HTTP_ADDR:") {
		t.Errorf("port in use: %v", err)
	}
	ro := t.TempDir()
	_ = os.Chmod(ro, 0o500)
	if os.Getuid() != 0 { // root writes anywhere
		_, err = Open(context.Background(), Config{HTTPAddr: "127.0.0.1:0", DataDir: ro + "/sub", PublicURL: "http://x"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.HasPrefix(err.Error(), "PASSERELLE_DATA_DIR:") {
			t.Errorf("unwritable data dir: %v", err)
		}
	}
	f, _ := os.CreateTemp(t.TempDir(), "file")
	_, err = Open(context.Background(), Config{HTTPAddr: "127.0.0.1:0", DataDir: f.Name(), PublicURL: "http://x"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.HasPrefix(err.Error(), "PASSERELLE_DATA_DIR:") {
		t.Errorf("data dir is a file: %v", err)
	}
}
