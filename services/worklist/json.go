package worklist

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// obj is a FHIR resource read or built as a JSON object: every element the
// service does not know is kept as it was.
type obj = map[string]any

func decodeObj(b []byte) (obj, error) {
	var m obj
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return m, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func str(m obj, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

func list(v any) []any { l, _ := v.([]any); return l }

func asObj(v any) obj { m, _ := v.(map[string]any); return m }

// firstCode returns the first code of a CodeableConcept (or of a list of
// them) in system ("" for any).
func firstCode(cc any, system string) string {
	if l, ok := cc.([]any); ok {
		for _, c := range l {
			if code := firstCode(c, system); code != "" {
				return code
			}
		}
		return ""
	}
	for _, c := range list(asObj(cc)["coding"]) {
		co := asObj(c)
		if system == "" || co["system"] == system {
			if code, _ := co["code"].(string); code != "" {
				return code
			}
		}
	}
	return ""
}

// hasCoding tells whether a CodeableConcept carries system|code.
func hasCoding(cc any, system, code string) bool {
	for _, c := range list(asObj(cc)["coding"]) {
		co := asObj(c)
		if co["code"] == code && (system == "" || co["system"] == system) {
			return true
		}
	}
	return false
}

func codeable(system, code, display string) obj {
	c := obj{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return obj{"coding": []any{c}}
}

func ref(r string) obj { return obj{"reference": r} }

func extension(m obj, url string) obj {
	for _, e := range list(m["extension"]) {
		if eo := asObj(e); eo["url"] == url {
			return eo
		}
	}
	return nil
}

func setExtension(m obj, ext obj) {
	exts := list(m["extension"])
	for i, e := range exts {
		if asObj(e)["url"] == ext["url"] {
			exts[i] = ext
			m["extension"] = exts
			return
		}
	}
	m["extension"] = append(exts, ext)
}

func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, f := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(f, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

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

// resources returns the resources of type typ an event carries: the
// resource itself, or the entries of a history Bundle.
func resources(data []byte, typ string) ([]obj, error) {
	m, err := decodeObj(data)
	if err != nil {
		return nil, fmt.Errorf("event body: %w", err)
	}
	if m["resourceType"] == typ {
		return []obj{m}, nil
	}
	var out []obj
	if m["resourceType"] == "Bundle" {
		for _, e := range list(m["entry"]) {
			if r := asObj(asObj(e)["resource"]); r["resourceType"] == typ {
				out = append(out, r)
			}
		}
	}
	return out, nil
}
