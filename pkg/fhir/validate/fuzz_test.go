package validate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func addTestdataSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzValidateBundle checks that any input gets a verdict without a panic
// (the validator's recover would turn one into an exception issue), that
// every issue says what and where, and that the verdict is the same twice.
func FuzzValidateBundle(f *testing.F) {
	addTestdataSeeds(f)
	v := newValidator(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		issues := v.ValidateBundle(body)
		for _, i := range issues {
			if i.Code == "exception" {
				t.Fatalf("validator failure: %s", i.EN)
			}
			if i.Expression == "" || i.FR == "" || i.EN == "" || i.Severity == "" || i.Code == "" {
				t.Fatalf("incomplete issue %+v", i)
			}
			if !strings.HasPrefix(i.Expression, "Bundle") {
				t.Fatalf("expression %q outside the Bundle", i.Expression)
			}
		}
		if again := v.ValidateBundle(body); !reflect.DeepEqual(issues, again) {
			t.Fatalf("not deterministic:\n%v\n%v", issues, again)
		}
		if !json.Valid(body) {
			if len(issues) != 1 || issues[0].Expression != "Bundle" || issues[0].Code != "structure" {
				t.Fatalf("invalid JSON accepted: %v", issues)
			}
		}
	})
}

// FuzzParseJSON checks the parser against encoding/json: what it accepts,
// encoding/json accepts and reads the same way; what it refuses that
// encoding/json accepts is invalid UTF-8, a lone surrogate or too deep.
func FuzzParseJSON(f *testing.F) {
	addTestdataSeeds(f)
	for _, s := range []string{`"\ud83d\ude00"`, `"\ud83d"`, `[1e5,-0.5,0]`, `{"a":1,"a":2}`, "\"\xff\"", `[[[[]]]]`, `01`, `1.`, `"\u00e9"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p parser
		v, err := parseJSON(&p, b)
		valid := json.Valid(b)
		if err == nil {
			if !valid {
				t.Fatalf("accepted what encoding/json refuses: %q", b)
			}
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var want any
			if err := dec.Decode(&want); err != nil {
				t.Fatal(err)
			}
			if got := toAny(&v); !reflect.DeepEqual(got, want) {
				t.Fatalf("read differently:\n got  %#v\n want %#v", got, want)
			}
			return
		}
		if err.en == "" || err.offset < 0 || err.offset > len(b) {
			t.Fatalf("bad error %+v", err)
		}
		if valid && utf8.Valid(b) && !bytes.Contains(b, []byte(`\u`)) && depth(b) <= maxDepth {
			t.Fatalf("refused valid JSON %q: %s", b, err.en)
		}
	})
}

func depth(b []byte) int {
	d, m := 0, 0
	for _, c := range b {
		switch c {
		case '[', '{':
			d++
			m = max(m, d)
		case ']', '}':
			d--
		}
	}
	return m
}

// toAny converts a parsed value the way encoding/json with UseNumber
// decodes into any (a repeated key keeps its last value).
func toAny(v *value) any {
	switch v.kind {
	case kNull:
		return nil
	case kBool:
		return v.str == "true"
	case kNumber:
		return json.Number(v.str)
	case kString:
		return v.str
	case kArray:
		out := make([]any, 0, len(v.kids))
		for i := range v.kids {
			out = append(out, toAny(&v.kids[i].val))
		}
		return out
	}
	out := map[string]any{}
	for i := range v.kids {
		out[v.kids[i].key] = toAny(&v.kids[i].val)
	}
	return out
}
