package teams

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// subjects of the notifications, by kind. Notifications say what to do and
// where, never who the patient is: the channel may not be a secure one.
var subjects = map[string]string{
	"assignment":   "Nouvelle tâche",
	"unassignment": "Tâche retirée",
	"overdue":      "Tâche en retard",
	"escalation":   "Escalade : une tâche attend une décision",
	"cancellation": "Tâche annulée",
	"reminder":     "Rappel",
	"alert":        "Alerte patient",
	// hospitalisation: a followed patient is in hospital again (the
	// note is about the episode).
	"hospitalisation": "Patient hospitalisé",
	// late-inclusion: the pathway's notice of a discharge notified after
	// some of its windows had passed (docs/domain.md).
	"late-inclusion": "Inclusion tardive",
}

// note is a notification being gathered: one per kind and recipient in a
// change, about every task concerned, so that a GP given two tasks of one
// episode is told once.
type note struct {
	kind, who string
	// id, when set, is the Communication's: a notice that must be
	// written once whatever the events.
	id    string
	about []about
}

// about is what a notification is about: a task, or an episode (a
// hospitalisation notice).
type about struct {
	res  store.Resource
	task *model.Task // nil for an episode
	// patient is an episode's patient.
	patient string
}

// patientRef is the patient the subject concerns ("" when unknown).
func (a about) patientRef() string {
	pt := a.patient
	if a.task != nil {
		pt = a.task.For.String()
	}
	if strings.HasPrefix(pt, "Patient/") {
		return pt
	}
	return ""
}

// notifyTask gathers a notification to who about a task; commit records
// the notifications as Communications (status in-progress) in the
// transaction of the change that warrants them, and the teams-notify
// consumer delivers them.
func (p *plan) notifyTask(r task, kind, who string) error {
	key := kind + "\x00" + who
	for _, n := range p.notes {
		if n.kind+"\x00"+n.who == key {
			for _, t := range n.about {
				if t.res.ID == r.res.ID {
					return nil
				}
			}
			n.about = append(n.about, about{res: r.res, task: r.t})
			return nil
		}
	}
	p.notes = append(p.notes, &note{kind: kind, who: who, about: []about{{res: r.res, task: r.t}}})
	return nil
}

func taskDue(t *model.Task) string {
	if t.Restriction == nil || t.Restriction.Period == nil {
		return ""
	}
	if end, ok := parseTime(t.Restriction.Period.End); ok {
		return end.In(paris).Format("02/01/2006")
	}
	return ""
}

// text is what a notification says: what to do and by when, never who the
// patient is (the channel may not be a secure one).
func (n *note) text() string {
	var items []string
	for _, a := range n.about {
		var item string
		if a.task != nil {
			item = a.task.Title()
			if due := taskDue(a.task); due != "" && (n.kind == "assignment" || n.kind == "overdue") {
				item += " (avant le " + due + ")"
			}
		}
		items = append(items, item)
	}
	one := len(items) == 1
	list := strings.Join(items, " ; ")
	switch n.kind {
	case "assignment":
		if one {
			return "Une tâche vous est proposée : " + list + ". Acceptez-la ou refusez-la depuis votre liste de tâches."
		}
		return fmt.Sprintf("%d tâches vous sont proposées : %s. Acceptez-les ou refusez-les depuis votre liste de tâches.", len(items), list)
	case "unassignment":
		return "Confiée à un autre professionnel, vous n'avez plus à faire : " + list + "."
	case "overdue":
		return "Échéance dépassée : " + list + ". Faites-la ou signalez ce qui l'empêche."
	case "escalation":
		return list + ". Une décision de la coordination est attendue."
	case "alert":
		return list + ". Ouvrez l'alerte depuis votre liste de tâches et accusez-en réception."
	case "cancellation":
		return "Annulée, vous n'avez plus à faire : " + list + "."
	case "hospitalisation":
		return "Un patient que vous suivez est hospitalisé : ses visites sont suspendues jusqu'à sa sortie, ne vous déplacez pas. Il est signalé dans votre liste de tâches."
	}
	return list
}

