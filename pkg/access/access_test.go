package access

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

func actor(roles ...string) directory.Actor {
	a := directory.Actor{Tenant: "demo", Practitioner: "Practitioner/p"}
	for i, r := range roles {
		a.Roles = append(a.Roles, directory.Role{ID: "r" + string(rune('0'+i)), Code: r})
	}
	return a
}

func status(err error) int {
	if err == nil {
		return 200
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return fe.Status
	}
	return 500
}

func TestSearch(t *testing.T) {
	system := directory.Actor{Tenant: "demo", System: "chu", FINESS: "420000002"}
	cases := []struct {
		name string
		a    directory.Actor
		typ  string
		want int
	}{
		{"coordinator patients", actor(directory.RoleCoordinator), "Patient", 200},
		{"referent nurse patients", actor(directory.RoleCoordinatingNurse), "Patient", 200},
		{"nurse patients", actor(directory.RoleNurse), "Patient", 403},
		{"nurse directory", actor(directory.RoleNurse), "PractitionerRole", 200},
		{"nurse templates", actor(directory.RoleNurse), "PlanDefinition", 200},
		{"admin clinical", actor(directory.RoleAdmin), "Observation", 403},
		{"admin directory", actor(directory.RoleAdmin), "Device", 200},
		{"system", system, "Patient", 403},
		{"nurse tasks", actor(directory.RoleNurse), "Task", 200},
	}
	for _, tc := range cases {
		q := store.Query{Tenant: "other", Type: tc.typ}
		err := Policy{}.Search(context.Background(), tc.a, &q)
		if got := status(err); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
		if err == nil && q.Tenant != "demo" {
			t.Errorf("%s: tenant %q not forced to the actor's", tc.name, q.Tenant)
		}
	}
	// A professional's task search is narrowed to their own tasks.
	q := store.Query{Type: "Task"}
	if err := (Policy{}).Search(context.Background(), actor(directory.RoleNurse, directory.RoleNurse), &q); err != nil {
		t.Fatal(err)
	}
	if len(q.Params) != 1 || q.Params[0].Name != "owner" || len(q.Params[0].Values) != 2 || q.Params[0].Values[0].Ref != "PractitionerRole/r0" {
		t.Errorf("task search not narrowed: %+v", q.Params)
	}
}

func TestRead(t *testing.T) {
	task := func(owner string) store.Resource {
		return store.Resource{Tenant: "demo", Type: "Task", Body: []byte(`{"resourceType":"Task","owner":{"reference":"` + owner + `"}}`)}
	}
	nurse := actor(directory.RoleNurse)
	if got := status(Policy{}.Read(context.Background(), nurse, task("PractitionerRole/r0"))); got != 200 {
		t.Errorf("own task: %d", got)
	}
	if got := status(Policy{}.Read(context.Background(), nurse, task("PractitionerRole/other"))); got != http.StatusForbidden {
		t.Errorf("another's task: %d", got)
	}
	other := store.Resource{Tenant: "elsewhere", Type: "Practitioner"}
	if got := status(Policy{}.Read(context.Background(), actor(directory.RoleCoordinator), other)); got != http.StatusNotFound {
		t.Errorf("another tenant's resource: %d, want 404", got)
	}
}

func TestWrite(t *testing.T) {
	cases := []struct {
		a    directory.Actor
		typ  string
		want int
	}{
		{actor(directory.RoleCoordinator), "PractitionerRole", 200},
		{actor(directory.RoleAdmin), "Device", 200},
		{actor(directory.RoleNurse), "Practitioner", 403},
		{actor(directory.RoleCoordinator), "PlanDefinition", 200},
		{actor(directory.RoleCoordinatingNurse), "PlanDefinition", 403},
		{actor(directory.RoleCoordinator), "Patient", 403},
		{directory.Actor{Tenant: "demo", System: "chu"}, "Organization", 403},
	}
	for _, tc := range cases {
		if got := status(Policy{}.Write(context.Background(), tc.a, tc.typ)); got != tc.want {
			t.Errorf("%v writes %s: %d, want %d", tc.a.Roles, tc.typ, got, tc.want)
		}
	}
}
