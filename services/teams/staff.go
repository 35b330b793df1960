package teams

import (
	"context"

	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Staff applies the team rules to tasks the pathway service is about to
// create, in its transaction (pathway.Staffer): the episode's CareTeam is
// formed when it has none; each requested task gets its owner — the
// team's member of its role, else the next candidate; the patient for a
// task without role; an owner the pathway already set (the referent's
// tasks) is adopted — and its assignment record, in place; the CareTeam,
// the assignment notifications and the acceptance deadlines are written in
// tx. The pathway then writes each task once, owned: this service writes a
// task again only when its owner declines it, lets it time out, or someone
// reassigns it (docs/architecture.md, "Who writes what").
//
// The writes are the teams service's: ctx carries its actor, whatever
// process runs the pathway.
func (s *Service) Staff(ctx context.Context, tx store.Tx, tenant, trace string, epRes store.Resource, ep *model.EpisodeOfCare, ts []*model.Task) error {
	cause := "staffing of EpisodeOfCare/" + epRes.ID
	if a, ok := store.ActorFrom(ctx); ok && a.Cause != "" {
		// What set the pathway off (its event, its timer) is the cause.
		cause = a.Cause + ", " + cause
	}
	ctx = store.WithActor(ctx, store.Actor{Agent: store.ServiceAgent(DurableEpisode), Cause: cause})
	p, err := s.newPlan(ctx, tx, tenant, trace)
	if err != nil {
		return err
	}
	epID := epRes.ID
	t, err := p.teamOf(epID)
	if err != nil {
		return err
	}
	if t == nil {
		roles, pre := rolesAndOwners(ts)
		if _, err := p.form(episode{res: epRes, ep: ep}, roles, pre); err != nil {
			return err
		}
	}
	for _, tk := range ts {
		if tk.Status != "requested" {
			continue
		}
		r := task{res: store.Resource{Type: "Task", ID: tk.ID, Tenant: tenant}, t: tk}
		a := assignmentOf(tk)
		role := tk.Role()
		switch owner := tk.Owner.String(); {
		case role == "" && owner == "":
			// A task for the patient (daily self-weighing): the patient owns it.
			pt := tk.For.String()
			if pt == "" {
				continue
			}
			tk.Owner = model.Ref(pt)
		case role == "":
			continue
		case owner == "":
			if err := p.assignNext(r, &a, epID, ""); err != nil {
				return err
			}
		default:
			if err := p.adopt(r, &a, epID); err != nil {
				return err
			}
		}
		a.set(tk)
	}
	return p.commit()
}