// flushNotes writes the gathered notifications as Communications and
// returns them, to be announced together.
func (p *plan) flushNotes() ([]store.Resource, error) {
	var out []store.Resource
	for _, n := range p.notes {
		var refs []any
		patient := ""
		for _, a := range n.about {
			typ := a.res.Type
			if typ == "" {
				typ = "Task"
			}
			refs = append(refs, ref(typ+"/"+a.res.ID))
			if pt := a.patientRef(); pt != "" {
				patient = pt
			}
		}
		id := n.id
		if id == "" {
			id = store.NewID()
		}
		c := obj{
			"resourceType": "Communication", "id": id, "status": "in-progress",
			"category":  []any{codeable(SystemKind, n.kind, subjects[n.kind])},
			"about":     refs,
			"recipient": []any{ref(n.who)},
			"payload":   []any{obj{"contentString": n.text()}},
		}
		if patient != "" {
			c["subject"] = ref(patient)
		}
		if cpts := p.s.cptsOf(p.tenant); cpts != "" {
			c["sender"] = ref(cpts)
		}
		res, err := p.tx.Create(p.ctx, p.tenant, mustJSON(c))
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	p.notes = nil
	return out, nil
}

// Deliver is the teams-notify consumer: it delivers a Communication to each
// of its recipients through the Notifier, then records the delivery on it.
// A failure is retried with back-off; the last attempt, or a failure no
// retry can fix, records the Communication as not-done with the reason, for
// the coordinator to see, and the message goes to the dead-letter stream
// when a replay could still deliver it. A Communication already delivered
// is not sent again.
func (s *Service) Deliver(ctx context.Context, m bus.Msg) error {
	if rf := m.Header[bus.HeaderReplayFor]; rf != "" && rf != DurableNotify {
		return nil
	}
	change, err := event.Decode(m)
	if err != nil {
		return bus.Permanent(err)
	}
	cs := change.Of("Communication")
	if len(cs) == 0 {
		return nil
	}
	tenant := change.TenantOr(s.d.Tenant)
	channel := s.d.Notifier.Channel()
	var done []string
	var sendErr error
	var failed string
	for _, ev := range cs {
		id := str(ev, "id")
		cur, err := s.d.Store.Read(ctx, "Communication", id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		c, err := decode(cur.Body)
		if err != nil {
			return bus.Permanent(err)
		}
		if extension(c, ExtDelivery) != nil {
			continue // delivered or given up already
		}
		if sendErr = s.send(ctx, tenant, id, c); sendErr != nil {
			failed = id
			break
		}
		done = append(done, id)
	}
	s.sent.WithLabelValues(channel, "delivered").Add(float64(len(done)))
	if err := s.recordDelivery(ctx, done, "delivered", channel, "", int(m.NumDelivered)); err != nil {
		return err
	}
	if sendErr == nil {
		return nil
	}
	final := errors.Is(sendErr, notify.ErrUndeliverable)
	last := m.NumDelivered >= uint64(len(s.d.NotifyBackOff)+1)
	if !final && !last {
		s.sent.WithLabelValues(channel, "retry").Inc()
		s.log.WarnContext(ctx, "notification not delivered, will retry", "communication", failed, "attempt", m.NumDelivered, "error", sendErr)
		return sendErr
	}
	s.sent.WithLabelValues(channel, "failed").Inc()
	s.log.ErrorContext(ctx, "notification not delivered", "communication", failed, "attempts", m.NumDelivered, "error", sendErr)
	if err := s.recordDelivery(ctx, []string{failed}, "failed", channel, sendErr.Error(), int(m.NumDelivered)); err != nil {
		return err
	}
	if final && len(cs) > 1 {
		// The others of the batch still go: deliver again without the
		// one that cannot be.
		return fmt.Errorf("%s undeliverable, the others of its batch retried: %w", failed, sendErr)
	}
	if final {
		return nil
	}
	return sendErr
}

// send delivers one Communication to each of its recipients.
func (s *Service) send(ctx context.Context, tenant, id string, c obj) error {
	kind := firstCode(c["category"], SystemKind)
	link := strings.TrimRight(s.d.PublicURL, "/") + "/worklist"
	for i, rc := range list(c["recipient"]) {
		who := refOf(rc)
		if !strings.HasPrefix(who, "PractitionerRole/") {
			continue
		}
		mem, ok, err := s.member(ctx, tenant, who)
		if err != nil {
			return err
		}
		to := notify.Recipient{Ref: who}
		if ok {
			to.Name, to.Email, to.Phone = mem.Name, mem.Email, mem.Phone
		}
		subject := "Passerelle"
		if sub := subjects[kind]; sub != "" {
			subject += " — " + sub
		}
		n := notify.Notification{ID: fmt.Sprintf("%s-%d", id, i), Kind: kind, To: to, Subject: subject,
			Body: str(c, "payload", "contentString"), Link: link}
		if err := s.d.Notifier.Send(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// recordDelivery marks Communications delivered (completed, sent) or
// failed (not-done with the reason), in one transaction, retrying a
// concurrent change.
func (s *Service) recordDelivery(ctx context.Context, ids []string, outcome, channel, reason string, attempts int) error {
	if len(ids) == 0 {
		return nil
	}
	// Delivery records are the notifier's own writes: audited as the
	// teams service's, caused by the delivery (pkg/store WithActor).
	ctx = store.WithActor(ctx, store.Actor{Agent: store.ServiceAgent("teams-notify"), Cause: "delivery " + outcome + " via " + channel})
	var err error
	for range 5 {
		err = s.d.Store.Tx(ctx, func(tx store.Tx) error {
			for _, id := range ids {
				r, err := readObj(ctx, tx, "Communication", id)
				if err != nil {
					return err
				}
				if extension(r.m, ExtDelivery) != nil {
					continue
				}
				now := s.d.Clock.Now()
				ext := []any{obj{"url": "outcome", "valueCode": outcome}, obj{"url": "channel", "valueCode": channel},
					obj{"url": "attempts", "valueInteger": attempts}, obj{"url": "at", "valueDateTime": fmtTime(now)}}
				if outcome == "delivered" {
					r.m["status"] = "completed"
					if str(r.m, "sent") == "" {
						r.m["sent"] = fmtTime(now)
					}
				} else {
					r.m["status"] = "not-done"
					r.m["statusReason"] = obj{"text": "Non délivrée : " + reason}
					ext = append(ext, obj{"url": "error", "valueString": reason})
				}
				setExtension(r.m, obj{"url": ExtDelivery, "extension": ext})
				r.m["id"] = id
				delete(r.m, "meta")
				res, err := tx.Update(ctx, r.res.Tenant, mustJSON(r.m), r.res.Version)
				if err != nil {
					return err
				}
				if err := event.Emit(ctx, tx, event.New(r.res.Tenant, bus.OpUpdated, "", res)); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, store.ErrVersionConflict) {
			return err
		}
	}
	return err
}
