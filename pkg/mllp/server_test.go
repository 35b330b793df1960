package mllp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	// The fuzzing engine keeps its own goroutines around its target: the
	// leak check is for normal runs.
	fuzzing := flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true"
	if code == 0 && !fuzzing {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for the goroutines of servers and
// connections to end and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "passerelle/pkg/mllp.(*Server)") || strings.Contains(g, "passerelle/pkg/mllp.(*conn)") ||
				strings.Contains(g, "passerelle/pkg/mllp.Benchmark") ||
				strings.Contains(g, "passerelle/pkg/mllp.Test") && !strings.Contains(g, "leakedGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger writes to the test's log and to a buffer the test can inspect.
type testLogger struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func (l *testLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestLogger(t testing.TB) (*slog.Logger, *testLogger) {
	tl := &testLogger{t: t}
	return slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelDebug})), tl
}

// msh returns a small HL7 message with the given control id.
func msh(id string) []byte {
	return []byte("MSH|^~\\&|GAM|CHX^420000002^FINESS|PASSERELLE|CPTS|20261003153000||ADT^A03^ADT_A03|" + id +
		"|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\rPID|1||000123456^^^CH&2.999&ISO^PI||TESTSECRET^MARIE\r")
}

// ackFor is the trivial handler's answer.
func ackFor(msg []byte) []byte { return []byte("MSH|^~\\&|ACK\rMSA|AA|" + ControlID(msg) + "\r") }

var echo = HandlerFunc(func(_ context.Context, _ ConnInfo, msg []byte) []byte { return ackFor(msg) })

// start runs srv on 127.0.0.1:0 until the test ends (or stop is called) and
// returns its address.
func start(t testing.TB, srv *Server) (addr string, stop func() error) {
	t.Helper()
	if srv.Logger == nil {
		srv.Logger, _ = newTestLogger(t)
	}
	srv.Addr = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server not ready")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				err = errors.New("Serve did not return")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return srv.ListenerAddr().String(), stop
}

type client struct {
	t  testing.TB
	nc net.Conn
	r  *Reader
	w  *Writer
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return newClient(t, nc)
}

func newClient(t testing.TB, nc net.Conn) *client {
	return &client{t: t, nc: nc, r: NewReader(nc, 0), w: NewWriter(nc)}
}

func (c *client) send(msg []byte) {
	c.t.Helper()
	if err := c.w.WriteMessage(msg); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.r.ReadMessage()
}

func (c *client) expectAck(id string) {
	c.t.Helper()
	ack, err := c.read()
	if err != nil {
		c.t.Fatalf("reading the ACK of %s: %v", id, err)
	}
	if want := "MSA|AA|" + id + "\r"; !bytes.HasSuffix(ack, []byte(want)) {
		c.t.Fatalf("ACK = %q, want one ending %q", ack, want)
	}
}

// expectClosed checks that the server closes the connection without writing.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.nc)
	if len(b) > 0 {
		c.t.Fatalf("server wrote %q before closing", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection still open")
	}
}

