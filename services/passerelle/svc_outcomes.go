package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	measure "github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/services/outcomes"
)

func addOutcomes(p *Platform) ([]func(context.Context) error, error) {
	key, err := pseudonymKey(p.Cfg.DataDir)
	if err != nil {
		return nil, err
	}
	pkg := fhirprofiles.FS()
	if p.Cfg.ProfilesDir != "" {
		pkg = os.DirFS(p.Cfg.ProfilesDir)
	}
	svc := outcomes.New(outcomes.Deps{Store: p.Store, Bus: p.Bus, Clock: p.Clock, Logger: p.Log, Tenant: p.Cfg.Tenant,
		PseudonymKey: key, Package: pkg})
	p.outcomesSvc = svc
	svc.Register(p.Mux, p.Authn())
	p.API.Operations["evaluate-measure"] = outcomes.OperationURL
	return []func(context.Context) error{svc.Run}, nil
}

// pseudonymKeyFile holds the secret of the exports' pseudonymous ids, in
// the data directory (mode 0600), made at first start. A distributed
// deployment gives every outcomes replica the same file.
const pseudonymKeyFile = "outcomes-pseudonym.key"

func pseudonymKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, pseudonymKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("PASSERELLE_DATA_DIR: %s is shorter than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return pseudonymKey(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}

const outcomesUsage = "usage: passerelle outcomes import-deaths <file> [--month YYYYMM] [flags]"

// cmdOutcomes runs "outcomes import-deaths FILE": imports a monthly file
// of INSEE's register of deaths into the tenant and prints what matched,
// what was ambiguous and what could not be matched.
func cmdOutcomes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[0] != "import-deaths" {
		return errors.New(outcomesUsage)
	}
	file := args[1]
	rest := args[2:]
	month := measure.MonthOfFile(filepath.Base(file))
	for i := 0; i < len(rest); i++ {
		if a := rest[i]; a == "--month" || a == "-month" {
			if i+1 >= len(rest) {
				return errors.New(outcomesUsage)
			}
			m, err := strconv.Atoi(strings.ReplaceAll(rest[i+1], "-", ""))
			if err != nil {
				return fmt.Errorf("--month %q: expected YYYYMM", rest[i+1])
			}
			month = m
			rest = append(append([]string{}, rest[:i]...), rest[i+2:]...)
			break
		}
	}
	if month == 0 {
		return fmt.Errorf("%s: the file's name does not say its month (deces-YYYY-mMM.txt): give --month YYYYMM", file)
	}
	cfg, extra, err := loadConfig("outcomes import-deaths", rest, stderr)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		return errors.New(outcomesUsage)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	var st store.Store
	if cfg.DatabaseURL != "" {
		st, err = postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "passerelle.db"), sqlite.Options{})
	}
	if err != nil {
		return fmt.Errorf("database: %v", redact(err, cfg.DatabaseURL))
	}
	defer st.Close()
	if err := keyAudit(ctx, cfg, st); err != nil {
		return err
	}
	svc := outcomes.New(outcomes.Deps{Store: st, Tenant: cfg.Tenant, Logger: newLogger(stderr)})
	rep, err := svc.ImportRegister(ctx, cfg.Tenant, f, month, "System/outcomes-import")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "month %d: %d lines, %d matched, %d already known, %d ambiguous, %d unmatched near misses, %d unreadable, %d about other people\n",
		rep.Month, rep.Lines, len(rep.Matched), rep.AlreadyKnown, len(rep.Ambiguous), len(rep.Unmatched), len(rep.Errors), rep.NotConcerned)
	for _, m := range rep.Matched {
		fmt.Fprintf(stdout, "matched    line %d  %s  died %s\n", m.Line, m.Patient, m.Death)
	}
	for _, a := range rep.Ambiguous {
		fmt.Fprintf(stdout, "ambiguous  line %d  %s\n", a.Line, strings.Join(a.Patients, " "))
	}
	for _, u := range rep.Unmatched {
		fmt.Fprintf(stdout, "unmatched  line %d  %s  %s\n", u.Line, u.Patient, u.Reason)
	}
	for _, e := range rep.Errors {
		fmt.Fprintf(stdout, "error      line %d  %s\n", e.Line, e.Message)
	}
	return nil
}
