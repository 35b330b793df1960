package pathway

import (
	"context"
	"encoding/json"
	"fmt"

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

func removeExtension(m obj, url string) {
	var keep []any
	for _, e := range list(m["extension"]) {
		if asObj(e)["url"] != url {
			keep = append(keep, e)
		}
	}
	if keep == nil {
		delete(m, "extension")
		return
	}
	m["extension"] = keep
}

// resource is a stored resource with its decoded body.
type resource struct {
	res store.Resource
	m   obj
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

// typed decodes m into its Go type.
func typed[T any](m obj) (*T, error) {
	var v T
	if err := json.Unmarshal(mustJSON(m), &v); err != nil {
		return nil, err
	}
	return &v, nil
}
