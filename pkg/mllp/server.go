package mllp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the Server's settings.
const (
	// DefaultIdleTimeout is how long a connection may wait between two
	// messages. Hospital interface engines keep their connection open
	// between messages, often for hours, and reconnect when it drops; five
	// minutes without a message frees the slot of a sender that vanished
	// without closing.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultFrameTimeout is how long a whole frame may take to arrive once
	// its start block has come: a 1 MiB message takes well under a second
	// on any hospital link.
	DefaultFrameTimeout = 60 * time.Second
	// DefaultHandshakeTimeout bounds the TLS handshake.
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxConns         = 256
	// DefaultMaxConnsPerAddr is how many connections one remote address
	// (an IPv4 address, or an IPv6 /64) may hold at once. An interface
	// engine uses one connection per outbound feed, rarely more than a few.
	DefaultMaxConnsPerAddr = 8
	DefaultShutdownTimeout = 30 * time.Second
	defaultAddr            = ":2575"
)

// ConnInfo describes the connection a message came on.
type ConnInfo struct {
	ID         uint64 // sequence number of the connection, for logs
	RemoteAddr net.Addr
	LocalAddr  net.Addr
	// TLS is the connection state after the handshake, nil without TLS.
	TLS *tls.ConnectionState
	// PeerCertificate is the client's certificate (the first of the chain it
	// presented), nil when it presented none. Whether it was verified
	// depends on the TLSConfig's ClientAuth (VerifyClientCertIfGiven or
	// RequireAndVerifyClientCert verify it against ClientCAs).
	PeerCertificate *x509.Certificate
}

// Handler handles one message and returns the acknowledgement to send back,
// unframed. It must return only once the message is durably stored (or
// rejected): the sender forgets a message once it has its ACK. Returning nil
// sends nothing and closes the connection, so that the sender retries. The
// context is not cancelled when the server shuts down, until the shutdown
// timeout ends: a handler in progress may finish its work.
type Handler interface {
	ServeMLLP(ctx context.Context, c ConnInfo, msg []byte) []byte
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c ConnInfo, msg []byte) []byte

// ServeMLLP calls f.
func (f HandlerFunc) ServeMLLP(ctx context.Context, c ConnInfo, msg []byte) []byte {
	return f(ctx, c, msg)
}

// OversizeHandler is implemented by a Handler that answers frames larger than
// the maximum message size. head is the start of the frame (up to 4 KiB,
// enough for MSH), size its length. The returned bytes, typically an AR
// acknowledgement, are framed and sent back and the connection stays open;
// nil closes the connection.
type OversizeHandler interface {
	ServeMLLPOversize(ctx context.Context, c ConnInfo, head []byte, size int64) []byte
}

// Server is an MLLP server. Its fields must not change once Serve is
// called; the zero value of each field is its default.
type Server struct {
	// Addr is the TCP address ListenAndServe listens on, ":2575" when empty.
	Addr    string
	Handler Handler
	// TLSConfig, when set, makes the server speak TLS. Set its ClientAuth to
	// ask for client certificates (MutualTLS requires them); the one
	// presented reaches the handler in ConnInfo.
	TLSConfig *tls.Config
	// IdleTimeout is how long a connection may wait for the next frame to
	// start, counted from the connection's start or the last ACK
	// (DefaultIdleTimeout). Bytes outside a frame do not extend it.
	IdleTimeout time.Duration
	// FrameTimeout is how long a frame may take to arrive whole, counted
	// from its start block (DefaultFrameTimeout). Neither deadline is
	// pushed back by each byte received: a client trickling a byte now and
	// then (slow loris) is cut all the same.
	FrameTimeout time.Duration
	// HandshakeTimeout bounds the TLS handshake (DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds the writing of one acknowledgement
	// (DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MaxMessageSize is the largest frame content accepted
	// (DefaultMaxMessageSize).
	MaxMessageSize int
	// MaxConns is how many connections are served at once (DefaultMaxConns);
	// a connection beyond it is closed at once, and the sender retries later.
	MaxConns int
	// MaxConnsPerAddr is how many of them one remote address may hold
	// (DefaultMaxConnsPerAddr; IPv6 addresses count by /64), so that one
	// host opening connections cannot take every slot from the others.
	MaxConnsPerAddr int
	// ShutdownTimeout is how long Serve waits, once its context ends, for
	// handlers in progress before cancelling their context and closing
	// their connections (DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// Logger receives connection events, never message contents;
	// slog.Default() when nil.
	Logger *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	ready    chan struct{}
	conns    map[*conn]struct{}
	perAddr  map[netip.Addr]int
	shutdown bool
	started  bool
	nextID   atomic.Uint64
}

