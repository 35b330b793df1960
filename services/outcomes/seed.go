package outcomes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// SeedMeasures stores the shipped Measure resources (the FHIR package's
// Measure/ folder) in tenant where none with their id exists, so that
// GET /fhir/Measure/<id> shows the definitions the reports refer to.
func SeedMeasures(ctx context.Context, st store.Store, pkg fs.FS, tenant string) error {
	if pkg == nil {
		return nil
	}
	files, err := fs.Glob(pkg, "Measure/*.json")
	if err != nil {
		return err
	}
	sort.Strings(files)
	return st.Tx(ctx, func(tx store.Tx) error {
		for _, f := range files {
			b, err := fs.ReadFile(pkg, f)
			if err != nil {
				return fmt.Errorf("measure %s: %w", f, err)
			}
			id := f[len("Measure/") : len(f)-len(".json")]
			_, err = tx.Read(ctx, "Measure", id)
			if err == nil || errors.Is(err, store.ErrGone) {
				continue
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if _, err := tx.Create(ctx, tenant, b); err != nil {
				return fmt.Errorf("measure %s: %w", f, err)
			}
		}
		return nil
	})
}
