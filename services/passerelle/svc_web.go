package main

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	measure "github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/services/intake"
	"github.com/passerelle-sante/passerelle/services/outcomes"
	"github.com/passerelle-sante/passerelle/services/teams"
	"github.com/passerelle-sante/passerelle/services/worklist"
	"github.com/passerelle-sante/passerelle/services/worklist/ui"
)

// registerWeb adds the web pages: the worklist, the coordination's pages
// and the ward's discharge form, with the login's sessions, the worklist's
// actions, the teams' reassignment and a live feed of task events. The
// pages use the intake, teams and outcomes services this process built;
// a process serving the worklist alone builds them for the pages only,
// without their consumers and timers (those run in their own processes).
func registerWeb(p *Platform, wl *worklist.Service) func(context.Context) error {
	reassign := p.teamsSvc
	if reassign == nil {
		reassign = teams.New(teams.Deps{Store: p.Store, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant})
	}
	in := p.intakeSvc
	if in == nil {
		in = newIntake(p)
	}
	out := p.outcomesSvc
	if out == nil {
		out = outcomes.New(outcomes.Deps{Store: p.Store, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant})
	}
	feed := &ui.BusFeed{Bus: p.Bus, Tenant: p.Cfg.Tenant, Name: "worklist-live-" + safeName(p.owner), Log: p.Log}
	ui.New(ui.Deps{Store: p.Store, Actions: wl, Sessions: p.Sessions, Feed: feed, Reassigner: reassign,
		Intake: wardForm{in}, Outcomes: outcomesPage{out}, Clock: p.Clock, Log: p.Log.With("component", "web")}).Register(p.Mux)
	return feed.Run
}

// wardForm sends a discharge typed in the web form to intake, as the
// facility the form names: the same validation, archive, de-duplication
// and events as a hospital system's $process-message.
type wardForm struct{ in *intake.Service }

func (w wardForm) ProcessMessage(ctx context.Context, a directory.Actor, bundle []byte) ([]byte, error) {
	finess := senderFINESS(bundle)
	if finess == "" {
		return nil, fhir.Errorf(fhir.Invalid, "required", "L'établissement (FINESS) est obligatoire", "The facility (FINESS) is required",
			"Bundle.entry[0].resource.sender.identifier")
	}
	sys := directory.Actor{Tenant: a.Tenant, System: "web-form", FINESS: finess, Device: a.Reference(), Roles: a.Roles, Practitioner: a.Practitioner}
	status, answer, err := w.in.Process(ctx, sys, bundle)
	if err != nil {
		fe := fhir.FromError(err)
		status, answer = fhirapi.Status(fe.Kind), fe.OperationOutcome()
	}
	if status != http.StatusOK {
		return nil, formError(status, answer, err)
	}
	return answer, nil
}

// formError is the error the form shows for an answer other than 200: the
// first issue of the OperationOutcome, where it is, of the kind the status
// says. cause, when there is
// one, is kept for the log.
func formError(status int, outcome []byte, cause error) error {
	var oo struct {
		Issue []struct {
			Diagnostics string
			Expression  []string
		}
	}
	_ = json.Unmarshal(outcome, &oo)
	msg := strings.TrimSpace(string(outcome))
	var expr []string
	if len(oo.Issue) > 0 {
		msg, expr = oo.Issue[0].Diagnostics, oo.Issue[0].Expression
	}
	fe := fhir.Errorf(fhirapi.KindOf(status), "invalid", msg, msg, expr...)
	fe.Err = cause
	return fe
}

// senderFINESS reads MessageHeader.sender's FINESS from a message Bundle.
func senderFINESS(bundle []byte) string {
	var b struct {
		Entry []struct {
			Resource struct {
				ResourceType string
				Sender       struct {
					Identifier struct{ System, Value string }
				}
			}
		}
	}
	if json.Unmarshal(bundle, &b) != nil {
		return ""
	}
	for _, e := range b.Entry {
		if e.Resource.ResourceType == "MessageHeader" && e.Resource.Sender.Identifier.System == directory.SystemFINESS {
			return e.Resource.Sender.Identifier.Value
		}
	}
	return ""
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
}

// outcomesPage computes the coordinator's outcomes page from the outcomes
// service's projection: the same counts as $evaluate-measure, unmasked
// (the CPTS's own figures), and the Kaplan–Meier curves as SVG.
type outcomesPage struct{ s *outcomes.Service }

func (o outcomesPage) Report(ctx context.Context, a directory.Actor, start, end time.Time, lang string) ([]ui.OutcomeRow, []template.HTML, error) {
	if err := outcomes.MayRead(a); err != nil {
		return nil, nil, err
	}
	p, err := o.s.Params(ctx, a.Tenant, measure.DayOf(start), measure.DayOf(end))
	if err != nil {
		return nil, nil, err
	}
	rs, err := o.s.Evaluate(ctx, a.Tenant, p)
	if err != nil {
		return nil, nil, err
	}
	var rows []ui.OutcomeRow
	for _, r := range outcomes.Rows(rs) {
		title := r.TitleFR
		if lang == "en" {
			title = r.TitleEN
		}
		rows = append(rows, ui.OutcomeRow{ID: r.ID, Title: title, Initial: r.Initial, Denominator: r.Denominator, Numerator: r.Numerator,
			Censored: r.Censored, Excluded: r.Exclusions, Rate: r.Rate, Lower: r.Lower, Upper: r.Upper, HasRate: r.HasRate,
			FixedHorizon: r.FixedHorizon, CensoredRegister: r.CensoredRegister, ExcludedDeath: r.ExcludedDeath,
			HasKM: r.KM.OK, KM: r.KM.Estimate, KMLower: r.KM.Low, KMUpper: r.KM.High, AtRisk: r.KM.AtRisk})
	}
	var curves []template.HTML
	for _, kind := range []string{measure.CurveReadmission, measure.CurveSurvival} {
		cs, err := o.s.Curves(ctx, a.Tenant, p, kind, "", 365)
		if err != nil {
			return nil, nil, err
		}
		var b bytes.Buffer
		if err := measure.RenderSVG(&b, cs, outcomes.SVGOptions(kind, lang, 0)); err != nil {
			return nil, nil, err
		}
		curves = append(curves, template.HTML(b.String())) // our own SVG, labels escaped by the renderer
	}
	return rows, curves, nil
}
