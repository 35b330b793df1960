package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzRoundTrip checks that whatever decodes into a modelled resource
// encodes to JSON that decodes to the same resource, and encodes the same
// again.
func FuzzRoundTrip(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "unknown.json"))
	if err != nil {
		f.Fatal(err)
	}
	var rs []json.RawMessage
	if err := json.Unmarshal(b, &rs); err != nil {
		f.Fatal(err)
	}
	for _, r := range rs {
		f.Add([]byte(r))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, typ := range []string{"Task", "EpisodeOfCare", "CareTeam", "Observation"} {
			out1, err := roundTrip(typ, in)
			if err != nil {
				continue
			}
			out2, err := roundTrip(typ, out1)
			if err != nil {
				t.Fatalf("%s: %s encoded from %s does not decode: %v", typ, out1, in, err)
			}
			if !reflect.DeepEqual(decodeAny(t, out1), decodeAny(t, out2)) {
				t.Fatalf("%s: encoded\n %s\nthen\n %s", typ, out1, out2)
			}
		}
	})
}
