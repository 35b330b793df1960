package teams

import (
	"errors"
	"strings"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// noticeNS derives the id of a hospitalisation notice from its stay and
// recipient, so that a redelivered or later event of the same stay never
// tells anyone twice.
var noticeNS = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://passerelle.health/fhir/Communication/hospitalisation"))

// noticeHospitalisation tells every current member of the team of an
// episode on hold that its patient is in hospital again: the visits pause
// and nobody must knock on an empty door. Once per stay and member.
func (p *plan) noticeHospitalisation(ep episode, t *team) error {
	if ep.ep.Status != "onhold" || t == nil || t.status() != "active" {
		return nil
	}
	stay := ""
	for _, x := range ep.ep.Extension {
		if x.URL != pathway.ExtReadmission {
			continue
		}
		enc, ended := "", false
		for _, sub := range x.Extension {
			switch sub.URL {
			case "encounter":
				enc = sub.Ref()
			case "end":
				ended = true
			}
		}
		if !ended && enc != "" {
			stay = enc
		}
	}
	if stay == "" {
		return nil
	}
	for i := range t.ct.Participant {
		pt := &t.ct.Participant[i]
		who := pt.Member.String()
		if !strings.HasPrefix(who, "PractitionerRole/") || !pt.Current() {
			continue
		}
		id := uuid.NewSHA1(noticeNS, []byte(p.tenant+"|"+ep.res.ID+"|"+stay+"|"+who)).String()
		if _, err := p.tx.Read(p.ctx, "Communication", id); err == nil {
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		p.notes = append(p.notes, &note{kind: "hospitalisation", who: who, id: id, about: []about{{res: ep.res, patient: ep.ep.Patient.String()}}})
	}
	return nil
}
