package intake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// sizeProbe records the largest event seen on a subject filter.
type sizeProbe struct {
	mu   sync.Mutex
	max  int
	seen int
}

func (r *rig) probe(durable, subject string) *sizeProbe {
	r.t.Helper()
	p := &sizeProbe{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.bus.Consume(ctx, bus.ConsumerConfig{Durable: durable, Subject: subject}, func(_ context.Context, m bus.Msg) error {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.seen++
			p.max = max(p.max, len(m.Data))
			return nil
		})
	}()
	r.t.Cleanup(func() { cancel(); <-done })
	return p
}

func (p *sizeProbe) get() (seen, largest int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen, p.max
}

// TestLargeLetterTravelsByReference: a discharge whose lettre de liaison
// weighs 0.75 MB (1 MB in base64, beyond the broker's payload limit) is
// accepted and applied; the letter is stored whole, and neither the intake
// event nor the stay event carries it.
func TestLargeLetterTravelsByReference(t *testing.T) {
	r := newRig(t, false)
	inbound := r.probe("probe-inbound", bus.InboundSubject("demo", ">"))
	stays := r.probe("probe-stays", bus.ResourceSubject("demo", "Encounter", "*"))
	letter := bytes.Repeat([]byte("Sortie sous furosémide 40 mg. "), 768<<10/31)
	m := sample(t)
	doc := entry(m, "DocumentReference")
	doc["content"].([]any)[0].(map[string]any)["attachment"].(map[string]any)["data"] = base64.StdEncoding.EncodeToString(letter)
	status, body := r.post(m)
	if status != 200 {
		t.Fatalf("status %d: %.500s", status, body)
	}
	r.waitApplied("0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001")
	docs := r.search("DocumentReference")
	if len(docs) != 1 {
		t.Fatalf("%d letters stored", len(docs))
	}
	var stored struct {
		Content []struct {
			Attachment struct {
				Data []byte `json:"data"`
			} `json:"attachment"`
		} `json:"content"`
	}
	if err := json.Unmarshal(docs[0].Body, &stored); err != nil || len(stored.Content) != 1 || !bytes.Equal(stored.Content[0].Attachment.Data, letter) {
		t.Fatalf("stored letter is not the letter sent (%v)", err)
	}
	for name, p := range map[string]*sizeProbe{"intake event": inbound, "stay event": stays} {
		waitFor(t, name, func() bool { n, _ := p.get(); return n > 0 })
		if _, largest := p.get(); largest > 64<<10 {
			t.Errorf("%s carries %d bytes: the letter travelled with it", name, largest)
		}
	}
}

// TestOversizedEventRefused: a message whose event would exceed the store's
// bound is refused with 413 at once, archived as refused, and nothing of it
// is applied. The bound is lowered to the size of an ordinary discharge: the
// field limits keep a real one below the default bound.
func TestOversizedEventRefused(t *testing.T) {
	r := newRigMaxEvent(t, false, 1024)
	status, body := r.post(sample(t))
	if status != 413 {
		t.Fatalf("status %d, want 413: %s", status, body)
	}
	if !strings.Contains(string(body), "too-costly") {
		t.Errorf("outcome: %s", body)
	}
	list, _, err := r.store.Messages().List(context.Background(), store.MessageFilter{Tenant: "demo", ControlID: "0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5001"})
	if err != nil || len(list) != 1 || list[0].Status != "rejected" {
		t.Fatalf("archive: %+v %v", list, err)
	}
	if n, err := r.store.Outbox().Backlog(context.Background()); err != nil || n != 0 {
		t.Errorf("outbox rows after a refused message: %d %v", n, err)
	}
	if encs := r.search("Encounter"); len(encs) != 0 {
		t.Errorf("%d encounters recorded from a refused message", len(encs))
	}
}

// TestOversizedEventRefusedHL7: the same over MLLP is answered AR (the same
// message can never be accepted), and nothing of it is applied.
func TestOversizedEventRefusedHL7(t *testing.T) {
	r := newRigMaxEvent(t, false, 1024)
	c := dial(t, r.mllpAddr())
	ack := c.send(hl7Sample(t, "adt-a03-cardiology-discharge.hl7"))
	if msa(ack) != "AR" || !strings.Contains(errSegment(ack), "too large") {
		t.Fatalf("ACK %q", ack)
	}
	if n, err := r.store.Outbox().Backlog(context.Background()); err != nil || n != 0 {
		t.Errorf("outbox rows after a refused message: %d %v", n, err)
	}
	if encs := r.search("Encounter"); len(encs) != 0 {
		t.Errorf("%d encounters recorded from a refused message", len(encs))
	}
}

// TestFieldTooLong: a 600,000-character name is refused at the field, in
// FHIR (400 naming Patient.name.family) and in HL7 v2 (AE naming PID-5).
func TestFieldTooLong(t *testing.T) {
	r := newRig(t, false)
	long := strings.Repeat("A", 600_000)
	m := sample(t)
	entry(m, "Patient")["name"].([]any)[0].(map[string]any)["family"] = long
	status, body := r.post(m)
	if status != 400 {
		t.Fatalf("FHIR: status %d, want 400: %.300s", status, body)
	}
	if got := expression(t, body); len(got) != 1 || got[0] != "Bundle.entry[1].resource.name.family" {
		t.Errorf("FHIR: expression %v", got)
	}
	if !strings.Contains(string(body), "patient.family") {
		t.Errorf("FHIR: the outcome does not name the field: %.300s", body)
	}

	c := dial(t, r.mllpAddr())
	a03 := hl7Sample(t, "adt-a03-cardiology-discharge.hl7")
	a03 = bytes.Replace(a03, []byte("TESTDURAND^MARIE"), []byte(long+"^MARIE"), 1)
	ack := c.send(a03)
	if msa(ack) != "AE" || !strings.Contains(errSegment(ack), "PID^1^5^^1") {
		t.Errorf("HL7: %.300q", ack)
	}
	if encs := r.search("Encounter"); len(encs) != 0 {
		t.Errorf("%d encounters recorded from refused messages", len(encs))
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen within the deadline", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
