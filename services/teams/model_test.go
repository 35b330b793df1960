package teams

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
)

// TestAssignmentRecord reads back the assignment record as written, next
// to the task's other extensions, in the JSON the other services read.
func TestAssignmentRecord(t *testing.T) {
	a := assignment{owner: "PractitionerRole/a", at: "2025-03-14T10:00:00+01:00", tried: []string{"PractitionerRole/b", "PractitionerRole/c"},
		exhausted: true, overdue: true, escalation: "Task/e", cancelled: true}
	task := &model.Task{ResourceType: "Task", Extension: []model.Extension{{URL: "https://example.org/other", ValueCode: model.Ptr("x")}}}
	assignment{owner: "PractitionerRole/z"}.set(task)
	a.set(task)
	if got := assignmentOf(task); !reflect.DeepEqual(got, a) {
		t.Errorf("read back %+v, want %+v", got, a)
	}
	got, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	want := mustJSON(obj{"resourceType": "Task", "extension": []any{
		obj{"url": "https://example.org/other", "valueCode": "x"},
		obj{"url": pathway.ExtTaskAssignment, "extension": []any{
			obj{"url": "owner", "valueReference": obj{"reference": "PractitionerRole/a"}},
			obj{"url": "assignedAt", "valueDateTime": "2025-03-14T10:00:00+01:00"},
			obj{"url": "tried", "valueReference": obj{"reference": "PractitionerRole/b"}},
			obj{"url": "tried", "valueReference": obj{"reference": "PractitionerRole/c"}},
			obj{"url": "exhausted", "valueBoolean": true},
			obj{"url": "overdueNotified", "valueBoolean": true},
			obj{"url": "cancellationNotified", "valueBoolean": true},
			obj{"url": "escalation", "valueReference": obj{"reference": "Task/e"}},
		}},
	}})
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(want, &w) != nil || !reflect.DeepEqual(g, w) {
		t.Errorf("encoded\n %s\nwant\n %s", got, want)
	}
	if got := assignmentOf(&model.Task{}); !reflect.DeepEqual(got, assignment{}) {
		t.Errorf("a task without record reads %+v", got)
	}
}

// TestStaffKeepsThePathwaysElements: the pathway's task, typed for the
// team rules and written back in place, keeps every element the rules do
// not touch, decimals as written.
func TestStaffKeepsThePathwaysElements(t *testing.T) {
	m := obj{"resourceType": "Task", "id": "t1", "status": "requested", "intent": "order",
		"for":       obj{"reference": "Patient/p"},
		"extension": []any{obj{"url": "https://example.org/dose", "valueDecimal": json.Number("1.50")}},
		"input":     []any{obj{"type": obj{"text": "range"}, "valueRange": obj{"low": obj{"value": 1}}}},
		"meta":      obj{"source": "#pathway"},
	}
	before := mustJSON(m)
	task, err := model.FromMap[model.Task](m)
	if err != nil {
		t.Fatal(err)
	}
	task.Owner = model.Ref("Patient/p")
	if err := putBack(task, m); err != nil {
		t.Fatal(err)
	}
	var want obj
	if err := json.Unmarshal(before, &want); err != nil {
		t.Fatal(err)
	}
	want["owner"] = map[string]any{"reference": "Patient/p"}
	var got obj
	if err := json.Unmarshal(mustJSON(m), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("written back\n %s\nwant\n %s", mustJSON(got), mustJSON(want))
	}
	if d := asObj(list(m["extension"])[0])["valueDecimal"]; d != json.Number("1.50") {
		t.Errorf("decimal written back as %v (%T), want 1.50", d, d)
	}
}
