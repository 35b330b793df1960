package ui

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/websession"
)

// chromium finds Debian's Chromium (apt-get install -y chromium). CI
// installs it, so there a missing browser fails the test instead of
// skipping it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found, and CI is set: install it (apt-get install -y chromium)")
	}
	t.Skip("no Chromium found (apt-get install -y chromium)")
	return ""
}

// saveArtifact writes a test artefact in the test's artefact directory
// (kept with go test -artifacts) and, when set, in
// PASSERELLE_TEST_ARTIFACTS.
func saveArtifact(t *testing.T, name string, b []byte) {
	t.Helper()
	dirs := []string{t.ArtifactDir()}
	if d := os.Getenv("PASSERELLE_TEST_ARTIFACTS"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("artefact %s", p)
	}
}

// noHorizontalScroll fails when the page is wider than the 360-pixel
// viewport.
func noHorizontalScroll(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if overflow > 0 {
		t.Errorf("%s scrolls horizontally at 360 px: %d px too wide", page, overflow)
	}
}

// unlabelled lists the form fields of the page that no label names.
const unlabelled = `Array.from(document.querySelectorAll('input:not([type=hidden]),select,textarea'))
	.filter(e => e.labels.length === 0 && !e.getAttribute('aria-label')).map(e => e.name)`

func everyFieldLabelled(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](unlabelled))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if len(names) > 0 {
		t.Errorf("%s: fields without a label: %v", page, names)
	}
}

