package pathway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Source is where a Library reads the stored templates (PlanDefinitions):
// the store.
type Source interface {
	Search(ctx context.Context, q store.Query) (store.Page, error)
	VRead(ctx context.Context, typ, id string, version int64) (store.Resource, error)
}

// InvalidError is a stored template that Parse refuses: one written
// around the upload route (a direct database edit, an older release's
// rules).
type InvalidError struct {
	Ref    string // PlanDefinition/<id>/_history/<version>
	Issues []Issue
}

func (e *InvalidError) Error() string {
	var parts []string
	for _, i := range e.Issues {
		parts = append(parts, i.EN+" ("+i.Expression+")")
	}
	return fmt.Sprintf("template %s is unreadable: %s", e.Ref, strings.Join(parts, "; "))
}

// Library is the one reading of the stored templates that the services
// share: each stored version is parsed once (Parse, the same reading as
// the upload's check) and kept, since a version never changes once
// stored. What changes — which version is the latest, which templates are
// active — is searched again at every call, so an upload on another
// replica counts at once.
type Library struct {
	src Source
	log *slog.Logger

	mu sync.Mutex
	// byVersion holds parsed versions by tenant|id|store version, and
	// failures as *InvalidError so each is reported once.
	byVersion map[string]entry
	// byCanonical maps tenant|url|version to the same entries.
	byCanonical map[string]*Template
}

type entry struct {
	t   *Template
	err error
}

// NewLibrary returns a library reading src.
func NewLibrary(src Source, log *slog.Logger) *Library {
	if log == nil {
		log = slog.Default()
	}
	return &Library{src: src, log: log, byVersion: map[string]entry{}, byCanonical: map[string]*Template{}}
}

// load parses a stored version, once.
func (l *Library) load(tenant string, r store.Resource) (*Template, error) {
	key := fmt.Sprintf("%s|%s|%d", tenant, r.ID, r.Version)
	l.mu.Lock()
	e, ok := l.byVersion[key]
	l.mu.Unlock()
	if ok {
		return e.t, e.err
	}
	t, issues := Parse(r.Body)
	if len(issues) > 0 {
		e = entry{err: &InvalidError{Ref: fmt.Sprintf("PlanDefinition/%s/_history/%d", r.ID, r.Version), Issues: issues}}
		l.log.Error("stored template unreadable", "tenant", tenant, "template", r.ID, "version", r.Version, "error", e.err)
	} else {
		e = entry{t: t}
	}
	l.mu.Lock()
	l.byVersion[key] = e
	if t != nil {
		l.byCanonical[tenant+"|"+t.Canonical()] = t
	}
	l.mu.Unlock()
	return e.t, e.err
}

func (l *Library) byURL(ctx context.Context, tenant, url string) ([]store.Resource, error) {
	page, err := l.src.Search(ctx, store.Query{Tenant: tenant, Type: "PlanDefinition", Count: 2,
		Params: []store.Param{{Name: "url", Kind: store.KindURI, Values: []store.Value{{Text: url}}}}})
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", url, err)
	}
	return page.Resources, nil
}

// Active returns the tenant's active templates, latest versions. One
// that does not parse is left out (and logged once): it must not stop
// every discharge.
func (l *Library) Active(ctx context.Context, tenant string) ([]*Template, error) {
	page, err := l.src.Search(ctx, store.Query{Tenant: tenant, Type: "PlanDefinition", Count: 100,
		Params: []store.Param{{Name: "status", Kind: store.KindToken, Values: []store.Value{{Code: "active"}}}}})
	if err != nil {
		return nil, fmt.Errorf("search templates: %w", err)
	}
	var out []*Template
	for _, r := range page.Resources {
		if t, err := l.load(tenant, r); err == nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// At returns the version an episode was opened with (canonical
// url|version, the version being the store version), whatever versions
// came after. Errors: store.ErrNotFound (no such template or version),
// *InvalidError.
func (l *Library) At(ctx context.Context, tenant, canonical string) (*Template, error) {
	l.mu.Lock()
	t := l.byCanonical[tenant+"|"+canonical]
	l.mu.Unlock()
	if t != nil {
		return t, nil
	}
	url, version, _ := strings.Cut(canonical, "|")
	v, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("template %s: version is not a store version: %w", canonical, store.ErrNotFound)
	}
	res, err := l.byURL(ctx, tenant, url)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("template %s: %w", canonical, store.ErrNotFound)
	}
	r := res[0]
	if r.Version != v {
		if r, err = l.src.VRead(ctx, "PlanDefinition", r.ID, v); err != nil {
			return nil, fmt.Errorf("template %s: %w", canonical, err)
		}
	}
	return l.load(tenant, r)
}

// Latest returns the latest version of the template with url. Errors:
// store.ErrNotFound, *InvalidError.
func (l *Library) Latest(ctx context.Context, tenant, url string) (*Template, error) {
	res, err := l.byURL(ctx, tenant, url)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("template %s: %w", url, store.ErrNotFound)
	}
	return l.load(tenant, res[0])
}

// Loaded returns the tenant's versions parsed so far, in no order: the
// active ones once Active has run, and those episodes were opened with.
func (l *Library) Loaded(tenant string) []*Template {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Template
	for k, t := range l.byCanonical {
		if strings.HasPrefix(k, tenant+"|") {
			out = append(out, t)
		}
	}
	return out
}

// IsInvalid tells whether err is a stored template that does not parse.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}
