package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

const directoryUsage = "usage: passerelle directory import [--dry-run] <file.csv|bundle.json>"

// errReported is returned once the command has written its own errors.
var errReported = errors.New("reported")

// cmdDirectory imports members into the directory of the instance's
// tenant: all rows or none. The written resources are announced through
// the outbox, which the running instance's relay publishes.
func cmdDirectory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "import" {
		return errors.New(directoryUsage)
	}
	var file string
	dry := false
	var flags []string
	for _, a := range args[1:] {
		switch {
		case a == "--dry-run" || a == "-dry-run":
			dry = true
		case file == "" && a != "" && a[0] != '-':
			file = a
		default:
			flags = append(flags, a)
		}
	}
	cfg, rest, err := loadConfig("directory import", flags, stderr)
	if err != nil {
		return err
	}
	if file == "" && len(rest) == 1 {
		file, rest = rest[0], nil
	}
	if file == "" || len(rest) != 0 {
		return errors.New(directoryUsage)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("directory import: %w", err)
	}
	var s store.Store
	if cfg.DatabaseURL != "" {
		s, err = postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
	} else {
		if err := cfg.checkDataDir(); err != nil {
			return err
		}
		s, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "passerelle.db"), sqlite.Options{})
	}
	if err != nil {
		return fmt.Errorf("database: %v", redact(err, cfg.DatabaseURL))
	}
	defer s.Close()
	if err := keyAudit(ctx, cfg, s); err != nil {
		return err
	}
	if cfg.DevIdP() {
		// Every development-mode instance holds the development directory
		// (its CPTS among others), as `passerelle run` seeds it.
		if _, err := directory.SeedDev(ctx, s, cfg.Tenant); err != nil {
			return fmt.Errorf("development directory: %w", err)
		}
	}
	im := &directory.Importer{Store: s, Tenant: cfg.Tenant, DryRun: dry, Agent: directory.ImportAgent}
	var res directory.Result
	if isBundle(file, data) {
		res, err = im.ImportBundle(ctx, data)
	} else {
		res, err = im.ImportCSV(ctx, bytes.NewReader(data))
	}
	fr := french()
	var errs directory.Errors
	if errors.As(err, &errs) {
		if fr {
			fmt.Fprintln(stderr, errs.French())
			fmt.Fprintf(stderr, "passerelle : %s : %d erreur(s), rien n'a été importé\n", file, len(errs))
		} else {
			fmt.Fprintln(stderr, errs.Error())
			fmt.Fprintf(stderr, "passerelle: %s: %d error(s), nothing was imported\n", file, len(errs))
		}
		return errReported
	}
	if err != nil {
		return fmt.Errorf("directory import: %w", err)
	}
	summary := res.Summary()
	if fr {
		summary = res.SummaryFR()
	}
	if dry {
		if fr {
			summary = "essai, rien n'est écrit : " + summary
		} else {
			summary = "dry run, nothing written: " + summary
		}
	}
	fmt.Fprintln(stdout, summary)
	return nil
}

// isBundle tells a FHIR Bundle from a CSV file: by extension, or by a
// first character "{".
func isBundle(name string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return true
	case ".csv":
		return false
	}
	return bytes.HasPrefix(bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), []byte("{"))
}

// french tells whether the operator's locale is French (LC_ALL, LC_MESSAGES
// or LANG starting with "fr"); English otherwise.
func french() bool {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := os.Getenv(k); v != "" {
			return strings.HasPrefix(v, "fr")
		}
	}
	return false
}
