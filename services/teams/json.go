package teams

import (
	"context"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// The JSON editing shared by the services (internal/fhirjson).
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
