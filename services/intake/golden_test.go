package intake_test

import (
	"bytes"
	"encoding/json"
	"github.com/passerelle-sante/passerelle/internal/golden"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoldenMessages posts each message of testdata/messages and compares
// the answer with its .golden file: the status and, for a refusal, the
// OperationOutcome (for an acceptance, the response code).
func TestGoldenMessages(t *testing.T) {
	files, _ := filepath.Glob("testdata/messages/*.json")
	if len(files) == 0 {
		t.Fatal("no golden messages")
	}
	r := newRig(t, false)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// Several variants share the sample's identity: each runs alone.
			r := r
			if strings.HasPrefix(filepath.Base(f), "good-") {
				r = newRig(t, false)
			}
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			status, answer := r.post(body)
			var got bytes.Buffer
			got.WriteString("status: ")
			got.WriteString(httpStatus(status))
			got.WriteString("\n")
			var m map[string]any
			if json.Unmarshal(answer, &m) == nil && m["resourceType"] == "OperationOutcome" {
				pretty, _ := json.MarshalIndent(m, "", "  ")
				got.Write(pretty)
			} else if status == 200 {
				mh := entry(m, "MessageHeader")
				got.WriteString("response.code: ")
				got.WriteString(mh["response"].(map[string]any)["code"].(string))
			} else {
				got.Write(answer)
			}
			got.WriteString("\n")
			golden.Check(t, strings.TrimSuffix(f, ".json")+".golden", got.Bytes())
		})
	}
}

func httpStatus(s int) string {
	b, _ := json.Marshal(s)
	return string(b)
}
