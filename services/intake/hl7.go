package intake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/mllp"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// QualifiedCodes are the PID-32 codes that say an identity is qualified, so
// that its INS is the matching key (docs/domain.md, "Identity status and vigilance"; VALI and QUAL
// by default).
var QualifiedCodes = []string{"VALI", "QUAL"}

// triggers maps the ADT triggers Passerelle uses to intake kinds
// (docs/contract.md, "HL7 v2 over MLLP"). Other ADT triggers are acknowledged and
// ignored, as IHE PAM asks of receivers.
var triggers = map[string]string{
	"A01": intake.KindAdmit,
	"A04": intake.KindAdmit,
	"A03": intake.KindDischarge,
	"A11": intake.KindCancelAdmit,
	"A13": intake.KindCancelDischarge,
	"A08": intake.KindUpdate,
}

func (r *hl7Reject) Error() string {
	var parts []string
	for _, e := range r.errs {
		parts = append(parts, e.Location.String()+" "+e.Message)
	}
	return r.code() + ": " + strings.Join(parts, "; ")
}

// MLLP returns the handler of an MLLP listener. A message is taken only
// from a connection the policy recognises, and only for the facility it
// recognises it for: MSH-4 naming another gets AR.
func (s *Service) MLLP(p MLLPPolicy) mllp.Handler { return mllpHandler{s: s, p: p} }

// HL7 takes one HL7 v2 message from a caller in the same process (the
// demo's simulated hospitals), which is trusted to send for any registered
// facility, and returns its ACK.
func (s *Service) HL7(ctx context.Context, raw []byte) []byte {
	return s.handleHL7(ctx, raw, anySender)
}

// hl7EventOf rebuilds the event of an archived HL7 v2 message, for a replay.
func (s *Service) hl7EventOf(raw []byte, ev *intake.Event) error {
	msg, err := hl7v2.Parse(raw)
	if err != nil {
		return err
	}
	mh, err := msg.MSH()
	if err != nil {
		return err
	}
	kind, ignored, rerr := s.kindOf(msg, mh)
	if rerr != nil {
		return rerr
	}
	if ignored {
		return errors.New("an ignored trigger has nothing to replay")
	}
	finess, _ := s.sender(context.Background(), mh)
	e, rerr := s.hl7ToEvent(msg, mh, kind, finess)
	if rerr != nil {
		return rerr
	}
	*ev = e
	return nil
}

type mllpHandler struct {
	s *Service
	p MLLPPolicy
}

func (h mllpHandler) ServeMLLP(ctx context.Context, c mllp.ConnInfo, raw []byte) []byte {
	who, errs, err := h.s.connectionSender(ctx, h.p, c)
	if err != nil || errs != nil {
		// Refused before reading: nothing from an unrecognised sender is
		// archived.
		head, _ := hl7v2.ParseHeader(normalise(raw))
		if err != nil {
			h.s.log.ErrorContext(ctx, "MLLP sender not resolved", "control_id", mllp.ControlID(raw), "error", err)
			return h.s.refuse(head, temporary())
		}
		return h.s.refuse(head, &hl7Reject{kind: fhir.Forbidden, errs: errs})
	}
	return h.s.handleHL7(ctx, raw, who)
}

// ServeMLLPOversize answers a frame beyond the size limit with an AR, so
// that the sender's engine shows why instead of retrying for ever.
func (h mllpHandler) ServeMLLPOversize(ctx context.Context, c mllp.ConnInfo, head []byte, size int64) []byte {
	msg, _ := hl7v2.ParseHeader(head)
	h.s.log.WarnContext(ctx, "HL7 v2 message too large", "bytes", size, "control_id", mllp.ControlID(head))
	return h.s.refuse(msg, reject(fhir.TooLarge, hl7v2.Location{}, 0, fmt.Sprintf("Message trop volumineux (%d octets) / Message too large", size)))
}

func (s *Service) ack(msg *hl7v2.Message, code string, errs []hl7v2.AckError) []byte {
	return hl7v2.Ack(msg, code, errs, s.now(), ackControlID()).Encode()
}

// refuse answers a refusal with the ACK its kind calls for (acks).
func (s *Service) refuse(msg *hl7v2.Message, r *hl7Reject) []byte {
	return s.ack(msg, r.code(), r.errs)
}

func ackControlID() string { return strings.ReplaceAll(uuid.NewString(), "-", "")[:20] }

