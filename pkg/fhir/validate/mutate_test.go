package validate

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestMutations replaces random parts of the sample message with random
// JSON, keeping it well-formed, so that the validator meets types, shapes
// and references it does not expect deep inside a message — where the
// byte-level fuzzer rarely gets, since most of its inputs are not JSON.
func TestMutations(t *testing.T) {
	v := newValidator(t)
	var sample any
	if err := json.Unmarshal(readTestdata(t, "discharge-hf-declared-team.json"), &sample); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		doc := clone(sample)
		for k := 0; k < 1+r.IntN(3); k++ {
			doc = mutate(r, doc, sample)
		}
		body, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range v.ValidateBundle(body) {
			if is.Code == "exception" || is.Expression == "" || is.FR == "" || is.EN == "" {
				t.Fatalf("%s\non %s", is.EN, body)
			}
		}
	}
}

func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = clone(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = clone(e)
		}
		return out
	}
	return v
}

// mutate replaces one randomly chosen node of doc.
func mutate(r *rand.Rand, doc, sample any) any {
	var paths [][]any
	var collect func(v any, path []any)
	collect = func(v any, path []any) {
		paths = append(paths, append([]any(nil), path...))
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				collect(e, append(path, k))
			}
		case []any:
			for i, e := range x {
				collect(e, append(path, i))
			}
		}
	}
	collect(doc, nil)
	path := paths[r.IntN(len(paths))]
	palette := []func() any{
		func() any { return nil },
		func() any { return "" },
		func() any { return "x" },
		func() any { return "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5002" },
		func() any { return "Patient/1" },
		func() any { return "#c" },
		func() any { return json.Number("0") },
		func() any { return json.Number("-1.5e3") },
		func() any { return true },
		func() any { return []any{} },
		func() any { return map[string]any{} },
		func() any { return []any{json.Number("1"), nil} },
		func() any { return map[string]any{"resourceType": "Patient", "id": "c"} },
		func() any { return map[string]any{"url": "http://example.org/x", "valueString": "y"} },
		func() any { // a random subtree of the sample
			var all []any
			var grab func(v any)
			grab = func(v any) {
				all = append(all, v)
				switch x := v.(type) {
				case map[string]any:
					for _, e := range x {
						grab(e)
					}
				case []any:
					for _, e := range x {
						grab(e)
					}
				}
			}
			grab(sample)
			return clone(all[r.IntN(len(all))])
		},
	}
	repl := palette[r.IntN(len(palette))]()
	if len(path) == 0 {
		return repl
	}
	parent := doc
	for _, step := range path[:len(path)-1] {
		switch s := step.(type) {
		case string:
			parent = parent.(map[string]any)[s]
		case int:
			parent = parent.([]any)[s]
		}
	}
	switch s := path[len(path)-1].(type) {
	case string:
		m := parent.(map[string]any)
		if r.IntN(5) == 0 {
			// rename instead: an unknown or a choice-like property
			delete(m, s)
			m[s+"X"] = repl
		} else {
			m[s] = repl
		}
	case int:
		parent.([]any)[s] = repl
	}
	return doc
}