func TestConcurrentConnectionsInOrder(t *testing.T) {
	var mu sync.Mutex
	active, peak := 0, 0
	h := HandlerFunc(func(_ context.Context, _ ConnInfo, msg []byte) []byte {
		mu.Lock()
		active++
		peak = max(peak, active)
		mu.Unlock()
		defer func() { mu.Lock(); active--; mu.Unlock() }()
		return ackFor(msg)
	})
	// Every connection comes from 127.0.0.1: lift the per-address limit.
	addr, _ := start(t, &Server{Handler: h, MaxConnsPerAddr: 64})
	const conns, msgs = 20, 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			r, w := NewReader(nc, 0), NewWriter(nc)
			for i := 0; i < msgs; i++ {
				id := fmt.Sprintf("C%02dM%03d", c, i)
				if err := w.WriteMessage(msh(id)); err != nil {
					errs <- err
					return
				}
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				ack, err := r.ReadMessage()
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
				if !bytes.HasSuffix(ack, []byte("MSA|AA|"+id+"\r")) {
					errs <- fmt.Errorf("connection %d got %q for %s", c, ack, id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("peak concurrent handlers: %d", peak)
}

func TestFrameSplitAcrossWrites(t *testing.T) {
	addr, _ := start(t, &Server{Handler: echo})
	c := dial(t, addr)
	framed := append(append([]byte{StartBlock}, msh("SPLIT1")...), EndBlock, CarriageReturn)
	framed = append([]byte("\r\n"), framed...) // junk before the frame
	for i := 0; i < len(framed); i += 7 {
		if _, err := c.nc.Write(framed[i:min(i+7, len(framed))]); err != nil {
			t.Fatal(err)
		}
	}
	c.expectAck("SPLIT1")
	// The end block pair itself split across writes.
	c.nc.Write(append([]byte{StartBlock}, msh("SPLIT2")...))
	c.nc.Write([]byte{EndBlock})
	c.nc.Write([]byte{CarriageReturn})
	c.expectAck("SPLIT2")
}

func TestTwoFramesInOneWrite(t *testing.T) {
	var mu sync.Mutex
	var order []string
	h := HandlerFunc(func(_ context.Context, _ ConnInfo, msg []byte) []byte {
		mu.Lock()
		order = append(order, ControlID(msg))
		mu.Unlock()
		return ackFor(msg)
	})
	addr, _ := start(t, &Server{Handler: h})
	c := dial(t, addr)
	var buf bytes.Buffer
	WriteFrame(&buf, msh("FIRST"))
	buf.WriteString("\r\n")
	WriteFrame(&buf, msh("SECOND"))
	if _, err := c.nc.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	c.expectAck("FIRST")
	c.expectAck("SECOND")
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "FIRST,SECOND" {
		t.Errorf("handled in order %v", order)
	}
}

type oversizeEcho struct {
	HandlerFunc
	mu    sync.Mutex
	heads []string
	sizes []int64
}

func (o *oversizeEcho) ServeMLLPOversize(_ context.Context, _ ConnInfo, head []byte, size int64) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.heads = append(o.heads, string(head))
	o.sizes = append(o.sizes, size)
	return []byte("MSH|^~\\&|ACK\rMSA|AR|" + ControlID(head) + "\r")
}

func bigMessage(id string, n int) []byte {
	return append(msh(id), bytes.Repeat([]byte("OBX|1|ED|PDF||^AP^^Base64^JVBERi0xLjQK\r"), n)...)
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	logger, logs := newTestLogger(t)
	addr, _ := start(t, &Server{Handler: echo, MaxMessageSize: 1024, Logger: logger})
	c := dial(t, addr)
	c.send(msh("SMALL"))
	c.expectAck("SMALL")
	c.send(bigMessage("BIG1", 100))
	c.expectClosed()
	if !strings.Contains(logs.String(), "too large") || !strings.Contains(logs.String(), "control_id=BIG1") {
		t.Errorf("oversize not logged with its control id:\n%s", logs)
	}
}

func TestOversizedFrameAnswered(t *testing.T) {
	h := &oversizeEcho{HandlerFunc: echo}
	addr, _ := start(t, &Server{Handler: h, MaxMessageSize: 1024})
	c := dial(t, addr)
	big := bigMessage("BIG2", 1000) // 40 kB: several reads
	c.send(big)
	ack, err := c.read()
	if err != nil || !bytes.HasSuffix(ack, []byte("MSA|AR|BIG2\r")) {
		t.Fatalf("oversize ACK = %q, %v", ack, err)
	}
	// The connection goes on.
	c.send(msh("AFTER"))
	c.expectAck("AFTER")
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sizes) != 1 || h.sizes[0] != int64(len(big)) || !strings.HasPrefix(string(big), h.heads[0]) {
		t.Errorf("oversize handler got sizes %v", h.sizes)
	}
}

func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var finished sync.WaitGroup
	finished.Add(1)
	h := HandlerFunc(func(ctx context.Context, _ ConnInfo, msg []byte) []byte {
		if ControlID(msg) != "SLOW" {
			return ackFor(msg)
		}
		defer finished.Done()
		close(started)
		select {
		case <-release:
		case <-ctx.Done():
			return nil
		}
		return ackFor(msg)
	})
	addr, stop := start(t, &Server{Handler: h})
	idle := dial(t, addr)
	idle.send(msh("IDLE"))
	idle.expectAck("IDLE")
	busy := dial(t, addr)
	busy.send(msh("SLOW"))
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The idle connection is closed at once; Serve waits for the handler.
	idle.expectClosed()
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) while a handler was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	// No new connection is accepted.
	if nc, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := nc.Read(make([]byte, 1)); n > 0 {
			t.Error("new connection served during shutdown")
		}
		nc.Close()
	}
	close(release)
	busy.expectAck("SLOW")
	busy.expectClosed()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	finished.Wait()
}

func TestShutdownTimeoutCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, _ ConnInfo, msg []byte) []byte {
		close(started)
		<-ctx.Done()
		return nil
	})
	addr, stop := start(t, &Server{Handler: h, ShutdownTimeout: 50 * time.Millisecond})
	c := dial(t, addr)
	c.send(msh("STUCK"))
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	c.expectClosed()
}