// ErrServerStarted is returned by a second call of Serve on the same Server.
var ErrServerStarted = errors.New("mllp: server already started")

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (s *Server) idleTimeout() time.Duration  { return orDefault(s.IdleTimeout, DefaultIdleTimeout) }
func (s *Server) frameTimeout() time.Duration { return orDefault(s.FrameTimeout, DefaultFrameTimeout) }
func (s *Server) handshakeTimeout() time.Duration {
	return orDefault(s.HandshakeTimeout, DefaultHandshakeTimeout)
}
func (s *Server) maxConnsPerAddr() int { return orDefault(s.MaxConnsPerAddr, DefaultMaxConnsPerAddr) }

func (s *Server) writeTimeout() time.Duration { return orDefault(s.WriteTimeout, DefaultWriteTimeout) }
func (s *Server) maxConns() int               { return orDefault(s.MaxConns, DefaultMaxConns) }

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) readyChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	return s.ready
}

// Ready is closed once the server listens; ListenerAddr is then set.
func (s *Server) Ready() <-chan struct{} { return s.readyChan() }

// ListenerAddr returns the address the server listens on, nil before it
// listens (see Ready). With Addr "127.0.0.1:0" it tells the port the system
// chose. (It cannot be called Addr: that is the configured address.)
func (s *Server) ListenerAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// ListenAndServe listens on Addr and serves until ctx ends; see Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	addr := s.Addr
	if addr == "" {
		addr = defaultAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mllp: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln and serves them until ctx ends. Then it
// closes ln, closes the connections waiting for a frame, lets each handler
// in progress finish and its acknowledgement be written (up to
// ShutdownTimeout), closes those connections too, and returns nil once every
// connection is closed. It returns an error if ln fails otherwise.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("mllp: Server.Handler is nil")
	}
	ready := s.readyChan()
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrServerStarted
	}
	s.started = true
	s.ln = ln
	s.conns = make(map[*conn]struct{})
	s.perAddr = make(map[netip.Addr]int)
	s.mu.Unlock()
	close(ready)

	log := s.logger()
	log.InfoContext(ctx, "mllp listening", "addr", ln.Addr().String(), "tls", s.TLSConfig != nil)

	// Handlers run under a context that outlives ctx by the shutdown grace
	// period, so that a message being stored when shutdown begins is stored
	// and acknowledged rather than left half done.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var acceptErr error
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) || isTemporary(err) {
				// Out of file descriptors and the like: back off as
				// net/http does rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.WarnContext(ctx, "mllp accept failed; retrying", "error", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-ctx.Done():
				}
				break
			}
			acceptErr = fmt.Errorf("mllp: accept: %w", err)
			break
		}
		delay = 0
		c := &conn{srv: s, nc: nc, id: s.nextID.Add(1), addr: addrKey(nc.RemoteAddr())}
		if why := s.track(c); why != "" {
			log.WarnContext(ctx, "mllp connection refused: "+why,
				"remote_addr", nc.RemoteAddr().String(), "max_conns", s.maxConns(), "max_conns_per_addr", s.maxConnsPerAddr())
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			c.serve(hctx)
		}()
	}
	ln.Close()

	// Shutdown: idle connections close now, busy ones once answered.
	s.mu.Lock()
	s.shutdown = true
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := s.ShutdownTimeout
	if grace <= 0 {
		grace = DefaultShutdownTimeout
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		log.WarnContext(ctx, "mllp shutdown timeout: cancelling handlers in progress", "timeout", grace)
		hcancel()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
	}
	log.InfoContext(ctx, "mllp stopped", "addr", ln.Addr().String())
	return acceptErr
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track admits a connection, or says why not. The per-address limit is
// checked first: connections held by one host never count against another
// host's chance of a slot beyond the global limit they share.
func (s *Server) track(c *conn) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return "shutting down"
	case s.perAddr[c.addr] >= s.maxConnsPerAddr():
		return "connection limit of the remote address reached"
	case len(s.conns) >= s.maxConns():
		return "connection limit reached"
	}
	s.conns[c] = struct{}{}
	s.perAddr[c.addr]++
	return ""
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.perAddr[c.addr]--; s.perAddr[c.addr] <= 0 {
		delete(s.perAddr, c.addr)
	}
	s.mu.Unlock()
}

