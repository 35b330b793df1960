package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// object is a JSON object that keeps its members in order, so that the
// snapshot generator rewrites definitions without reordering or losing
// anything it does not understand.
type object []member

type member struct {
	key string
	val json.RawMessage
}

func parseObject(b []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var o object
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, ok := t.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o = append(o, member{k, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return o, nil
}

func (o object) get(k string) json.RawMessage {
	for _, m := range o {
		if m.key == k {
			return m.val
		}
	}
	return nil
}

func (o object) str(k string) string {
	v := o.get(k)
	if v == nil {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// set replaces k's value, or inserts k where ElementDefinition's (or any
// FHIR resource's) member order puts it, according to rank.
func (o *object) set(k string, v json.RawMessage, rank func(string) int) {
	for i := range *o {
		if (*o)[i].key == k {
			(*o)[i].val = v
			return
		}
	}
	r := rank(k)
	for i, m := range *o {
		if rank(m.key) > r {
			*o = append((*o)[:i], append(object{{k, v}}, (*o)[i:]...)...)
			return
		}
	}
	*o = append(*o, member{k, v})
}

func (o *object) del(k string) {
	for i := range *o {
		if (*o)[i].key == k {
			*o = append((*o)[:i], (*o)[i+1:]...)
			return
		}
	}
}

func (o object) clone() object { return append(object(nil), o...) }

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		if err := json.Compact(&b, m.val); err != nil {
			return nil, fmt.Errorf("member %s: %w", m.key, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called on values built here
	}
	return b
}

// elementOrder is the member order of ElementDefinition in FHIR R4.
var elementOrder = []string{
	"id", "extension", "modifierExtension", "path", "representation", "sliceName",
	"sliceIsConstraining", "label", "code", "slicing", "short", "definition", "comment",
	"requirements", "alias", "min", "max", "base", "contentReference", "type",
	"defaultValue", "meaningWhenMissing", "orderMeaning", "fixed", "pattern", "example",
	"minValue", "maxValue", "maxLength", "condition", "constraint", "mustSupport",
	"isModifier", "isModifierReason", "isSummary", "binding", "mapping",
}

func elementRank(k string) int {
	k = strings.TrimPrefix(k, "_")
	for i, name := range elementOrder {
		if k == name {
			return i
		}
	}
	for _, prefix := range []string{"defaultValue", "fixed", "pattern", "minValue", "maxValue"} {
		if strings.HasPrefix(k, prefix) {
			return elementRank(prefix)
		}
	}
	return len(elementOrder)
}

// sdOrder places snapshot before differential, as FHIR R4 orders them.
func sdRank(k string) int {
	switch k {
	case "snapshot":
		return 1000
	case "differential":
		return 1001
	}
	return 0
}