func TestIdleTimeoutClosesIdleConnection(t *testing.T) {
	addr, _ := start(t, &Server{Handler: echo, IdleTimeout: 150 * time.Millisecond})
	c := dial(t, addr)
	c.send(msh("ONE"))
	c.expectAck("ONE")
	c.expectClosed()
	// A frame that arrives whole within the frame timeout is served, however
	// long it waits between its pieces.
	c2 := dial(t, addr)
	framed := append(append([]byte{StartBlock}, msh("SLOWLY")...), EndBlock, CarriageReturn)
	for i := 0; i < len(framed); i += len(framed)/4 + 1 {
		c2.nc.Write(framed[i:min(i+len(framed)/4+1, len(framed))])
		time.Sleep(60 * time.Millisecond) // pacing the sender
	}
	c2.expectAck("SLOWLY")
}

// trickle writes b one byte every interval until the server closes the
// connection, and reports whether it did before the bytes ran out.
func trickle(c *client, b []byte, interval time.Duration) bool {
	for _, x := range b {
		if _, err := c.nc.Write([]byte{x}); err != nil {
			return true
		}
		time.Sleep(interval) // the slow client's pace
	}
	// Every byte went; the server may still close now.
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.nc.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestSlowLorisIsCut: a client that sends one byte every 40 ms, well within
// any per-byte silence limit, is cut once its frame (or its wait between
// frames) has lasted too long in all.
func TestSlowLorisIsCut(t *testing.T) {
	logger, logs := newTestLogger(t)
	addr, _ := start(t, &Server{Handler: echo, Logger: logger, IdleTimeout: 300 * time.Millisecond, FrameTimeout: 300 * time.Millisecond})
	// 250 bytes at 40 ms: 10 s if nothing cuts it.
	inFrame := append([]byte{StartBlock}, bytes.Repeat([]byte("x"), 250)...)
	if !trickle(dial(t, addr), inFrame, 40*time.Millisecond) {
		t.Error("a frame trickled byte by byte held its connection to the end")
	}
	// Bytes outside any frame do not keep an idle connection alive either.
	if !trickle(dial(t, addr), bytes.Repeat([]byte("\r"), 250), 40*time.Millisecond) {
		t.Error("noise between frames held an idle connection to the end")
	}
	if !strings.Contains(logs.String(), "timed out") {
		t.Errorf("the cut is not logged:\n%s", logs)
	}
}

// TestHandshakeTimeout: a client that opens a TLS connection and says
// nothing is cut by the handshake timeout, not kept for the idle timeout.
func TestHandshakeTimeout(t *testing.T) {
	serverCert, _ := certificate(t, "passerelle.example.invalid", true)
	addr, _ := start(t, &Server{Handler: echo, IdleTimeout: time.Hour, HandshakeTimeout: 200 * time.Millisecond,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert}}})
	c := dial(t, addr)
	c.expectClosed()
}

// dialFrom connects from a chosen loopback address (every 127/8 address is
// local on Linux), so a test can play two hosts.
func dialFrom(t testing.TB, from, addr string) (*client, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return newClient(t, nc), nil
}

// TestHalfOpenConnectionsDoNotLockOutOthers: one host opening many
// connections that never send anything holds only its own share of the
// slots; another host is still served.
func TestHalfOpenConnectionsDoNotLockOutOthers(t *testing.T) {
	logger, logs := newTestLogger(t)
	addr, _ := start(t, &Server{Handler: echo, Logger: logger, MaxConns: 6, MaxConnsPerAddr: 2})
	var held []*client
	for range 10 {
		c, err := dialFrom(t, "127.0.0.2", addr)
		if err != nil {
			t.Skipf("cannot bind 127.0.0.2: %v", err)
		}
		held = append(held, c)
	}
	// Once the server has seen all ten, the first two are held, the others
	// closed; a second host then gets a slot.
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "limit of the remote address reached") < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not refuse the extra connections:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond) // accepting is asynchronous
	}
	other, err := dialFrom(t, "127.0.0.3", addr)
	if err != nil {
		t.Fatal(err)
	}
	other.send(msh("OTHER"))
	other.expectAck("OTHER")
	// The first host's held connections still work.
	held[0].send(msh("HELD"))
	held[0].expectAck("HELD")
}

func TestNilAckAndPanicCloseConnection(t *testing.T) {
	logger, logs := newTestLogger(t)
	h := HandlerFunc(func(_ context.Context, _ ConnInfo, msg []byte) []byte {
		switch ControlID(msg) {
		case "NIL":
			return nil
		case "PANIC":
			panic("handler bug")
		}
		return ackFor(msg)
	})
	addr, _ := start(t, &Server{Handler: h, Logger: logger})
	for _, id := range []string{"NIL", "PANIC"} {
		c := dial(t, addr)
		c.send(msh(id))
		c.expectClosed()
	}
	c := dial(t, addr)
	c.send(msh("OK"))
	c.expectAck("OK")
	if !strings.Contains(logs.String(), "handler bug") {
		t.Error("panic not logged")
	}
	if strings.Contains(logs.String(), "TESTSECRET") {
		t.Errorf("message contents logged:\n%s", logs)
	}
}