// addrKey is what the per-address limit counts by: the IP address, or its
// /64 for IPv6, since one host commonly holds a whole /64.
func addrKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// conn is one client connection.
type conn struct {
	srv *Server
	nc  net.Conn // the TCP connection; closing it ends every read and write
	rw  net.Conn // what messages travel on: nc, or TLS over nc
	id  uint64
	// addr is the remote address as the per-address limit counts it.
	addr netip.Addr

	// busy and closed are guarded by srv.mu: a connection is busy from the
	// moment a complete frame is read until its answer is written.
	busy   bool
	closed bool
}

// closeIfIdle closes the connection unless it is handling a message; srv.mu
// is held.
func (c *conn) closeIfIdle() {
	if !c.busy && !c.closed {
		c.closed = true
		c.nc.Close()
	}
}

// setBusy marks the connection busy, or reports false when the server is
// shutting down (the frame just read is then dropped unanswered: the sender
// resends it).
func (c *conn) setBusy(busy bool) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return false
	}
	if busy && s.shutdown {
		return false
	}
	c.busy = busy
	if !busy && s.shutdown {
		c.closed = true
		c.nc.Close()
		return false
	}
	return true
}

// deadlineReader keeps the connection's read deadline: between frames, the
// idle deadline set when the connection opened or its last ACK was
// written; once a start block arrives, a deadline for the whole frame. Each
// is set once and never pushed back by the bytes that come, so a client
// that sends a byte now and then cannot hold its connection for ever.
type deadlineReader struct {
	nc      net.Conn
	frame   time.Duration
	inFrame bool
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	n, err := r.nc.Read(p)
	if !r.inFrame && n > 0 && bytes.IndexByte(p[:n], StartBlock) >= 0 {
		r.inFrame = true
		if derr := r.nc.SetReadDeadline(time.Now().Add(r.frame)); derr != nil && err == nil {
			err = derr
		}
	}
	return n, err
}

// idle starts the wait for the next frame. (Bytes of the next frame already
// read along with the last one stay under this deadline, which bounds them
// as well.)
func (r *deadlineReader) idle(d time.Duration) error {
	r.inFrame = false
	return r.nc.SetReadDeadline(time.Now().Add(d))
}

func (c *conn) serve(ctx context.Context) {
	s := c.srv
	log := s.logger().With("conn_id", c.id, "remote_addr", c.nc.RemoteAddr().String())
	defer func() {
		s.mu.Lock()
		c.closed = true
		s.mu.Unlock()
		if c.rw != nil {
			c.rw.Close() // sends the TLS close_notify, then closes nc
		}
		c.nc.Close()
	}()

	info := ConnInfo{ID: c.id, RemoteAddr: c.nc.RemoteAddr(), LocalAddr: c.nc.LocalAddr()}
	c.rw = c.nc
	if s.TLSConfig != nil {
		tc := tls.Server(c.nc, s.TLSConfig)
		c.rw = tc
		hctx, cancel := context.WithTimeout(ctx, s.handshakeTimeout())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			// A client without an acceptable certificate ends here when
			// the TLSConfig requires one: the log is the only trace.
			log.WarnContext(ctx, "mllp TLS handshake failed", "error", err)
			return
		}
		st := tc.ConnectionState()
		info.TLS = &st
		if len(st.PeerCertificates) > 0 {
			info.PeerCertificate = st.PeerCertificates[0]
		}
	}
	attrs := []any{}
	if info.PeerCertificate != nil {
		attrs = append(attrs, "client_cert_subject", info.PeerCertificate.Subject.String())
	}
	log.InfoContext(ctx, "mllp connection opened", attrs...)

	dr := &deadlineReader{nc: c.rw, frame: s.frameTimeout()}
	r := NewReader(dr, s.MaxMessageSize)
	w := NewWriter(c.rw)
	handled := 0
	for {
		if err := dr.idle(s.idleTimeout()); err != nil {
			c.logEnd(ctx, log, err, handled, r.Skipped())
			return
		}
		msg, err := r.ReadMessage()
		if err != nil {
			var tooLarge *TooLargeError
			if errors.As(err, &tooLarge) {
				if !c.answerOversize(ctx, log, info, w, tooLarge) {
					return
				}
				continue
			}
			c.logEnd(ctx, log, err, handled, r.Skipped())
			return
		}
		if !c.setBusy(true) {
			log.InfoContext(ctx, "mllp message dropped unanswered: shutting down",
				"size", len(msg), "control_id", ControlID(msg))
			return
		}
		start := time.Now()
		ack := c.handle(ctx, log, info, msg)
		if ack == nil {
			log.WarnContext(ctx, "mllp handler returned no acknowledgement; closing the connection so the sender retries",
				"size", len(msg), "control_id", ControlID(msg))
			return
		}
		if err := c.write(w, ack); err != nil {
			log.WarnContext(ctx, "mllp acknowledgement not written", "error", err,
				"size", len(msg), "control_id", ControlID(msg))
			return
		}
		handled++
		log.DebugContext(ctx, "mllp message handled", "size", len(msg), "control_id", ControlID(msg),
			"duration", time.Since(start))
		if !c.setBusy(false) {
			return
		}
	}
}