// normalise makes the stored form and the hash independent of the segment
// terminator the sender used.
func normalise(raw []byte) []byte {
	b := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\r"))
	b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r"))
	return bytes.TrimRight(b, "\r \t")
}

// handleHL7 answers one message. An AA is a promise: it is returned only
// once the message is archived and its event queued, in one transaction.
func (s *Service) handleHL7(ctx context.Context, raw []byte, who connSender) []byte {
	raw = normalise(raw)
	msg, perr := hl7v2.Parse(raw)
	if perr != nil {
		head, _ := hl7v2.ParseHeader(raw)
		rerr := rejectError(perr)
		if msg == nil && head == nil {
			// Not even a header: nothing says what the message is.
			rerr.kind = fhir.Unsupported
		}
		if msg == nil {
			msg = head
		}
		s.log.WarnContext(ctx, "HL7 v2 message refused", "reason", "parse", "control_id", mllp.ControlID(raw), "error", perr)
		return s.archiveRejected(ctx, msg, raw, rerr, who)
	}
	mh, err := msg.MSH()
	if err != nil {
		// The header is unusable: the message cannot be taken at all.
		return s.archiveRejected(ctx, msg, raw, &hl7Reject{kind: fhir.Unsupported, errs: hl7v2.AckErrors(err)}, who)
	}
	if mh.Type.Code != "ADT" {
		return s.archiveRejected(ctx, msg, raw, reject(fhir.Unsupported, hl7v2.Location{Segment: "MSH", Sequence: 1, Field: 9},
			hl7v2.CodeUnsupportedMessageType, "Seuls les messages ADT sont acceptés / Only ADT messages are accepted"), who)
	}
	if !strings.HasPrefix(mh.Version.ID, "2.5") {
		return s.archiveRejected(ctx, msg, raw, reject(fhir.Unsupported, hl7v2.Location{Segment: "MSH", Sequence: 1, Field: 12},
			hl7v2.CodeUnsupportedVersion, "Version HL7 2.5 attendue (IHE PAM France) / HL7 version 2.5 expected"), who)
	}
	finess, err := s.sender(ctx, mh)
	if err != nil {
		return s.refuse(msg, temporary())
	}
	if finess == "" {
		// Not archived: the sender is nobody we know.
		s.log.WarnContext(ctx, "HL7 v2 message from an unknown facility", "sending_facility", mh.SendingFacility.Namespace+"^"+mh.SendingFacility.UniversalID)
		return s.refuse(msg, reject(fhir.Forbidden, hl7v2.Location{Segment: "MSH", Sequence: 1, Field: 4},
			hl7v2.CodeUnknownKey, "Établissement émetteur inconnu (MSH-4) / Unknown sending facility (MSH-4)"))
	}
	if !who.allows(finess) {
		// Not archived either: the connection is another facility's.
		s.log.WarnContext(ctx, "HL7 v2 message for another facility than its connection's", "control_id", mh.ControlID,
			"sending_facility", finess, "connection_facility", who.finess, "recognised_by", who.by)
		return s.refuse(msg, &hl7Reject{kind: fhir.Forbidden, errs: who.mismatch(finess)})
	}
	key := hl7Key(msg)
	hash := hashOf(raw)
	if prev, err := s.d.Store.Messages().FindKey(ctx, s.d.Tenant, "hl7v2", key); err == nil {
		return s.answerArchivedHL7(ctx, msg, prev, hash)
	} else if !errors.Is(err, store.ErrNotFound) {
		// The archive failed: the server's fault, whatever the error.
		return s.refuse(msg, &hl7Reject{kind: fhir.Internal, errs: hl7v2.AckErrors(err)})
	}
	if prev, err := s.d.Store.Messages().FindKey(ctx, s.d.Tenant, "hl7v2", rejectedKey(key, hash)); err == nil {
		return prev.Response
	}
	arch := store.Message{Tenant: s.d.Tenant, Channel: "hl7v2", Sender: finess, Key: key, Hash: hash, ControlID: mh.ControlID,
		Received: s.now(), Raw: raw}
	kind, ignored, rerr := s.kindOf(msg, mh)
	var ev intake.Event
	if rerr == nil && !ignored {
		ev, rerr = s.hl7ToEvent(msg, mh, kind, finess)
		if rerr == nil {
			rerr = hl7Limits(&ev)
			if rerr == nil {
				rerr = s.checkHL7Identifiers(ctx, ev)
			}
		}
	}
	if rerr != nil {
		arch.Status, arch.Event = "rejected", "rejected"
		arch.Key = rejectedKey(key, hash)
		arch.Response = s.refuse(msg, rerr)
		return s.store(ctx, msg, arch, nil, hash)
	}
	arch.Response = s.ack(msg, hl7v2.AckAccept, nil)
	if ignored {
		arch.Status, arch.Event = "ignored", "ignored"
		return s.store(ctx, msg, arch, nil, hash)
	}
	arch.Status, arch.Event = "accepted", ev.Kind
	ev.Trace = mh.ControlID
	return s.store(ctx, msg, arch, &ev, hash)
}

