package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser the whole-instance browser tests drive; with
// CI set, a missing one fails the test instead of skipping it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium, and CI is set: install it (apt-get install -y chromium)")
	}
	t.Skip("no Chromium (apt-get install -y chromium)")
	return ""
}

// startBrowserPlatform starts a whole instance on a known port: the
// browser follows the public URL (the identity provider's redirects).
func startBrowserPlatform(t *testing.T) *testPlatform {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return startPlatform(t, map[string]string{"PASSERELLE_HTTP_ADDR": addr, "PASSERELLE_PUBLIC_URL": "http://" + addr})
}

// freshClick waits for sel, then queries and clicks it in one step: the
// live feed may swap a list between a query and a click, and a click on a
// node that is gone fails ("Could not find node with given id").
func freshClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(chromedp.WaitVisible(sel),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).click()`, sel)))
}

// tapTo taps sel, a link or button that loads another page, and waits
// until that page has loaded. A query made while the browser is still
// committing the new document can return a node the debugger then forgets
// ("Could not find node with given id" on the next key typed), and a script
// run then dies with its page ("Cannot find context with specified id").
func tapTo(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.RunResponse(ctx, freshClick(sel))
		return err
	})
}

// phoneBrowser starts a headless Chromium, French, with a 360×740 window,
// its profile in a temporary directory, for at most d; it ends with the test.
func phoneBrowser(t *testing.T, ctx context.Context, exe string, d time.Duration) context.Context {
	t.Helper()
	bctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(bctx,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("lang", "fr-FR"), chromedp.Flag("accept-lang", "fr-FR,fr"), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(360, 740))
	t.Cleanup(cancelAlloc)
	return alloc
}