func TestMaxConns(t *testing.T) {
	addr, _ := start(t, &Server{Handler: echo, MaxConns: 2})
	a, b := dial(t, addr), dial(t, addr)
	a.send(msh("A"))
	a.expectAck("A")
	b.send(msh("B"))
	b.expectAck("B")
	third := dial(t, addr)
	third.expectClosed()
	b.nc.Close()
	// Once a slot is free, a new connection is served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := dial(t, addr)
		d.send(msh("D"))
		if ack, err := d.read(); err == nil {
			if !bytes.HasSuffix(ack, []byte("MSA|AA|D\r")) {
				t.Fatalf("ACK %q", ack)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot freed")
		}
		time.Sleep(20 * time.Millisecond) // the server notices the close asynchronously
	}
}

func TestServeErrors(t *testing.T) {
	if err := (&Server{}).Serve(context.Background(), nil); err == nil {
		t.Error("Serve without a handler succeeded")
	}
	srv := &Server{Handler: echo, Addr: "127.0.0.1:0"}
	_, stop := start(t, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.Serve(context.Background(), ln); !errors.Is(err, ErrServerStarted) {
		t.Errorf("second Serve = %v", err)
	}
	stop()
	if err := (&Server{Handler: echo, Addr: "256.0.0.1:1"}).ListenAndServe(context.Background()); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

// certificate makes a self-signed certificate (a CA of its own) for tests.
func certificate(t testing.TB, cn string, server bool) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Passerelle test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

func TestTLS(t *testing.T) {
	serverCert, serverLeaf := certificate(t, "passerelle.example.invalid", true)
	clientCert, clientLeaf := certificate(t, "gam-chx.example.invalid", false)
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(clientLeaf)
	var mu sync.Mutex
	var seen []string
	h := HandlerFunc(func(_ context.Context, c ConnInfo, msg []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if c.TLS == nil {
			seen = append(seen, "no TLS")
		} else if c.PeerCertificate == nil {
			seen = append(seen, "no certificate")
		} else {
			seen = append(seen, c.PeerCertificate.Subject.CommonName)
		}
		return ackFor(msg)
	})
	addr, _ := start(t, &Server{Handler: h, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}})
	roots := x509.NewCertPool()
	roots.AddCert(serverLeaf)
	for _, certs := range [][]tls.Certificate{{clientCert}, nil} {
		nc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(t, nc)
		c.send(msh("TLS1"))
		c.expectAck("TLS1")
		c.send(msh("TLS2"))
		c.expectAck("TLS2")
		nc.Close()
	}
	// A plain-text client gets nothing.
	plain := dial(t, addr)
	plain.send(msh("PLAIN"))
	plain.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(plain.nc); bytes.Contains(b, []byte("MSA")) {
		t.Error("plain-text client answered")
	}
	mu.Lock()
	defer mu.Unlock()
	want := "gam-chx.example.invalid,gam-chx.example.invalid,no certificate,no certificate"
	if strings.Join(seen, ",") != want {
		t.Errorf("handler saw %v, want %s", seen, want)
	}
}

func BenchmarkMLLPRoundTrip(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ack := []byte("MSH|^~\\&|PASSERELLE|CPTS|GAM|CHX|20261003153005+0200||ACK^A03^ACK|1|P|2.5\rMSA|AA|MSG000123\r")
	h := HandlerFunc(func(context.Context, ConnInfo, []byte) []byte { return ack })
	addr, _ := start(b, &Server{Handler: h, Logger: logger})
	msg, err := os.ReadFile("../hl7v2/testdata/adt-a03-cardiology-discharge.hl7")
	if err != nil {
		b.Fatal(err)
	}
	const conns = 4
	type worker struct {
		go_  chan struct{}
		done chan error
	}
	workers := make([]worker, conns)
	for i := range workers {
		w := worker{go_: make(chan struct{}), done: make(chan error)}
		workers[i] = w
		c := dial(b, addr)
		go func() {
			for range w.go_ {
				if err := c.w.WriteMessage(msg); err != nil {
					w.done <- err
					continue
				}
				_, err := c.r.ReadMessage()
				w.done <- err
			}
		}()
	}
	defer func() {
		for _, w := range workers {
			close(w.go_)
		}
	}()
	b.SetBytes(int64(conns * len(msg)))
	b.ReportAllocs()
	// One iteration: one message on each of the four connections at once.
	for b.Loop() {
		for _, w := range workers {
			w.go_ <- struct{}{}
		}
		for _, w := range workers {
			if err := <-w.done; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(conns*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