// store archives the message (with its event, if any) and returns the ACK
// it was archived with; a storage failure answers AR with nothing stored,
// so that the sender retries.
func (s *Service) store(ctx context.Context, msg *hl7v2.Message, arch store.Message, ev *intake.Event, hash string) []byte {
	got, created, err := s.accept(ctx, arch, ev)
	if errors.Is(err, store.ErrTooLarge) {
		s.log.WarnContext(ctx, "HL7 v2 message refused", "reason", "event too large", "control_id", arch.ControlID, "error", err)
		return s.refuse(msg, eventTooLarge())
	}
	if err != nil {
		s.log.ErrorContext(ctx, "HL7 v2 message not stored", "control_id", arch.ControlID, "error", err)
		return s.refuse(msg, temporary())
	}
	if !created {
		return s.answerArchivedHL7(ctx, msg, got, hash)
	}
	if AfterAccept != nil && arch.Status == "accepted" {
		AfterAccept()
	}
	return got.Response
}

// archiveRejected keeps a refused message when it can be keyed, so that an
// operator sees it, and answers the refusal. It is kept only under a
// facility the connection may send for: another's archive is not for it to
// fill.
func (s *Service) archiveRejected(ctx context.Context, msg *hl7v2.Message, raw []byte, rerr *hl7Reject, who connSender) []byte {
	ack := s.refuse(msg, rerr)
	if msg == nil || msg.Value("MSH", 1, 10, 1, 1, 1) == "" {
		return ack
	}
	mh, _ := msg.MSH()
	sender := ""
	if mh != nil {
		sender, _ = s.sender(ctx, mh)
	}
	if sender == "" || !who.allows(sender) {
		return ack
	}
	arch := store.Message{Tenant: s.d.Tenant, Channel: "hl7v2", Sender: sender, Key: rejectedKey(hl7Key(msg), hashOf(raw)), Hash: hashOf(raw),
		ControlID: msg.Value("MSH", 1, 10, 1, 1, 1), Received: s.now(), Raw: raw, Status: "rejected", Event: "rejected", Response: ack}
	return s.store(ctx, msg, arch, nil, arch.Hash)
}

// answerArchivedHL7: the same key and content get the original ACK; the
// same key with other content gets AE (docs/contract.md, "HL7 v2 over MLLP").
func (s *Service) answerArchivedHL7(ctx context.Context, msg *hl7v2.Message, prev store.Message, hash string) []byte {
	if prev.Hash == hash {
		return prev.Response
	}
	s.log.WarnContext(ctx, "HL7 v2 message reuses a control id with other content", "control_id", prev.ControlID)
	return s.refuse(msg, reject(fhir.Conflict, hl7v2.Location{Segment: "MSH", Sequence: 1, Field: 10}, hl7v2.CodeDuplicateKey,
		"MSH-10 déjà reçu avec un autre contenu / MSH-10 already received with other content"))
}

// hl7Key is (MSH-3, MSH-4, MSH-10), as sent.
func hl7Key(msg *hl7v2.Message) string {
	seg := msg.Segment("MSH")
	if seg == nil {
		return ""
	}
	enc := func(n int) string {
		var parts []string
		for _, c := range seg.Field(n).Rep(1) {
			parts = append(parts, strings.Join(c, "&"))
		}
		return strings.Join(parts, "^")
	}
	return enc(3) + "|" + enc(4) + "|" + seg.Get(10, 1, 1, 1)
}

