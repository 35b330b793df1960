package sqlstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

var (
	typeRE = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)
	// FHIR id: [A-Za-z0-9\-\.]{1,64}
	idRE = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
)

// ValidID tells whether s is a valid FHIR logical id.
func ValidID(s string) bool { return idRE.MatchString(s) }

// ValidType tells whether s has the shape of a FHIR resource type name.
func ValidType(s string) bool { return typeRE.MatchString(s) }

// parsed is a resource body split into its top-level members.
type parsed struct {
	typ     string
	id      string
	members map[string]json.RawMessage
}

func parseBody(body []byte) (parsed, error) {
	var p parsed
	if err := json.Unmarshal(body, &p.members); err != nil {
		return p, fmt.Errorf("%w: resource is not a JSON object: %v", store.ErrInvalid, err)
	}
	if p.members == nil {
		return p, fmt.Errorf("%w: resource is not a JSON object", store.ErrInvalid)
	}
	rt, ok := p.members["resourceType"]
	if !ok || json.Unmarshal(rt, &p.typ) != nil || !typeRE.MatchString(p.typ) {
		return p, fmt.Errorf("%w: resourceType missing or malformed", store.ErrInvalid)
	}
	if raw, ok := p.members["id"]; ok {
		if json.Unmarshal(raw, &p.id) != nil || !idRE.MatchString(p.id) {
			return p, fmt.Errorf("%w: id must match [A-Za-z0-9-.]{1,64}", store.ErrInvalid)
		}
	}
	return p, nil
}

// stamp returns the body with id, meta.versionId and meta.lastUpdated set,
// resourceType, id and meta first (as FHIR servers usually write them), the
// other members in a stable order.
func (p parsed) stamp(id string, version int64, at time.Time) ([]byte, error) {
	meta := map[string]json.RawMessage{}
	if raw, ok := p.members["meta"]; ok {
		if err := json.Unmarshal(raw, &meta); err != nil || meta == nil {
			return nil, fmt.Errorf("%w: meta must be an object", store.ErrInvalid)
		}
	}
	meta["versionId"] = json.RawMessage(strconv.Quote(strconv.FormatInt(version, 10)))
	meta["lastUpdated"] = json.RawMessage(`"` + at.UTC().Format("2006-01-02T15:04:05.000Z07:00") + `"`)
	metaJSON, err := marshalSorted(meta)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(p.members))
	for k := range p.members {
		switch k {
		case "resourceType", "id", "meta":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.Grow(len(metaJSON) + 64 + len(p.members)*32)
	b.WriteString(`{"resourceType":`)
	b.WriteString(strconv.Quote(p.typ))
	b.WriteString(`,"id":`)
	b.WriteString(strconv.Quote(id))
	b.WriteString(`,"meta":`)
	b.Write(metaJSON)
	for _, k := range keys {
		b.WriteByte(',')
		b.WriteString(jsonString(k))
		b.WriteByte(':')
		if err := json.Compact(&b, p.members[k]); err != nil {
			return nil, fmt.Errorf("%w: member %s: %v", store.ErrInvalid, k, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshalSorted(m map[string]json.RawMessage) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(jsonString(k))
		b.WriteByte(':')
		if err := json.Compact(&b, m[k]); err != nil {
			return nil, fmt.Errorf("%w: meta.%s: %v", store.ErrInvalid, k, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// micros stores instants as microseconds since the Unix epoch, the same way
// in both backends.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// jsonString quotes s as a JSON string (strconv.Quote's escapes are Go's, not
// JSON's).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
