package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestStopIsBounded: a part that does not return when asked to stop (a
// handler waiting for ever) does not keep the instance from stopping: Serve
// returns after stopGrace and names it.
func TestStopIsBounded(t *testing.T) {
	cfg := testConfig(t, nil)
	defer func(g time.Duration) { stopGrace = g }(stopGrace)
	stopGrace = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	p, extra, err := build(ctx, cfg, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer p.Close()
	stuck := make(chan struct{})
	defer close(stuck)
	extra = append(extra, func(context.Context) error { <-stuck; return nil })
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, extra...) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "still running") {
			t.Fatalf("serve: %v, want an error naming what was still running", err)
		}
		t.Log(err)
	case <-time.After(20 * time.Second):
		t.Fatal("Serve still waiting 20 s after the stop")
	}
}
