package notify_test

import (
	"context"
	"encoding/base64"
	"errors"
	"mime"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/notify/notifytest"
)

func TestSMTPDelivers(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	n, err := notify.New(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel() != "smtp" {
		t.Fatalf("channel %q", n.Channel())
	}
	msg := notify.Notification{ID: "n-123:abc", Kind: "assignment",
		To:      notify.Recipient{Ref: "PractitionerRole/pr-ide-martin", Name: "Claire MARTIN", Email: "ide.martin@example.invalid"},
		Subject: "Nouvelle tâche : premier contact à faire avant le 12/03/2026", Body: "Bonjour,\nune tâche vous est attribuée.",
		Link: "http://localhost:8080/worklist"}
	if err := n.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	mails := srv.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails", len(mails))
	}
	m := mails[0]
	if m.To != "ide.martin@example.invalid" || m.From != "passerelle@cpts.invalid" {
		t.Fatalf("envelope %s → %s", m.From, m.To)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subj != msg.Subject {
		t.Fatalf("subject %q (%v)", subj, err)
	}
	if got := m.Header.Get("Message-Id"); got != "<n-123-abc@passerelle>" {
		t.Fatalf("message id %q", got)
	}
	_, body, _ := strings.Cut(m.Raw, "\r\n\r\n")
	dec, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\r\n", ""))
	if err != nil || !strings.Contains(string(dec), "une tâche vous est attribuée") || !strings.Contains(string(dec), msg.Link) {
		t.Fatalf("body %q (%v)", dec, err)
	}
}

func TestSMTPFailures(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	n, _ := notify.New(srv.URL(), nil)
	ctx := context.Background()
	to := notify.Recipient{Ref: "PractitionerRole/x", Email: "x@example.invalid"}

	err := n.Send(ctx, notify.Notification{ID: "a", To: notify.Recipient{Ref: "PractitionerRole/y"}})
	if !errors.Is(err, notify.ErrUndeliverable) {
		t.Fatalf("no address: %v", err)
	}
	err = n.Send(ctx, notify.Notification{ID: "b", To: notify.Recipient{Ref: "PractitionerRole/z", Email: "z@refused.invalid"}})
	if !errors.Is(err, notify.ErrUndeliverable) {
		t.Fatalf("refused recipient: %v", err)
	}
	srv.SetDown(true)
	err = n.Send(ctx, notify.Notification{ID: "c", To: to})
	if err == nil || errors.Is(err, notify.ErrUndeliverable) {
		t.Fatalf("relay down must be a temporary failure: %v", err)
	}
	srv.SetDown(false)
	if err := n.Send(ctx, notify.Notification{ID: "c", To: to}); err != nil {
		t.Fatal(err)
	}
	if len(srv.Mails()) != 1 {
		t.Fatalf("%d mails", len(srv.Mails()))
	}
}

func TestNewRejectsOtherSchemes(t *testing.T) {
	if _, err := notify.New("http://mail", nil); err == nil || !strings.Contains(err.Error(), "PASSERELLE_SMTP_URL") {
		t.Fatalf("err %v", err)
	}
	if _, err := notify.New("smtp://nohost", nil); err == nil {
		t.Fatal("want an error for a URL without port")
	}
	if n, err := notify.New("", nil); err != nil || n.Channel() != "log" {
		t.Fatalf("default: %v %v", n, err)
	}
}
