package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Resource3KB is an Observation of about 3 KB, the size the benchmarks use.
func Resource3KB(i int) json.RawMessage {
	note := strings.Repeat("Patient stable, poids surveillé, pas d'œdème. ", 50)
	return json.RawMessage(fmt.Sprintf(`{"resourceType":"Observation","status":"final",
"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],
"code":{"coding":[{"system":"http://loinc.org","code":"29463-7","display":"Body weight"}]},
"subject":{"reference":"Patient/p%d"},"encounter":{"reference":"Encounter/e%d"},
"effectiveDateTime":"2025-03-18T08:05:00+01:00","performer":[{"reference":"PractitionerRole/ide-1"}],
"valueQuantity":{"value":74.6,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"},
"note":[{"text":%q}]}`, i%500, i, note))
}

// Bench runs the store benchmarks: durable creates of a 3 KB resource, one
// writer at a time and many at once (group commit), and reads.
func Bench(b *testing.B, open Factory) {
	b.Run("Create", func(b *testing.B) {
		s := open(b, clock.System{}).Store
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			body := Resource3KB(i)
			if err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.Create(ctx, "demo", body); return err }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
	b.Run("CreateParallel", func(b *testing.B) {
		s := open(b, clock.System{}).Store
		ctx := context.Background()
		var n atomic.Int64
		b.SetParallelism(16)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				body := Resource3KB(int(n.Add(1)))
				if err := s.Tx(ctx, func(tx store.Tx) error { _, err := tx.Create(ctx, "demo", body); return err }); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
	b.Run("Read", func(b *testing.B) {
		s := open(b, clock.System{}).Store
		ctx := context.Background()
		var ids []string
		for i := range 200 {
			var r store.Resource
			if err := s.Tx(ctx, func(tx store.Tx) error {
				var err error
				r, err = tx.Create(ctx, "demo", Resource3KB(i))
				return err
			}); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		i := 0
		for b.Loop() {
			i++
			if _, err := s.Read(ctx, "Observation", ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	})
}
