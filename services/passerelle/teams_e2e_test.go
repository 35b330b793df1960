package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestDischargeFormsATeam sends the shared heart-failure discharge to a
// whole instance and waits until the episode has its team, every
// professional task an owner of its role, and each owner a delivered
// notification.
func TestDischargeFormsATeam(t *testing.T) {
	tp := startPlatform(t, nil)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(datedAt(body, time.Now()))); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	ctx := context.Background()
	search := func(typ string, params ...store.Param) []map[string]any {
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: typ, Count: 1000, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, r := range page.Resources {
			var m map[string]any
			_ = json.Unmarshal(r.Body, &m)
			out = append(out, m)
		}
		return out
	}
	get := func(m map[string]any, keys ...string) string {
		var v any = m
		for _, k := range keys {
			if l, ok := v.([]any); ok && len(l) > 0 {
				v = l[0]
			}
			o, _ := v.(map[string]any)
			v = o[k]
		}
		s, _ := v.(string)
		return s
	}
	var why string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		teams := search("CareTeam", store.Param{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "active"}}})
		if len(teams) != 1 {
			why = "no active team yet"
			continue
		}
		roles := map[string]string{}
		for _, p := range teams[0]["participant"].([]any) {
			pm := p.(map[string]any)
			roles[get(pm, "member", "reference")] = get(pm, "role", "coding", "code")
		}
		tasks := search("Task")
		why = ""
		professional := 0
		owners := map[string]bool{}
		for _, task := range tasks {
			role := get(task, "performerType", "coding", "code")
			if role == "" {
				continue
			}
			professional++
			owner := get(task, "owner", "reference")
			owners[owner] = true
			if owner == "" || roles[owner] != role {
				why = "task " + get(task, "code", "coding", "code") + " owned by " + owner
			}
		}
		if why != "" || professional == 0 {
			continue
		}
		// Each owner is told once, delivered, about all their tasks.
		told, about := map[string]int{}, 0
		for _, c := range search("Communication") {
			if c["status"] == "completed" && strings.Contains(get(c, "extension", "url"), "notification-delivery") &&
				get(c, "category", "coding", "code") == "assignment" {
				told[get(c, "recipient", "reference")]++
				about += len(c["about"].([]any))
			}
		}
		if len(told) < len(owners) || about < professional {
			why = fmt.Sprintf("assignment notices delivered to %d of %d owners, about %d of %d tasks", len(told), len(owners), about, professional)
			continue
		}
		for who, n := range told {
			if n != 1 || !owners[who] {
				t.Fatalf("%s told %d times of an assignment (owners %v)", who, n, owners)
			}
		}
		return
	}
	t.Fatalf("team not formed in time: %s", why)
}
