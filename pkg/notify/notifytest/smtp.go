// Package notifytest runs an SMTP server on loopback for tests: it takes
// every message, refuses recipients at the domain "refused.invalid" with a
// permanent error, and can be told to fail for a while.
package notifytest

import (
	"bufio"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
)

// Mail is one message the server received.
type Mail struct {
	From, To string
	Header   mail.Header
	Raw      string
}

// SMTPServer is a small SMTP server on 127.0.0.1.
type SMTPServer struct {
	ln net.Listener

	mu    sync.Mutex
	mails []Mail
	down  bool
	wg    sync.WaitGroup
}

// StartSMTP starts a server, stopped at the end of the test.
func StartSMTP(t testing.TB) *SMTPServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SMTPServer{ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// URL is the server's smtp:// URL.
func (s *SMTPServer) URL() string {
	return "smtp://" + s.ln.Addr().String() + "?from=passerelle@cpts.invalid"
}

// SetDown makes the server answer 421 (try later) to every connection.
func (s *SMTPServer) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// Mails returns the messages received so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

func (s *SMTPServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.session(c)
		}()
	}
}

func (s *SMTPServer) session(c net.Conn) {
	r := bufio.NewReader(c)
	say := func(line string) { c.Write([]byte(line + "\r\n")) }
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		say("421 4.3.0 service not available, try later")
		return
	}
	say("220 test ESMTP")
	var m Mail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-test")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			from, _, _ := strings.Cut(strings.TrimSpace(line[10:]), " ")
			m = Mail{From: strings.Trim(from, "<>")}
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			to := strings.Trim(line[8:], "<> ")
			if strings.HasSuffix(to, "@refused.invalid") {
				say("550 5.1.1 no such user")
				continue
			}
			m.To = to
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			m.Raw = b.String()
			if msg, err := mail.ReadMessage(strings.NewReader(m.Raw)); err == nil {
				m.Header = msg.Header
			}
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			say("250 queued")
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}
