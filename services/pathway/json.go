package pathway

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Tasks and the EpisodeOfCare are read and edited as Go types
// (pkg/fhir/model); the other resources (CarePlan, Goal, Communication, the
// Encounter and Observation of the events) as decoded JSON, with the
// editing shared by the services (internal/fhirjson).
type obj = fhirjson.Obj

var (
	decodeObj = fhirjson.Decode
	mustJSON  = fhirjson.MustJSON
	list      = fhirjson.List
	asObj     = fhirjson.AsObj
	firstCode = fhirjson.FirstCode
	codeable  = fhirjson.Codeable
	ref       = fhirjson.Ref
	extension = fhirjson.Extension
	parseTime = fhirjson.ParseTime
	str       = fhirjson.Str
	hasCoding = fhirjson.HasCoding
)

// resource is a stored resource with its decoded body.
type resource struct {
	res store.Resource
	m   obj
}

// taskRes is a stored Task with its Go type.
type taskRes struct {
	res store.Resource
	t   *model.Task
}

func readTask(ctx context.Context, tx store.Tx, id string) (*taskRes, error) {
	r, err := tx.Read(ctx, "Task", id)
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", "Task", id, err)
	}
	var t model.Task
	if err := json.Unmarshal(r.Body, &t); err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", "Task", id, err)
	}
	return &taskRes{res: r, t: &t}, nil
}

// epRes is a stored EpisodeOfCare with its Go type.
type epRes struct {
	res store.Resource
	e   *model.EpisodeOfCare
}

func readEpisode(ctx context.Context, tx store.Tx, id string) (epRes, error) {
	r, err := tx.Read(ctx, "EpisodeOfCare", id)
	if err != nil {
		return epRes{}, fmt.Errorf("read %s/%s: %w", "EpisodeOfCare", id, err)
	}
	var e model.EpisodeOfCare
	if err := json.Unmarshal(r.Body, &e); err != nil {
		return epRes{}, fmt.Errorf("read %s/%s: %w", "EpisodeOfCare", id, err)
	}
	return epRes{res: r, e: &e}, nil
}

// withoutExtension is exts less those with url (nil when none is left, so
// that the element is left out).
func withoutExtension(exts []model.Extension, url string) []model.Extension {
	var keep []model.Extension
	for _, x := range exts {
		if x.URL != url {
			keep = append(keep, x)
		}
	}
	return keep
}

// window is a task's restriction period as written ("" when absent).
func window(t *model.Task) (start, end string) {
	if t.Restriction == nil || t.Restriction.Period == nil {
		return "", ""
	}
	return t.Restriction.Period.Start, t.Restriction.Period.End
}

func readObj(ctx context.Context, tx store.Tx, typ, id string) (resource, error) {
	r, err := tx.Read(ctx, typ, id)
	if err != nil {
		return resource{}, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	m, err := decodeObj(r.Body)
	if err != nil {
		return resource{}, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	return resource{res: r, m: m}, nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// toObj is v (a pkg/fhir/model type) as decoded JSON, for the paths that
// still edit maps.
func toObj(v any) obj {
	m, err := decodeObj(mustJSON(v))
	if err != nil {
		panic(err) // a model type always encodes to an object
	}
	return m
}