// sender recognises the sending facility by MSH-4: its FINESS in the second
// component, or a namespace registered for it in the directory. It returns
// "" for an unknown facility. Answers are kept for a short while: an
// interface engine sends thousands of messages under the same MSH-4.
func (s *Service) sender(ctx context.Context, mh *hl7v2.MSH) (string, error) {
	key := mh.SendingFacility.Namespace + "^" + mh.SendingFacility.UniversalID
	now := s.now()
	s.sendersMu.Lock()
	c, ok := s.senders[key]
	s.sendersMu.Unlock()
	if ok && now.Sub(c.at) < senderTTL && !now.Before(c.at) {
		return c.finess, nil
	}
	finess, err := s.lookupSender(ctx, mh)
	if err != nil {
		return "", err
	}
	s.sendersMu.Lock()
	if s.senders == nil || len(s.senders) > 1000 {
		s.senders = map[string]cachedSender{}
	}
	s.senders[key] = cachedSender{finess: finess, at: now}
	s.sendersMu.Unlock()
	return finess, nil
}

// senderTTL is how long a facility's recognition is kept: a change in the
// directory takes effect within it.
const senderTTL = 30 * time.Second

type cachedSender struct {
	finess string
	at     time.Time
}

func (s *Service) lookupSender(ctx context.Context, mh *hl7v2.MSH) (string, error) {
	sf := mh.SendingFacility
	try := func(system, value string) (string, error) {
		if value == "" {
			return "", nil
		}
		page, err := s.d.Store.Search(ctx, store.Query{Tenant: s.d.Tenant, Type: "Organization", Count: 2,
			Params: []store.Param{tokenParam("identifier", system, value)}})
		if err != nil || len(page.Resources) != 1 {
			return "", err
		}
		var org res
		if err := jsonUnmarshal(page.Resources[0].Body, &org); err != nil {
			return "", err
		}
		return finessOf(org.Identifier), nil
	}
	if f, err := try(directory.SystemFINESS, sf.UniversalID); f != "" || err != nil {
		return f, err
	}
	return try(directory.SystemHL7NS, sf.Namespace)
}

// kindOf tells what a trigger means: an intake kind, or ignored.
func (s *Service) kindOf(msg *hl7v2.Message, mh *hl7v2.MSH) (string, bool, *hl7Reject) {
	trigger := mh.Type.Trigger
	if trigger == "Z99" {
		zbe, _ := msg.ZBE()
		if zbe == nil || zbe.OriginalTrigger == "" {
			return "", false, reject(fhir.Invalid, hl7v2.Location{Segment: "ZBE", Sequence: 1, Field: 6}, hl7v2.CodeRequiredFieldMissing,
				"Une correction Z99 nomme le mouvement corrigé (ZBE-6) / A Z99 correction names the corrected trigger (ZBE-6)")
		}
		// A correction restates the movement it corrects.
		trigger = zbe.OriginalTrigger
		if k, ok := triggers[trigger]; ok && (k == intake.KindAdmit || k == intake.KindDischarge) {
			return k, false, nil
		}
		return intake.KindUpdate, false, nil
	}
	k, ok := triggers[trigger]
	if !ok {
		return "", true, nil
	}
	if zbe, _ := msg.ZBE(); k == intake.KindDischarge && zbe != nil && zbe.Action == "CANCEL" {
		k = intake.KindCancelDischarge
	}
	return k, false, nil
}

func urnOID(hd hl7v2.HD) string {
	if hd.UniversalID != "" {
		return "urn:oid:" + hd.UniversalID
	}
	return hd.Namespace
}

func hl7Time(ts hl7v2.TS) *time.Time {
	if ts.IsZero() {
		return nil
	}
	t := ts.Time
	return &t
}

