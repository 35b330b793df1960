package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/mllp"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startChild runs this test binary as `passerelle run` on dir.
func startChild(t *testing.T, dir, addr string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run")
	cmd.Env = append(os.Environ(), childEnv+"=1", "PASSERELLE_DATA_DIR="+dir, "PASSERELLE_HTTP_ADDR="+addr, "PASSERELLE_MLLP_ADDR=")
	cmd.Env = append(cmd.Env, env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("child not ready: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKilledAndRestarted: `passerelle run` is killed with SIGKILL while the
// store holds outbox rows not yet published and a due timer; restarted on
// the same data directory it publishes every row once and fires the timer
// once.
func TestKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	child := startChild(t, dir, addr)

	// Another process writes to the same SQLite database (WAL allows it),
	// committing events and a due timer, and the server is killed at once:
	// its relay has had no wake-up for these rows.
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	err = s.Tx(context.Background(), func(tx store.Tx) error {
		for i := range n {
			if err := tx.Emit(context.Background(), store.Event{Subject: bus.ResourceSubject("demo", "Task", bus.OpCreated),
				MsgID: fmt.Sprintf("Task/k%d/_history/1", i), Key: fmt.Sprintf("Task/k%d", i), Data: []byte(`{"resourceType":"Task"}`)}); err != nil {
				return err
			}
		}
		return tx.Schedule(context.Background(), store.Timer{Key: "crash/timer", Tenant: "demo", Kind: "test.touch", Due: time.Now().Add(-time.Second)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	backlog, _ := s.Outbox().Backlog(context.Background())
	t.Logf("killed with %d of %d events unpublished", backlog, n)
	_ = s.Close()

	child = startChild(t, dir, addr)
	s, err = sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := s.Outbox().Backlog(context.Background())
		_, terr := s.Read(context.Background(), "Basic", "fired-crash-timer")
		if b == 0 && terr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart: backlog %d, timer fired: %v", b, terr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = s.Close()
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("child exit after SIGTERM: %v", err)
	}

	// Read the stream from the embedded server's store.
	srv, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(dir, "nats"), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, bus.StreamFHIR)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	ids := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err == nil && strings.HasPrefix(m.Header.Get(bus.HeaderMsgID), "Task/k") {
			ids[m.Header.Get(bus.HeaderMsgID)]++
		}
	}
	if len(ids) != n {
		t.Errorf("%d distinct events published, want %d", len(ids), n)
	}
	for id, c := range ids {
		if c != 1 {
			t.Errorf("%s published %d times", id, c)
		}
	}
	// The timer fired once.
	s, _ = sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	defer s.Close()
	page, _ := s.Search(context.Background(), store.Query{Type: "Basic", Total: true})
	if page.Total != 1 {
		t.Errorf("%d timer effects, want 1", page.Total)
	}
}

// TestKilledBetweenStoreAndAnswer: the server stores a discharge message and
// dies before answering; the hospital re-sends it to the restarted server,
// gets the answer, and the message is applied exactly once.
func TestKilledBetweenStoreAndAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir, addr := t.TempDir(), freeAddr(t)
	child := startChild(t, dir, addr, "PASSERELLE_TEST_KILL_AFTER_ACCEPT=1")
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	send := func() (*http.Response, error) {
		tok := mintFromDir(t, dir, addr, "chu-demo-dpi")
		req, _ := http.NewRequest("POST", "http://"+addr+"/fhir/$process-message", strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/fhir+json")
		return http.DefaultClient.Do(req)
	}
	if res, err := send(); err == nil {
		res.Body.Close()
		t.Fatalf("the first send was answered (%d): the server should have died first", res.StatusCode)
	}
	_ = child.Wait()

	child = startChild(t, dir, addr)
	defer func() { _ = child.Process.Signal(syscall.SIGTERM); _ = child.Wait() }()
	res, err := send()
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("re-send: %d", res.StatusCode)
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, _, _ := s.Messages().List(context.Background(), store.MessageFilter{})
		if len(list) == 1 && list[0].Status == "applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive: %+v", list)
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, _ := s.Search(context.Background(), store.Query{Type: "Encounter", Total: true})
	if page.Total != 1 || page.Resources[0].Version != 2 {
		t.Fatalf("%d encounters (version %d), want one applied once", page.Total, page.Resources[0].Version)
	}
}

func mintFromDir(t *testing.T, dir, addr, who string) string {
	t.Helper()
	var out strings.Builder
	if code := Main([]string{"dev", "token", who, "--data-dir", dir, "--http-addr", addr}, &out, io.Discard); code != 0 {
		t.Fatalf("dev token: exit %d", code)
	}
	return strings.TrimSpace(out.String())
}

// TestKilledBetweenStoreAndACK: the server stores an A03 and dies before
// acknowledging it; the engine retries on the restarted server, gets an AA,
// and the discharge is applied once.
func TestKilledBetweenStoreAndACK(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir, addr, mllpAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	child := startChild(t, dir, addr, "PASSERELLE_TEST_KILL_AFTER_ACCEPT=1", "PASSERELLE_MLLP_ADDR="+mllpAddr)
	msg, err := os.ReadFile("../intake/testdata/hl7/adt-a03-cardiology-discharge.hl7")
	if err != nil {
		t.Fatal(err)
	}
	send := func() (string, error) {
		c, err := net.Dial("tcp", mllpAddr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		if err := mllp.WriteFrame(c, msg); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		ack, err := mllp.NewReader(c, 1<<20).ReadMessage()
		return string(ack), err
	}
	if ack, err := send(); err == nil {
		t.Fatalf("acknowledged before dying: %q", ack)
	}
	_ = child.Wait()
	child = startChild(t, dir, addr, "PASSERELLE_MLLP_ADDR="+mllpAddr)
	defer func() { _ = child.Process.Signal(syscall.SIGTERM); _ = child.Wait() }()
	ack, err := send()
	if err != nil || !strings.Contains(ack, "MSA|AA|MSG000123") {
		t.Fatalf("retry: %q, %v", ack, err)
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "passerelle.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, _, _ := s.Messages().List(context.Background(), store.MessageFilter{})
		if len(list) == 1 && list[0].Status == "applied" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive: %d messages", len(list))
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, _ := s.Search(context.Background(), store.Query{Type: "Encounter", Total: true})
	if page.Total != 1 || page.Resources[0].Version != 2 {
		t.Fatalf("%d encounters, want one applied once", page.Total)
	}
}
