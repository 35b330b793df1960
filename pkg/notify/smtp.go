package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// SMTP sends notifications as e-mail through one relay.
type SMTP struct {
	addr     string
	host     string
	from     string
	auth     smtp.Auth
	implicit bool // smtps://: TLS from the first byte
	timeout  time.Duration
}

// NewSMTP reads smtp://[user:password@]host:port[?from=address]
// (smtps:// for implicit TLS). STARTTLS is used when the relay offers it.
func NewSMTP(rawURL string) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("PASSERELLE_SMTP_URL: %v", err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("PASSERELLE_SMTP_URL: %q needs host:port", u.Host)
	}
	s := &SMTP{addr: u.Host, host: host, from: u.Query().Get("from"), implicit: u.Scheme == "smtps", timeout: 30 * time.Second}
	if s.from == "" {
		s.from = "passerelle@" + host
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		s.auth = smtp.PlainAuth("", u.User.Username(), pw, host)
	}
	return s, nil
}

// Channel is "smtp".
func (*SMTP) Channel() string { return "smtp" }

// Send delivers n by e-mail to its recipient's address.
func (s *SMTP) Send(ctx context.Context, n Notification) error {
	if n.To.Email == "" {
		return fmt.Errorf("%w: %s has no e-mail address", ErrUndeliverable, n.To.Ref)
	}
	msg := s.message(n)
	d := net.Dialer{Timeout: s.timeout}
	var conn net.Conn
	var err error
	if s.implicit {
		conn, err = tls.DialWithDialer(&d, "tcp", s.addr, &tls.Config{ServerName: s.host})
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.addr, err)
	}
	deadline := time.Now().Add(s.timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", s.addr, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok && !s.implicit {
		if err := c.StartTLS(&tls.Config{ServerName: s.host}); err != nil {
			return fmt.Errorf("smtp %s: starttls: %w", s.addr, err)
		}
	}
	if s.auth != nil {
		if err := c.Auth(s.auth); err != nil {
			return fmt.Errorf("smtp %s: auth: %w", s.addr, err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", s.addr, err)
	}
	if err := c.Rcpt(n.To.Email); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return fmt.Errorf("%w: smtp RCPT TO %s: %v", ErrUndeliverable, n.To.Email, err)
		}
		return fmt.Errorf("smtp RCPT TO %s: %w", n.To.Email, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.addr, err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: end of DATA: %w", s.addr, err)
	}
	return c.Quit()
}

// message renders n as an RFC 5322 message in UTF-8; its Message-ID is
// derived from n.ID so a copy sent again can be recognised.
func (s *SMTP) message(n Notification) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", s.from)
	to := n.To.Email
	if n.To.Name != "" {
		to = mime.QEncoding.Encode("utf-8", n.To.Name) + " <" + n.To.Email + ">"
	}
	hdr("To", to)
	hdr("Subject", mime.QEncoding.Encode("utf-8", n.Subject))
	hdr("Date", time.Now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+safeID(n.ID)+"@passerelle>")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "base64")
	hdr("X-Passerelle-Kind", n.Kind)
	b.WriteString("\r\n")
	body := n.Body
	if n.Link != "" {
		body += "\n\n" + n.Link
	}
	enc := base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}

func safeID(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, id)
}
