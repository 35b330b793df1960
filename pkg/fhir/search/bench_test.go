package search

import (
	"net/url"
	"testing"
)

func BenchmarkExtractTask(b *testing.B) {
	r := withProfiles(b)
	typ, body := fixture(b, "task")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Extract(typ, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseQuery(b *testing.B) {
	r := withProfiles(b)
	q, err := url.ParseQuery("owner=PractitionerRole/ide-martin&status=requested,accepted&patient=Patient/pat-1&focus=EpisodeOfCare/ep-1&due=le2025-03-17&_count=50")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ParseQuery("Task", q); err != nil {
			b.Fatal(err)
		}
	}
}
