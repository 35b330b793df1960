package intake_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/mllp"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/intake"
)

// mllpAddr adds an MLLP server to the rig as a development instance runs
// it: plaintext, loopback open.
func (r *rig) mllpAddr() string {
	r.t.Helper()
	return r.mllpServer(intake.MLLPPolicy{OpenLoopback: true}, nil, io.Discard)
}

// mllpServer adds an MLLP server with the policy and TLS configuration
// (nil: plaintext) to the rig; its log goes to logw.
func (r *rig) mllpServer(p intake.MLLPPolicy, tlsCfg *tls.Config, logw io.Writer) string {
	r.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	srv := &mllp.Server{Handler: r.svc.MLLP(p), TLSConfig: tlsCfg, MaxMessageSize: 1 << 20, IdleTimeout: 5 * time.Second, MaxConnsPerAddr: 64,
		Logger: slog.New(slog.NewTextHandler(logw, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

type client struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *client) send(msg []byte) string {
	c.t.Helper()
	if err := mllp.WriteFrame(c.c, msg); err != nil {
		c.t.Fatal(err)
	}
	_ = c.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	ack, err := mllp.NewReader(c.r, 1<<20).ReadMessage()
	if err != nil {
		c.t.Fatalf("read ACK: %v", err)
	}
	return string(ack)
}

func hl7Sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/hl7/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func msa(ack string) string {
	for _, seg := range strings.Split(ack, "\r") {
		if strings.HasPrefix(seg, "MSA|") {
			return strings.Split(seg, "|")[1]
		}
	}
	return ""
}

func errSegment(ack string) string {
	for _, seg := range strings.Split(ack, "\r") {
		if strings.HasPrefix(seg, "ERR|") {
			return seg
		}
	}
	return ""
}

func TestHL7Samples(t *testing.T) {
	r := newRig(t, false)
	c := dial(t, r.mllpAddr())

	ack := c.send(hl7Sample(t, "adt-a03-cardiology-discharge.hl7"))
	if msa(ack) != "AA" || !strings.Contains(ack, "MSA|AA|MSG000123") {
		t.Fatalf("A03: %q", ack)
	}
	applied := r.waitApplied("MSG000123")
	pat, _ := r.store.Read(context.Background(), "Patient", strings.TrimPrefix(applied.Patient, "Patient/"))
	body := string(pat.Body)
	for _, want := range []string{"248034218701255", `"QUAL"`, "TESTDURAND", "1948-03-15", `"female"`, "42187"} {
		if !strings.Contains(body, want) {
			t.Errorf("patient lacks %s: %s", want, body)
		}
	}
	encs := r.search("Encounter")
	if len(encs) != 1 || !strings.Contains(string(encs[0].Body), `"finished"`) || !strings.Contains(string(encs[0].Body), `"6000"`) {
		t.Fatalf("encounter: %v", encs)
	}
	if conds := r.search("Condition"); len(conds) != 1 || !strings.Contains(string(conds[0].Body), "I50.1") {
		t.Errorf("conditions: %v", conds)
	}
	if teams := r.search("CareTeam"); len(teams) != 1 || !strings.Contains(string(teams[0].Body), "10000000009") {
		t.Errorf("médecin traitant from ROL ODRP: %v", teams)
	}

	// The same message with LF separators is the same message.
	if ack2 := c.send(hl7Sample(t, "adt-a03-lf-separators.hl7")); msa(ack2) != "AA" {
		t.Fatalf("LF A03: %q", ack2)
	}

	// A13 cancels the discharge: the stay is open again.
	if ack := c.send(hl7Sample(t, "adt-a13-cancel-discharge.hl7")); msa(ack) != "AA" {
		t.Fatalf("A13: %q", ack)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(string(r.search("Encounter")[0].Body), `"in-progress"`) {
		if time.Now().After(deadline) {
			t.Fatalf("A13 not applied: %s", r.search("Encounter")[0].Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(r.search("Encounter")); n != 1 {
		t.Errorf("%d encounters after A13", n)
	}
}

func TestHL7InHospitalDeath(t *testing.T) {
	for _, name := range []string{"adt-a03-in-hospital-death.hl7", "adt-a03-in-hospital-death-corrected.hl7"} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, false)
			c := dial(t, r.mllpAddr())
			if ack := c.send(hl7Sample(t, name)); msa(ack) != "AA" {
				t.Fatalf("%q", ack)
			}
			list, _, _ := r.store.Messages().List(context.Background(), store.MessageFilter{})
			if len(list) != 1 || list[0].Event != "death" {
				t.Fatalf("archived as %+v", list)
			}
			m := r.waitApplied(list[0].ControlID)
			pat, _ := r.store.Read(context.Background(), "Patient", strings.TrimPrefix(m.Patient, "Patient/"))
			if !strings.Contains(string(pat.Body), "deceasedDateTime") {
				t.Errorf("death not recorded: %s", pat.Body)
			}
			if enc := r.search("Encounter"); !strings.Contains(string(enc[0].Body), `"exp"`) {
				t.Errorf("stay not ended by death: %s", enc[0].Body)
			}
		})
	}
}

func TestHL7DuplicatesAndRefusals(t *testing.T) {
	r := newRig(t, false)
	c := dial(t, r.mllpAddr())
	a03 := hl7Sample(t, "adt-a03-cardiology-discharge.hl7")
	first := c.send(a03)
	again := c.send(a03)
	if first != again || msa(first) != "AA" {
		t.Fatalf("re-send got another ACK:\n%q\n%q", first, again)
	}
	changed := bytes.Replace(a03, []byte("19480315"), []byte("19480316"), 1)
	if ack := c.send(changed); msa(ack) != "AE" || !strings.Contains(errSegment(ack), "MSH^1^10") || !strings.Contains(errSegment(ack), "205^") {
		t.Fatalf("same key, other content: %q", ack)
	}
	r.waitApplied("MSG000123")
	cases := []struct {
		name, code, err string
		msg             []byte
	}{
		{"unknown facility", "AR", "MSH^1^4", bytes.Replace(a03, []byte("CHX_CARDIO^420000002^FINESS"), []byte("AILLEURS^999999999^FINESS"), 1)},
		{"not ADT", "AR", "MSH^1^9", bytes.Replace(bytes.Replace(a03, []byte("ADT^A03^ADT_A03"), []byte("ORU^R01^ORU_R01"), 1), []byte("MSG000123"), []byte("ORU1"), 1)},
		{"old version", "AR", "MSH^1^12", bytes.Replace(bytes.Replace(a03, []byte("2.5^FRA^2.11"), []byte("2.3"), 1), []byte("MSG000123"), []byte("V23"), 1)},
		{"no visit number", "AE", "PV1^1^19", bytes.Replace(bytes.Replace(a03, []byte("V0004567^^^CH_EXEMPLE&2.999.250.1.1&ISO^VN"), nil, 1), []byte("MSG000123"), []byte("NOVISIT"), 1)},
		{"garbage", "AR", "", []byte("this is not HL7 at all")},
	}
	for _, tc := range cases {
		ack := c.send(tc.msg)
		if msa(ack) != tc.code || (tc.err != "" && !strings.Contains(errSegment(ack), tc.err)) {
			t.Errorf("%s: %q", tc.name, ack)
		}
	}
	// An ADT trigger Passerelle does not use: AA, archived, ignored.
	a02 := bytes.Replace(bytes.Replace(a03, []byte("ADT^A03^ADT_A03"), []byte("ADT^A02^ADT_A02"), 1), []byte("MSG000123"), []byte("TRANSFER1"), 1)
	if ack := c.send(a02); msa(ack) != "AA" {
		t.Errorf("A02: %q", ack)
	}
	list, _, _ := r.store.Messages().List(context.Background(), store.MessageFilter{ControlID: "TRANSFER1"})
	if len(list) != 1 || list[0].Status != "ignored" {
		t.Errorf("A02 archive: %+v", list)
	}
	if n := len(r.search("Encounter")); n != 1 {
		t.Errorf("%d encounters, want 1", n)
	}
}

// TestHL7HostileClients: several connections at once, a connection dropped
// mid-frame, a 20 MB frame and garbage; the server stays up, answers what
// it can, and every message it acknowledged is archived.
func TestHL7HostileClients(t *testing.T) {
	r := newRig(t, false)
	addr := r.mllpAddr()
	a03 := hl7Sample(t, "adt-a03-cardiology-discharge.hl7")

	// A connection that drops in the middle of a frame.
	d, _ := net.Dial("tcp", addr)
	_, _ = d.Write(append([]byte{0x0b}, a03[:len(a03)/2]...))
	d.Close()
	// Garbage, then a 20 MB frame, on one connection.
	g := dial(t, addr)
	_, _ = g.c.Write([]byte("\x00\x01garbage without any frame\r\n"))
	big := append(append([]byte{}, a03...), bytes.Repeat([]byte("x"), 20<<20)...)
	if ack := g.send(big); msa(ack) != "AR" {
		t.Errorf("20 MB frame: %q", ack)
	}
	// Concurrent senders, each message distinct.
	const conns, per = 6, 15
	var wg sync.WaitGroup
	acked := make(chan string, conns*per)
	for ci := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, addr)
			for i := range per {
				id := fmt.Sprintf("C%dM%d", ci, i)
				msg := bytes.Replace(a03, []byte("MSG000123"), []byte(id), 1)
				msg = bytes.ReplaceAll(msg, []byte("V0004567"), []byte("V"+id))
				if ack := c.send(msg); msa(ack) == "AA" {
					acked <- id
				} else {
					t.Errorf("%s: %q", id, ack)
				}
			}
		}()
	}
	wg.Wait()
	close(acked)
	// The connection that sent the big frame still works.
	if ack := g.send(a03); msa(ack) != "AA" {
		t.Errorf("after the big frame: %q", ack)
	}
	n := 0
	for id := range acked {
		n++
		if _, err := r.store.Messages().FindKey(context.Background(), "demo", "hl7v2", "GAM_CHX|CHX_CARDIO^420000002^FINESS|"+id); err != nil {
			t.Errorf("%s acknowledged but not archived: %v", id, err)
		}
	}
	if n != conns*per {
		t.Errorf("%d of %d acknowledged", n, conns*per)
	}
}

// TestHL7ReplayWithoutListener: an instance that does not listen for MLLP
// (an intake replica serving only HTTP) replays an archived HL7 message.
func TestHL7ReplayWithoutListener(t *testing.T) {
	r := newRig(t, false)
	if ack := dial(t, r.mllpAddr()).send(hl7Sample(t, "adt-a03-cardiology-discharge.hl7")); msa(ack) != "AA" {
		t.Fatalf("A03: %q", ack)
	}
	msg := r.waitApplied("MSG000123")
	before := r.search("Encounter")[0].Version
	noListener := intake.New(intake.Deps{Store: r.store, Tenant: "demo"})
	if err := noListener.Replay(context.Background(), msg.ID); err != nil {
		t.Fatalf("replay without a listener: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.search("Encounter")[0].Version == before {
		if time.Now().After(deadline) {
			t.Fatal("replay not applied")
		}
		time.Sleep(10 * time.Millisecond) // the rig applies it on the bus
	}
}
