package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures an embedded NATS server.
type ServerConfig struct {
	// StoreDir is where JetStream keeps its file storage. Required: the
	// embedded server exists so that the single binary keeps its events
	// across restarts.
	StoreDir string
	// Listen is an optional host:port for NATS clients over TCP (port 0
	// picks a free one). Empty means no TCP listener at all: the process's
	// own buses connect in process, and nothing else can reach the server.
	Listen string
	// LazySync keeps JetStream's default of flushing to disk every couple of
	// minutes. By default the embedded server syncs every write to disk before
	// acknowledging it, because with lazy sync an acknowledged message can be
	// lost when the machine (not just the process) stops: the Jepsen analysis
	// of NATS 2.12.1 lost acknowledged writes that way.
	LazySync bool
	// ServerName names the server in logs and monitoring (default
	// "passerelle").
	ServerName string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept connections
	// (default 30s: recovering a large store takes time).
	ReadyTimeout time.Duration
	// MaxPayload is the largest message the server takes (default 1 MB, the
	// NATS default). Tests lower it to make the broker refuse a message.
	MaxPayload int32
}

// Server is a NATS server with JetStream running inside this process.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server with JetStream and waits until it
// accepts connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("start embedded nats server: no store directory")
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "passerelle"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		// The server must not install its own signal handlers: the process's
		// owner derives shutdown from SIGINT/SIGTERM.
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		SyncAlways: !cfg.LazySync,
		MaxPayload: cfg.MaxPayload,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("start embedded nats server: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 {
			return nil, fmt.Errorf("start embedded nats server: listen port %q is not a port number", port)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(serverLogger{cfg.Logger.With("component", "nats-server")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats server: not ready after %s", cfg.ReadyTimeout)
	}
	// JetStream failing to start (an unreadable store, no space) leaves a
	// running server without persistence: refuse it rather than lose events.
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats server: jetstream did not start with store %s", cfg.StoreDir)
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL TCP clients connect to, or "" when the server does not
// listen.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server: it closes client connections and flushes and
// closes the JetStream store. It does not wait for every goroutine; see
// WaitForShutdown.
func (s *Server) Shutdown() { s.ns.Shutdown() }

// WaitForShutdown blocks until the server has fully shut down.
func (s *Server) WaitForShutdown() { s.ns.WaitForShutdown() }

// serverLogger sends nats-server's printf-style logs to slog.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

// Fatalf is logged as an error: the embedded server must not exit the process
// it shares with the services.
func (l serverLogger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
