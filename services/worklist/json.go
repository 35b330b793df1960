package worklist

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Tasks and Observations are read and edited as Go types
// (pkg/fhir/model); the other resources (Flag, EpisodeOfCare, CarePlan,
// QuestionnaireResponse) as decoded JSON, with the editing shared by the
// services (internal/fhirjson). So are two bodies a client sends, checked
// element by element as JSON: an Observation (ParseObservation) and a
// Task put over HTTP (its fixed elements compared with the stored ones).
type obj = fhirjson.Obj

var (
	decodeObj    = fhirjson.Decode
	mustJSON     = fhirjson.MustJSON
	list         = fhirjson.List
	asObj        = fhirjson.AsObj
	firstCode    = fhirjson.FirstCode
	codeable     = fhirjson.Codeable
	ref          = fhirjson.Ref
	extension    = fhirjson.Extension
	setExtension = fhirjson.SetExtension
	parseTime    = fhirjson.ParseTime
	str          = fhirjson.Str
	hasCoding    = fhirjson.HasCoding
)

// formatTime writes an instant as FHIR dateTime in Europe/Paris.
func formatTime(t time.Time) string { return t.In(paris).Format(time.RFC3339) }

// num formats a measurement the French way (comma decimal separator).
func num(f float64) string {
	s := strconv.FormatFloat(f, 'f', -1, 64)
	for i := range s {
		if s[i] == '.' {
			return s[:i] + "," + s[i+1:]
		}
	}
	return s
}

// resource is a stored resource with its decoded body.
type resource struct {
	res store.Resource
	m   obj
}

func readObj(ctx context.Context, r reader, typ, id string) (resource, error) {
	res, err := r.Read(ctx, typ, id)
	if err != nil {
		return resource{}, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	m, err := decodeObj(res.Body)
	if err != nil {
		return resource{}, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	return resource{res: res, m: m}, nil
}

// reader reads a stored resource: the store, or a transaction.
type reader interface {
	Read(ctx context.Context, typ, id string) (store.Resource, error)
}

// task is a stored Task with its typed body.
type task struct {
	res store.Resource
	t   *model.Task
}

func readTask(ctx context.Context, r reader, id string) (task, error) {
	res, err := r.Read(ctx, "Task", id)
	if err != nil {
		return task{}, fmt.Errorf("read Task/%s: %w", id, err)
	}
	var t model.Task
	if err := json.Unmarshal(res.Body, &t); err != nil {
		return task{}, fmt.Errorf("read Task/%s: %w", id, err)
	}
	return task{res: res, t: &t}, nil
}
