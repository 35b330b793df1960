package teams

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Tasks, CareTeams and episodes are read and edited as Go types
// (pkg/fhir/model); the other resources (Patient, CarePlan, Provenance,
// Communication) as decoded JSON, with the editing shared by the services
// (internal/fhirjson).
type obj = fhirjson.Obj

var (
	mustJSON     = fhirjson.MustJSON
	list         = fhirjson.List
	asObj        = fhirjson.AsObj
	firstCode    = fhirjson.FirstCode
	codeable     = fhirjson.Codeable
	ref          = fhirjson.Ref
	extension    = fhirjson.Extension
	setExtension = fhirjson.SetExtension
	parseTime    = fhirjson.ParseTime
	str          = fhirjson.Get
	decode       = fhirjson.Decode
)

func refOf(v any) string         { return str(asObj(v), "reference") }
func fmtTime(t time.Time) string { return t.In(paris).Format(time.RFC3339) }

// resource is a stored resource with its decoded body.
type resource struct {
	res store.Resource
	m   obj
}

func readObj(ctx context.Context, tx store.Tx, typ, id string) (resource, error) {
	r, err := tx.Read(ctx, typ, id)
	if err != nil {
		return resource{}, err
	}
	m, err := decode(r.Body)
	if err != nil {
		return resource{}, fmt.Errorf("%s/%s: %w", typ, id, err)
	}
	return resource{res: r, m: m}, nil
}

// readAs reads a stored resource into its Go type.
func readAs[T any](ctx context.Context, tx store.Tx, typ, id string) (store.Resource, *T, error) {
	r, err := tx.Read(ctx, typ, id)
	if err != nil {
		return store.Resource{}, nil, err
	}
	var v T
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return store.Resource{}, nil, fmt.Errorf("%s/%s: %w", typ, id, err)
	}
	return r, &v, nil
}

// task is a stored Task with its typed body.
type task struct {
	res store.Resource
	t   *model.Task
}

func readTask(ctx context.Context, tx store.Tx, id string) (task, error) {
	r, t, err := readAs[model.Task](ctx, tx, "Task", id)
	return task{res: r, t: t}, err
}

// episode is a stored EpisodeOfCare with its typed body.
type episode struct {
	res store.Resource
	ep  *model.EpisodeOfCare
}

func readEpisode(ctx context.Context, tx store.Tx, id string) (episode, error) {
	r, ep, err := readAs[model.EpisodeOfCare](ctx, tx, "EpisodeOfCare", id)
	return episode{res: r, ep: ep}, err
}

func readTeam(ctx context.Context, tx store.Tx, id string) (store.Resource, *model.CareTeam, error) {
	return readAs[model.CareTeam](ctx, tx, "CareTeam", id)
}

// val is a value[x] string ("" when absent).
func val(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