func (c *conn) logEnd(ctx context.Context, log *slog.Logger, err error, handled int, skipped int64) {
	attrs := []any{"messages", handled}
	if skipped > 0 {
		attrs = append(attrs, "skipped_bytes", skipped)
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		log.InfoContext(ctx, "mllp connection closed by peer", attrs...)
	case errors.As(err, &ne) && ne.Timeout():
		log.InfoContext(ctx, "mllp connection timed out: closing", append(attrs,
			"idle_timeout", c.srv.idleTimeout(), "frame_timeout", c.srv.frameTimeout())...)
	case errors.Is(err, net.ErrClosed):
		log.InfoContext(ctx, "mllp connection closed", attrs...)
	default:
		log.InfoContext(ctx, "mllp connection ended", append(attrs, "error", err)...)
	}
}

func (c *conn) handle(ctx context.Context, log *slog.Logger, info ConnInfo, msg []byte) (ack []byte) {
	defer func() {
		if v := recover(); v != nil {
			log.ErrorContext(ctx, "mllp handler panicked", "panic", fmt.Sprint(v),
				"control_id", ControlID(msg), "stack", string(debug.Stack()))
			ack = nil
		}
	}()
	return c.srv.Handler.ServeMLLP(ctx, info, msg)
}

func (c *conn) answerOversize(ctx context.Context, log *slog.Logger, info ConnInfo, w *Writer, e *TooLargeError) bool {
	attrs := []any{"size", e.Size, "max_message_size", e.Max, "control_id", ControlID(e.Head)}
	oh, ok := c.srv.Handler.(OversizeHandler)
	if !ok {
		log.WarnContext(ctx, "mllp message too large; closing the connection", attrs...)
		return false
	}
	if !c.setBusy(true) {
		return false
	}
	var ack []byte
	func() {
		defer func() {
			if v := recover(); v != nil {
				log.ErrorContext(ctx, "mllp oversize handler panicked", "panic", fmt.Sprint(v))
				ack = nil
			}
		}()
		ack = oh.ServeMLLPOversize(ctx, info, e.Head, e.Size)
	}()
	if ack == nil {
		log.WarnContext(ctx, "mllp message too large; closing the connection", attrs...)
		return false
	}
	log.WarnContext(ctx, "mllp message too large; answered", attrs...)
	if err := c.write(w, ack); err != nil {
		log.WarnContext(ctx, "mllp acknowledgement not written", append(attrs, "error", err)...)
		return false
	}
	return c.setBusy(false)
}

func (c *conn) write(w *Writer, ack []byte) error {
	if err := c.rw.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout())); err != nil {
		return err
	}
	return w.WriteMessage(ack)
}

// ControlID returns MSH-10 of a raw HL7 v2 message, for logs: the message
// control id names a message in the sender's and the receiver's logs alike
// without carrying patient data. It returns "" when msg does not start with
// a readable MSH, and at most 64 printable ASCII characters.
func ControlID(msg []byte) string {
	msg = bytes.TrimLeft(msg, "\r\n")
	if len(msg) < 8 || !bytes.HasPrefix(msg, []byte("MSH")) {
		return ""
	}
	if i := bytes.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	sep := msg[3]
	// Fields split on the separator: [0] "MSH", [1] MSH-2, ..., [9] MSH-10.
	f := msg
	for n := 0; n < 9; n++ {
		i := bytes.IndexByte(f, sep)
		if i < 0 {
			return ""
		}
		f = f[i+1:]
	}
	if i := bytes.IndexByte(f, sep); i >= 0 {
		f = f[:i]
	}
	if len(f) > 64 {
		f = f[:64]
	}
	for _, b := range f {
		if b < 0x20 || b > 0x7e {
			return ""
		}
	}
	return string(f)
}
