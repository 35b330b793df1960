package worklist

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// The JSON editing shared by the services (internal/fhirjson).
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

func readObj(ctx context.Context, r interface {
	Read(ctx context.Context, typ, id string) (store.Resource, error)
}, typ, id string) (resource, error) {
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
