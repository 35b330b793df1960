package teams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

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
}

// notifyTask records a notification to who about a task as a
// Communication (status in-progress), in the transaction of the change
// that warrants it; the teams-notify consumer delivers it.
func (p *plan) notifyTask(r resource, kind, who string) error {
	t := r.m
	title := str(t, "description")
	if title == "" {
		title = str(t, "code", "coding", "display")
	}
	due := ""
	if end, ok := parseTime(str(t, "restriction", "period", "end")); ok {
		due = end.In(paris).Format("02/01/2006")
	}
	var text string
	switch kind {
	case "assignment":
		text = "Une tâche vous est proposée : " + title
		if due != "" {
			text += ", à faire avant le " + due
		}
		text += ". Acceptez-la ou refusez-la depuis votre liste de tâches."
	case "unassignment":
		text = "La tâche « " + title + " » a été confiée à un autre professionnel : vous n'avez plus à la faire."
	case "overdue":
		text = "La tâche « " + title + " » a dépassé son échéance"
		if due != "" {
			text += " (" + due + ")"
		}
		text += ". Faites-la ou signalez ce qui l'empêche."
	case "escalation":
		text = title + ". Une décision de la coordination est attendue."
	case "cancellation":
		text = "La tâche « " + title + " » est annulée : vous n'avez plus à la faire."
	default:
		text = title
	}
	c := obj{
		"resourceType": "Communication", "id": uuid.NewString(), "status": "in-progress",
		"category":  []any{codeable(SystemKind, kind, subjects[kind])},
		"about":     []any{ref("Task/" + r.res.ID)},
		"recipient": []any{ref(who)},
		"payload":   []any{obj{"contentString": text}},
	}
	if pt := refOf(t["for"]); strings.HasPrefix(pt, "Patient/") {
		c["subject"] = ref(pt)
	}
	if cpts := p.s.cptsOf(p.tenant); cpts != "" {
		c["sender"] = ref(cpts)
	}
	res, err := p.tx.Create(p.ctx, p.tenant, mustJSON(c))
	if err != nil {
		return err
	}
	p.announce(res, bus.OpCreated)
	return nil
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
	cs, err := resources(m.Data, "Communication")
	if err != nil || len(cs) == 0 {
		return err
	}
	tenant := tenantOf(m, s.d.Tenant)
	id := str(cs[0], "id")
	cur, err := s.d.Store.Read(ctx, "Communication", id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := decode(cur.Body)
	if err != nil {
		return bus.Permanent(err)
	}
	if d := extension(c, ExtDelivery); d != nil {
		return nil // delivered or given up already
	}
	kind := firstCode(c["category"], SystemKind)
	text := str(c, "payload", "contentString")
	link := strings.TrimRight(s.d.PublicURL, "/") + "/worklist"
	var sendErr error
	delivered := 0
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
		n := notify.Notification{ID: fmt.Sprintf("%s-%d", id, i), Kind: kind, To: to, Subject: "Passerelle — " + subjects[kind],
			Body: text, Link: link}
		if kind == "" {
			n.Subject = "Passerelle"
		}
		if err := s.d.Notifier.Send(ctx, n); err != nil {
			sendErr = err
			break
		}
		delivered++
	}
	channel := s.d.Notifier.Channel()
	if sendErr == nil {
		s.sent.WithLabelValues(channel, "delivered").Add(float64(delivered))
		return s.recordDelivery(ctx, id, "delivered", channel, "", int(m.NumDelivered))
	}
	final := errors.Is(sendErr, notify.ErrUndeliverable)
	last := m.NumDelivered >= uint64(len(s.d.NotifyBackOff)+1)
	if !final && !last {
		s.sent.WithLabelValues(channel, "retry").Inc()
		s.log.WarnContext(ctx, "notification not delivered, will retry", "communication", id, "attempt", m.NumDelivered, "error", sendErr)
		return sendErr
	}
	s.sent.WithLabelValues(channel, "failed").Inc()
	s.log.ErrorContext(ctx, "notification not delivered", "communication", id, "attempts", m.NumDelivered, "error", sendErr)
	if err := s.recordDelivery(ctx, id, "failed", channel, sendErr.Error(), int(m.NumDelivered)); err != nil {
		return err
	}
	if final {
		return nil
	}
	return sendErr
}

// recordDelivery marks the Communication delivered (completed, sent) or
// failed (not-done with the reason), retrying a concurrent change.
func (s *Service) recordDelivery(ctx context.Context, id, outcome, channel, reason string, attempts int) error {
	var err error
	for range 5 {
		err = s.d.Store.Tx(ctx, func(tx store.Tx) error {
			r, err := readObj(ctx, tx, "Communication", id)
			if err != nil {
				return err
			}
			if extension(r.m, ExtDelivery) != nil {
				return nil
			}
			now := s.d.Clock.Now()
			ext := []any{obj{"url": "outcome", "valueCode": outcome}, obj{"url": "channel", "valueCode": channel},
				obj{"url": "attempts", "valueInteger": attempts}, obj{"url": "at", "valueDateTime": fmtTime(now)}}
			if outcome == "delivered" {
				if st := str(r.m, "status"); st != "completed" {
					r.m["status"] = "completed"
				}
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
			return tx.Emit(ctx, fhirEvent(r.res.Tenant, res))
		})
		if !errors.Is(err, store.ErrVersionConflict) {
			return err
		}
	}
	return err
}

func fhirEvent(tenant string, res store.Resource) store.Event {
	return fhirapi.Event(tenant, res, bus.OpUpdated, "")
}
