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