// devLogin is the platform's login: the development identity provider and
// pkg/websession (authorization code with PKCE, session cookie, CSRF),
// every development account with its password.
func devLogin(r *rig, dir *directory.Resolver, mux *http.ServeMux, base string) Sessions {
	t := r.t
	var users []devidp.User
	for _, a := range directory.DevAccounts {
		users = append(users, devidp.User{Login: a.Login, Password: a.Login})
	}
	idp, err := devidp.New(devidp.Config{DataDir: t.TempDir(), Issuer: base + "/dev-idp", Audience: "passerelle", Users: users,
		Clients: []devidp.Client{{ID: "passerelle", Secret: "secret", RedirectURIs: []string{base + websession.CallbackPath},
			PostLogoutRedirectURIs: []string{base + "/"}}}, Now: r.clock.Now, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{Issuer: idp.Issuer(), ClientID: "passerelle", HTTPClient: idp.HTTPClient(), Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := websession.New(websession.Config{Provider: v, Directory: dir, Audit: r.st, Tenant: tenant, PublicURL: base,
		ClientID: "passerelle", ClientSecret: "secret", Now: r.clock.Now, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/dev-idp/", idp.Handler())
	m.Register(mux)
	return m
}

// logIn goes through the login page of the development identity provider.
func logIn(base, user string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/"),
		// The link loads the identity provider's form: wait for that page
		// before typing, or a field found while the browser is still
		// committing the new document may be forgotten under it.
		chromedp.WaitVisible(`main a.button`),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.RunResponse(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector("main a.button").click()`))
			return err
		}),
		chromedp.WaitVisible(`input[name="username"]`),
		chromedp.SendKeys(`input[name="username"]`, user),
		chromedp.SendKeys(`input[name="password"]`, user+kb.Enter),
		// Only the pages of a logged-in user have the main navigation.
		chromedp.WaitVisible(`nav.main`))
}

// TestBrowser drives Chromium through the flagship flow on a 360-pixel
// phone screen: a nurse logs in, accepts a task, records a visit whose
// weight raises an alert, and the GP, logged in in a second browser
// context on the alerts page, sees the alert arrive without reloading.
//
// The login is the platform's (development identity provider, pkg/websession);
// the worklist's Actions and the bus feed are this package's test
// implementations over the real store.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	r := build(t, openSQLite(t), devLogin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true),
		// A French browser: the pages follow its Accept-Language.
		chromedp.Flag("lang", "fr-FR"), chromedp.Flag("accept-lang", "fr-FR,fr"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(360, 740),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	nurse, cancelNurse := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelNurse()
	phone := chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1))
	do := func(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(ctx context.Context, what string, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	screenshot := func(ctx context.Context, name string) {
		t.Helper()
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		saveArtifact(t, name, shot)
	}

	// The nurse logs in and lands on her worklist.
	do(nurse, "nurse logs in", phone, logIn(r.srv.URL, "ide.martin"), chromedp.WaitVisible(`[data-task-id="t-first"]`))
	if h := get(nurse, "worklist heading", chromedp.Text(`h1`)); h != "Mes tâches" {
		t.Errorf("worklist heading %q", h)
	}
	noHorizontalScroll(t, nurse, "worklist")
	screenshot(nurse, "worklist-360px.png")

	// The GP, in a second browser context (own cookies), opens the alerts.
	gp, cancelGP := chromedp.NewContext(nurse, chromedp.WithNewBrowserContext())
	defer cancelGP()
	do(gp, "GP logs in", phone, logIn(r.srv.URL, "dr.bernard"), chromedp.WaitVisible(`[data-task-id="t-gp"]`),
		chromedp.Navigate(r.srv.URL+"/alerts"), chromedp.WaitReady(`html[data-live-ready="1"]`),
		chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	if before := get(gp, "alerts page", chromedp.Text(`main`)); !strings.Contains(before, "Aucune alerte.") {
		t.Fatalf("the GP already has alerts: %q", before)
	}
	noHorizontalScroll(t, gp, "alerts")

	// The nurse accepts the task, then records the visit from the keyboard:
	// 77,1 kg two days after 74,6 kg.
	do(nurse, "accept", chromedp.Click(`[data-task-id="t-first"] button[value="accept"]`),
		chromedp.WaitVisible(`[data-task-id="t-first"] button[value="start"]`))
	do(nurse, "record the visit", chromedp.Navigate(r.srv.URL+"/tasks/t-first"), chromedp.WaitVisible(`#weight-kg`),
		chromedp.SendKeys(`#symptoms`, "essoufflement, chevilles gonflées"),
		chromedp.SendKeys(`#weight-kg`, "77,1"+kb.Enter),
		chromedp.WaitVisible(`.flash`))
	if flash := get(nurse, "flash", chromedp.Text(`.flash`)); !strings.Contains(flash, "Alerte transmise à Dr Louis BERNARD") {
		t.Errorf("after the visit: %q", flash)
	}
	noHorizontalScroll(t, nurse, "task page")
	everyFieldLabelled(t, nurse, "task page")
	screenshot(nurse, "task-360px.png")

	// The GP sees the alert arrive on the page she has open.
	do(gp, "alert arrives live", chromedp.WaitVisible(`[data-flag-id]`))
	alert := get(gp, "alert", chromedp.Text(`[data-flag-id]`))
	if !strings.Contains(alert, "Prise de poids de 2,5 kg en 3 jours") || !strings.Contains(alert, "TESTDURAND Marie Claire") {
		t.Errorf("alert %q", alert)
	}
	notReloaded, err := chromedp.Run(gp, chromedp.Evaluate[bool](`window.notReloaded === true`))
	if err != nil {
		t.Fatal(err)
	}
	if !notReloaded {
		t.Error("the alerts page was reloaded: the alert did not arrive live")
	}
	screenshot(gp, "alerts-360px.png")

	// The nurse logs out: the logout form carries the session's CSRF token.
	do(nurse, "log out", chromedp.Click(`nav.main button.link`), chromedp.WaitVisible(`main a.button`))
	if h := get(nurse, "after logout", chromedp.Location()); !strings.HasSuffix(h, "/") {
		t.Errorf("after logout: %s", h)
	}

	// Every page of the coordination fits the phone too.
	coord, cancelCoord := chromedp.NewContext(nurse, chromedp.WithNewBrowserContext())
	defer cancelCoord()
	do(coord, "coordinator logs in", phone, logIn(r.srv.URL, "idec.moreau"), chromedp.WaitVisible(`h1`))
	for _, path := range []string{"/coordination", "/directory", "/templates", "/discharge", "/tasks/t-free"} {
		do(coord, path, chromedp.Navigate(r.srv.URL+path), chromedp.WaitVisible(`h1`))
		noHorizontalScroll(t, coord, path)
		everyFieldLabelled(t, coord, path)
	}
}