// hl7ToEvent maps an ADT message to the intake event (docs/contract.md, "HL7 v2 over MLLP": fields read).
func (s *Service) hl7ToEvent(msg *hl7v2.Message, mh *hl7v2.MSH, kind, finess string) (intake.Event, *hl7Reject) {
	ev := intake.Event{Kind: kind, Channel: "hl7v2", Facility: intake.Facility{FINESS: finess, Name: mh.SendingFacility.Namespace}}
	pid, err := msg.PID()
	if err != nil || pid == nil {
		if err != nil {
			return ev, rejectError(err)
		}
		return ev, reject(fhir.Invalid, hl7v2.Location{Segment: "PID"}, hl7v2.CodeSegmentSequence, "Segment PID absent / PID segment missing")
	}
	pv1, err := msg.PV1()
	if err != nil || pv1 == nil {
		if err != nil {
			return ev, rejectError(err)
		}
		return ev, reject(fhir.Invalid, hl7v2.Location{Segment: "PV1"}, hl7v2.CodeSegmentSequence, "Segment PV1 absent / PV1 segment missing")
	}
	p := &ev.Patient
	if ins, ok := pid.INS(); ok {
		sys := urnOID(ins.AssigningAuthority)
		if s.d.Production && IsTestINS(sys) {
			return ev, reject(errKind(errTestINS), hl7v2.Location{Segment: "PID", Sequence: 1, Field: 3}, hl7v2.CodeTableValue,
				"INS de test ou de démonstration refusé en production / Test or demo INS refused in production")
		}
		t := "INS-NIR"
		if sys == insNIASystem {
			t = "INS-NIA"
		}
		p.INS = &intake.Identifier{System: sys, Value: ins.ID, Type: t}
	}
	for _, code := range QualifiedCodes {
		if pid.HasReliability(code) {
			p.Qualified = true
		}
	}
	// HL7 PID-32 VALI means "qualified, INS may be sent"; stored with the
	// FR Core code that means the same (QUAL).
	switch {
	case p.Qualified:
		p.IdentityStatus = intake.StatusQualified
	case pid.HasReliability("RECUP"):
		p.IdentityStatus = intake.StatusRecovered
	default:
		p.IdentityStatus = intake.StatusProvisional
	}
	for _, id := range pid.Identifiers {
		if id.TypeCode == "PI" || id.TypeCode == "NH" && false {
			p.Identifiers = append(p.Identifiers, intake.Identifier{System: urnOID(id.AssigningAuthority), Value: id.ID, Type: "PI"})
		}
	}
	if p.INS == nil && len(p.Identifiers) == 0 {
		return ev, reject(fhir.Invalid, hl7v2.Location{Segment: "PID", Sequence: 1, Field: 3}, hl7v2.CodeRequiredFieldMissing,
			"Ni IPP ni INS (PID-3) / Neither IPP nor INS (PID-3)")
	}
	if n, ok := pid.Name("L"); ok {
		p.BirthFamily = n.Family
		// IHE PAM France: PID-5.2 is the first prénom, PID-5.3 the whole
		// list of prénoms de naissance, space-separated.
		p.Given = strings.Fields(n.OtherGiven)
		if len(p.Given) == 0 || p.Given[0] != n.Given {
			p.Given = append([]string{n.Given}, p.Given...)
		}
		if n.Given == "" {
			p.Given = strings.Fields(n.OtherGiven)
		}
	}
	if n, ok := pid.Name("D"); ok {
		p.Family = n.Family
	}
	if p.Family == "" {
		p.Family = p.BirthFamily
	}
	if !pid.BirthDate.IsZero() {
		p.BirthDate = pid.BirthDate.Time.Format("2006-01-02")
	}
	p.Gender = map[string]string{"M": "male", "F": "female", "U": "unknown", "O": "other"}[pid.Sex]
	p.BirthPlace = pid.BirthPlace()
	if a, ok := pid.Address("H"); ok {
		p.Address = &intake.Address{City: a.City, PostalCode: a.PostalCode, Country: a.Country}
		if a.Street != "" {
			p.Address.Lines = []string{a.Street}
		}
	}
	deathTime := hl7Time(pid.DeathTime)
	if deathTime == nil && pid.DeathIndicator == "" {
		deathTime = shiftedDeath(msg)
	}
	if deathTime != nil || pid.DeathIndicator == "Y" {
		p.Deceased = deathTime
	}

	e := &ev.Encounter
	if pv1.VisitNumber.ID == "" {
		return ev, reject(fhir.Invalid, hl7v2.Location{Segment: "PV1", Sequence: 1, Field: 19}, hl7v2.CodeRequiredFieldMissing,
			"Numéro de venue absent (PV1-19) / Visit number missing (PV1-19)")
	}
	e.Identifier = intake.Identifier{System: urnOID(pv1.VisitNumber.AssigningAuthority), Value: pv1.VisitNumber.ID, Type: "VN"}
	e.Class = map[string]string{"I": "IMP", "O": "AMB", "E": "EMER", "R": "R"}[pv1.PatientClass]
	if e.Class == "" {
		e.Class = "IMP"
	}
	e.Elective = pv1.AdmissionType == "C"
	e.Start, e.End = hl7Time(pv1.AdmitTime), hl7Time(pv1.DischargeTime)
	if zbe, _ := msg.ZBE(); zbe != nil {
		e.Unit = zbe.UF()
		if e.Start == nil && kind == intake.KindAdmit {
			e.Start = hl7Time(zbe.Time)
		}
	}
	if zfm := msg.ZFM(); zfm != nil {
		e.ModeSortie = zfm.DischargeMode
	}
	e.Disposition = dispositionOf(e.ModeSortie, pv1)
	dgs, _ := msg.DG1()
	for _, d := range dgs {
		if d.Code.Code == "" {
			continue
		}
		e.Diagnoses = append(e.Diagnoses, intake.Diagnosis{System: systemICD10, Code: d.Code.Code, Display: d.Code.Text, Principal: d.Principal()})
	}
	for _, rol := range msg.ROL() {
		if rol.Role.Code != hl7v2.RoleODRP {
			continue
		}
		for _, x := range rol.Persons {
			pr := intake.Professional{Role: directory.RoleGP, Kind: "Practitioner", Name: strings.TrimSpace(x.Given + " " + x.Family)}
			if rpps := x.RPPS(); rpps != "" {
				pr.Identifier = append(pr.Identifier, intake.Identifier{System: directory.SystemRPPS, Value: rpps},
					intake.Identifier{System: directory.SystemIDNPS, Value: "8" + rpps})
			} else if x.ID != "" {
				pr.Identifier = append(pr.Identifier, intake.Identifier{System: urnOID(x.AssigningAuthority), Value: x.ID})
			}
			if len(pr.Identifier) > 0 {
				ev.Team = append(ev.Team, pr)
			}
		}
	}
	// Death: PID-29/30 or the PMSI mode de sortie 9.
	if kind == intake.KindDischarge && (p.Deceased != nil || pid.DeathIndicator == "Y" || e.ModeSortie == "9") {
		ev.Kind = intake.KindDeath
	}
	if ev.Kind == intake.KindUpdate || ev.Kind == intake.KindCancelAdmit || ev.Kind == intake.KindCancelDischarge {
		if evn, _ := msg.EVN(); evn != nil {
			if t := hl7Time(evn.Occurred); t != nil {
				ev.Time = *t
			} else if t := hl7Time(evn.Recorded); t != nil {
				ev.Time = *t
			}
		}
	}
	switch err := ev.Dated(); {
	case errors.Is(err, intake.ErrNoDischargeTime):
		return ev, reject(errKind(err), hl7v2.Location{Segment: "PV1", Sequence: 1, Field: 45}, hl7v2.CodeRequiredFieldMissing,
			"Date de sortie absente (PV1-45) / Discharge time missing (PV1-45)")
	case errors.Is(err, intake.ErrNoDeathTime):
		return ev, reject(errKind(err), hl7v2.Location{Segment: "PID", Sequence: 1, Field: 29}, hl7v2.CodeRequiredFieldMissing,
			"Décès non daté (PID-29, PV1-45) / Death not dated (PID-29, PV1-45)")
	}
	if ev.Time.IsZero() {
		ev.Time = mh.Time.Time
	}
	return ev, nil
}

// dispositionOf maps the PMSI mode de sortie (ZFM-2) to FHIR's discharge
// disposition: 8 home, 9 death, 6/7 another facility.
func dispositionOf(mode string, pv1 *hl7v2.PV1) string {
	switch mode {
	case "8":
		return "home"
	case "9":
		return "exp"
	case "6", "7":
		return "other-hcf"
	}
	if pv1.DischargedTo.Location != "" {
		return "other-hcf"
	}
	return ""
}

// shiftedDeath reads a death written three fields early, in PID-26 and
// PID-27 (citizenship and veterans status, which never hold a timestamp and
// "Y"), as a sample of the shared test data does. It only applies when
// PID-29 and PID-30 are empty, and is logged by the caller's archive.
func shiftedDeath(msg *hl7v2.Message) *time.Time {
	if msg.Value("PID", 1, 27, 1, 1, 1) != "Y" {
		return nil
	}
	ts, err := hl7v2.ParseTS(msg.Value("PID", 1, 26, 1, 1, 1))
	if err != nil || ts.Precision < hl7v2.PrecisionDay {
		return nil
	}
	t := ts.Time
	return &t
}
