// Package notify delivers notifications to people: a new task, a task taken
// away, an overdue task, an escalation, an alert. Callers build a
// Notification and hand it to a Notifier; which channel carries it (the log,
// e-mail, later secure health messaging) is the Notifier's business, so a
// new channel never touches the callers.
//
// Delivery is at least once: a caller retries until Send returns nil, and
// every Notification carries a stable ID that channels pass on (the e-mail
// Message-ID) so that a receiver can drop a copy sent again after a crash
// between sending and recording it.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrUndeliverable marks a notification that no retry can deliver (the
// recipient has no address for the channel): callers record the failure at
// once instead of retrying.
var ErrUndeliverable = errors.New("undeliverable")

// Recipient is who is told.
type Recipient struct {
	Ref   string // "PractitionerRole/<id>"
	Name  string
	Email string
	Phone string
}

// Notification is one message to one person.
type Notification struct {
	// ID is stable across retries: the same notification sent again has the
	// same ID.
	ID      string
	Kind    string // communication-kind code: assignment, unassignment, reminder, overdue, escalation, alert, cancellation
	To      Recipient
	Subject string
	Body    string
	// Link is where the recipient acts (the task page), absolute.
	Link string
}

// Notifier delivers notifications.
type Notifier interface {
	// Send delivers n, or returns an error; an error wrapping
	// ErrUndeliverable is final.
	Send(ctx context.Context, n Notification) error
	// Channel names the channel ("log", "smtp"), for the delivery record.
	Channel() string
}

// Log writes each notification to the log: the default when no channel is
// configured, so a development instance shows who would have been told.
type Log struct{ Logger *slog.Logger }

// Send logs n.
func (l Log) Send(ctx context.Context, n Notification) error {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	log.InfoContext(ctx, "notification", "id", n.ID, "kind", n.Kind, "to", n.To.Ref, "name", n.To.Name,
		"subject", n.Subject, "link", n.Link)
	return nil
}

// Channel is "log".
func (Log) Channel() string { return "log" }

// New returns the Notifier for a configuration URL: empty → Log,
// smtp://host:port → SMTP.
func New(rawURL string, log *slog.Logger) (Notifier, error) {
	switch {
	case rawURL == "":
		return Log{Logger: log}, nil
	case strings.HasPrefix(rawURL, "smtp://"), strings.HasPrefix(rawURL, "smtps://"):
		return NewSMTP(rawURL)
	}
	return nil, fmt.Errorf("PASSERELLE_SMTP_URL: %q is not an smtp:// URL", rawURL)
}
