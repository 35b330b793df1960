package teams

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// obj is a FHIR resource or element as decoded JSON: the service edits
// the few elements it owns and keeps every other one as it came.
type obj = map[string]any

func decode(b []byte) (obj, error) {
	var m obj
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
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

// str follows keys through nested objects (and the first element of
// lists) to a string.
func str(m obj, keys ...string) string {
	var v any = m
	for _, k := range keys {
		if l, ok := v.([]any); ok {
			if len(l) == 0 {
				return ""
			}
			v = l[0]
		}
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[k]
	}
	s, _ := v.(string)
	return s
}

func list(v any) []any           { l, _ := v.([]any); return l }
func asObj(v any) obj            { m, _ := v.(map[string]any); return m }
func ref(r string) obj           { return obj{"reference": r} }
func refOf(v any) string         { return str(asObj(v), "reference") }
func fmtTime(t time.Time) string { return t.In(paris).Format(time.RFC3339) }

func codeable(system, code, display string) obj {
	c := obj{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return obj{"coding": []any{c}}
}

// firstCode returns the first code of a CodeableConcept (or a list of
// them) in system.
func firstCode(v any, system string) string {
	if l, ok := v.([]any); ok {
		for _, e := range l {
			if c := firstCode(e, system); c != "" {
				return c
			}
		}
		return ""
	}
	for _, c := range list(asObj(v)["coding"]) {
		if co := asObj(c); str(co, "system") == system {
			return str(co, "code")
		}
	}
	return ""
}

func extension(m obj, url string) obj {
	for _, e := range list(m["extension"]) {
		if str(asObj(e), "url") == url {
			return asObj(e)
		}
	}
	return nil
}

func setExtension(m obj, ext obj) {
	url := str(ext, "url")
	var out []any
	for _, e := range list(m["extension"]) {
		if str(asObj(e), "url") != url {
			out = append(out, e)
		}
	}
	m["extension"] = append(out, ext)
}

func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation("2006-01-02", s, paris); err == nil {
		return t, true
	}
	return time.Time{}, false
}

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

// resources returns the resources of a type an event carries: the resource
// itself, or the entries of a history Bundle.
func resources(data []byte, typ string) ([]obj, error) {
	root, err := decode(data)
	if err != nil {
		return nil, bus.Permanent(err)
	}
	if root["resourceType"] == typ {
		return []obj{root}, nil
	}
	var out []obj
	for _, e := range list(root["entry"]) {
		if r := asObj(asObj(e)["resource"]); r["resourceType"] == typ {
			out = append(out, r)
		}
	}
	return out, nil
}

func tenantOf(m bus.Msg, def string) string {
	if t := m.Header[bus.HeaderTenant]; t != "" {
		return t
	}
	return def
}

func traceOf(m bus.Msg) string { return m.Header[bus.HeaderTraceparent] }
