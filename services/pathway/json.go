package pathway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// obj is a FHIR resource being read or built: the pathway service edits
// resources as JSON objects, keeping every element it does not know.
type obj = map[string]any

func decodeObj(b []byte) (obj, error) {
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

// firstCode returns the first coding's code of a CodeableConcept, or of the
// first of a list of them, with a given system ("" for any).
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

func codeable(system, code, display string) obj {
	c := obj{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return obj{"coding": []any{c}}
}

func ref(r string) obj { return obj{"reference": r} }

// extension finds the first extension with url.
func extension(m obj, url string) obj {
	for _, e := range list(m["extension"]) {
		if eo := asObj(e); eo["url"] == url {
			return eo
		}
	}
	return nil
}

// setExtension replaces (or adds) the extension with url.
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
