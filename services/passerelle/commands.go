package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/jetstream"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("migrate", args, stderr)
	if err != nil {
		return err
	}
	var applied []int
	if cfg.DatabaseURL != "" {
		be, err := postgres.Connect(ctx, cfg.DatabaseURL, 2)
		if err != nil {
			return fmt.Errorf("PASSERELLE_DATABASE_URL: %v", redact(err, cfg.DatabaseURL))
		}
		defer be.Close()
		applied, err = postgres.Migrate(ctx, be)
		if err != nil {
			return err
		}
	} else {
		if err := cfg.checkDataDir(); err != nil {
			return err
		}
		be, err := sqlite.Connect(ctx, filepath.Join(cfg.DataDir, "passerelle.db"), 1)
		if err != nil {
			return fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
		}
		defer be.Close()
		applied, err = sqlite.Migrate(ctx, be)
		if err != nil {
			return err
		}
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database up to date")
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v\n", applied)
	return nil
}

func cmdDev(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "token" {
		return errors.New("usage: passerelle dev token <user-or-client>")
	}
	// The name may come before or after the flags.
	flags := args[1:]
	var name string
	if len(flags) > 0 && !strings.HasPrefix(flags[0], "-") {
		name, flags = flags[0], flags[1:]
	}
	cfg, rest, err := loadConfig("dev token", flags, stderr)
	if err != nil {
		return err
	}
	if name == "" && len(rest) == 1 {
		name, rest = rest[0], nil
	}
	if name == "" || len(rest) != 0 {
		return errors.New("usage: passerelle dev token <user-or-client>")
	}
	if !cfg.DevIdP() {
		return errors.New("dev token: PASSERELLE_OIDC_ISSUER is set; tokens come from that issuer")
	}
	tok, err := devidp.MintFromDataDir(cfg.DataDir, cfg.PublicURL+"/dev-idp", cfg.OIDCClientID, name, devUsers(true), devClients(cfg), time.Hour)
	if err != nil {
		return fmt.Errorf("dev token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// openOps opens the store and the bus for an operator command, without the
// HTTP server.
func openOps(ctx context.Context, args []string, stderr io.Writer) (Config, []string, store.Store, bus.Bus, func(), error) {
	cfg, rest, err := loadConfig("ops", args, stderr)
	if err != nil {
		return cfg, nil, nil, nil, nil, err
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var s store.Store
	if cfg.DatabaseURL != "" {
		s, err = postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
	} else {
		s, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "passerelle.db"), sqlite.Options{})
	}
	if err != nil {
		return cfg, nil, nil, nil, nil, fmt.Errorf("database: %v", redact(err, cfg.DatabaseURL))
	}
	closers = append(closers, func() { _ = s.Close() })
	if err := keyAudit(ctx, cfg, s); err != nil {
		closeAll()
		return cfg, nil, nil, nil, nil, err
	}
	jcfg := jetstream.Config{URL: cfg.NATSURL}
	if cfg.NATSURL == "" {
		srv, err := jetstream.StartServer(jetstream.ServerConfig{StoreDir: filepath.Join(cfg.DataDir, "nats")})
		if err != nil {
			closeAll()
			return cfg, nil, nil, nil, nil, fmt.Errorf("embedded NATS (is passerelle running on this data directory? stop it first): %v", err)
		}
		closers = append(closers, func() { srv.Shutdown(); srv.WaitForShutdown() })
		jcfg.Server = srv
	}
	b, err := jetstream.New(ctx, jcfg)
	if err != nil {
		closeAll()
		return cfg, nil, nil, nil, nil, fmt.Errorf("PASSERELLE_NATS_URL: %v", err)
	}
	closers = append(closers, func() { _ = b.Close() })
	return cfg, rest, s, b, closeAll, nil
}

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || (args[0] != "list" && args[0] != "replay") {
		return errors.New("usage: passerelle dlq list | passerelle dlq replay <id|--all>")
	}
	verb := args[0]
	var target string
	rest := args[1:]
	if verb == "replay" {
		for i, a := range rest {
			if a == "--all" || (a != "" && a[0] != '-') {
				target = a
				rest = append(append([]string{}, rest[:i]...), rest[i+1:]...)
				break
			}
		}
		if target == "" {
			return errors.New("usage: passerelle dlq replay <id|--all>")
		}
	}
	_, _, _, b, closeAll, err := openOps(ctx, rest, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	var letters []bus.DeadLetter
	after := uint64(0)
	for {
		page, err := b.DeadLetters(ctx, after, 500)
		if err != nil {
			return fmt.Errorf("dead letters: %w", err)
		}
		letters = append(letters, page...)
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	switch {
	case verb == "list":
		if len(letters) == 0 {
			fmt.Fprintln(stdout, "no dead letters")
			return nil
		}
		fmt.Fprintf(stdout, "%-8s %-25s %-20s %-40s %s\n", "ID", "TIME", "CONSUMER", "SUBJECT", "ERROR")
		for _, d := range letters {
			fmt.Fprintf(stdout, "%-8d %-25s %-20s %-40s %s\n", d.ID, d.Time.Format(time.RFC3339), d.Durable, d.Subject, oneLine(d.Error))
		}
		return nil
	case target == "--all":
		skipped := 0
		for _, d := range letters {
			if err := b.Replay(ctx, d.ID); errors.Is(err, bus.ErrNoContent) {
				// Left where it is, for the operator to read: it must
				// not stop the others.
				fmt.Fprintf(stderr, "skipped %d: %v\n", d.ID, err)
				skipped++
			} else if err != nil {
				return fmt.Errorf("replay %d: %w", d.ID, err)
			}
		}
		fmt.Fprintf(stdout, "replayed %d dead letters\n", len(letters)-skipped)
		return nil
	default:
		id, err := strconv.ParseUint(target, 10, 64)
		if err != nil {
			return fmt.Errorf("replay: %q is not a dead-letter id", target)
		}
		if err := b.Replay(ctx, id); err != nil {
			return fmt.Errorf("replay %d: %w", id, err)
		}
		fmt.Fprintf(stdout, "replayed dead letter %d\n", id)
		return nil
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

const auditUsage = "usage: passerelle audit verify [--expect <seq>:<hash>]... [flags]"

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "verify" {
		return errors.New(auditUsage)
	}
	// --expect is the command's own; the rest are the configuration's flags.
	var expects []auditExpect
	var rest []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		v, ok := strings.CutPrefix(a, "--expect=")
		if !ok && (a == "--expect" || a == "-expect") {
			if i+1 == len(args) {
				return errors.New(auditUsage)
			}
			v, ok = args[i+1], true
			i++
		}
		if !ok {
			rest = append(rest, a)
			continue
		}
		e, err := parseAuditExpect(v)
		if err != nil {
			return err
		}
		expects = append(expects, e)
	}
	cfg, extra, err := loadConfig("audit verify", rest, stderr)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		return errors.New(auditUsage)
	}
	var s *sqlstore.Store
	if cfg.DatabaseURL != "" {
		s, err = postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{})
	} else {
		s, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "passerelle.db"), sqlite.Options{})
	}
	if err != nil {
		return fmt.Errorf("database: %v", redact(err, cfg.DatabaseURL))
	}
	defer s.Close()
	// Verifying never makes a key: without one, the chain is checked with
	// the unkeyed hash, and the command says so.
	var key store.AuditKey
	path, _ := auditKeyPath(cfg)
	keyed := fileExists(path)
	if keyed {
		if key, err = loadAuditKey(ctx, cfg, s.AuditLog(), false); err != nil {
			return err
		}
		s.SetAuditKey(key)
	}
	n, err := VerifyAudit(ctx, s.AuditLog())
	if err != nil {
		return err
	}
	for _, e := range expects {
		if err := e.check(ctx, s.AuditLog()); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "audit trail intact: %d records\n", n)
	if keyed {
		fmt.Fprintf(stdout, "keyed (HMAC-SHA256) from record %d on\n", key.From)
	} else {
		fmt.Fprintln(stdout, "not keyed: no audit key file (anyone who can write to the database could recompute the hashes)")
	}
	heads, err := s.AuditLog().Heads(ctx)
	if err != nil {
		return err
	}
	// The last (sequence, hash) of each tenant: kept elsewhere, it is what
	// --expect checks later.
	for _, h := range heads {
		fmt.Fprintf(stdout, "tenant %s: last record %d:%s\n", h.Tenant, h.Seq, h.Hash)
	}
	for _, e := range expects {
		fmt.Fprintf(stdout, "expected record %d:%s found\n", e.seq, e.hash)
	}
	return nil
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// auditExpect is a (sequence, hash) of the chain kept elsewhere.
type auditExpect struct {
	seq  int64
	hash string
}

func parseAuditExpect(v string) (auditExpect, error) {
	seq, hash, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || hash == "" {
		return auditExpect{}, fmt.Errorf("--expect %q: <sequence>:<hash> expected, as printed by audit verify", v)
	}
	return auditExpect{n, hash}, nil
}

// check finds the record in the (verified) chain with the hash kept: a
// chain rewritten from before it, or cut short, no longer holds it.
func (e auditExpect) check(ctx context.Context, log store.AuditLog) error {
	recs, err := log.List(ctx, e.seq-1, 1)
	if err != nil {
		return err
	}
	if len(recs) == 0 || recs[0].Seq != e.seq {
		return fmt.Errorf("audit trail broken: record %d, expected with hash %s, is missing", e.seq, e.hash)
	}
	if recs[0].Hash != e.hash {
		return fmt.Errorf("audit trail broken: record %d has hash %s, not the expected %s (the trail was rewritten)", e.seq, recs[0].Hash, e.hash)
	}
	return nil
}

// VerifyAudit walks the audit trail and reports the first broken link: a
// missing record (the sequence has a gap), a record that does not follow its
// tenant's previous one (one was removed or changed before it), or a record
// whose content does not match its hash. Each tenant has its own chain.
func VerifyAudit(ctx context.Context, log store.AuditLog) (int, error) {
	prev := map[string]string{} // tenant → hash of its last record
	var seq int64
	n := 0
	for {
		recs, err := log.List(ctx, seq, 1000)
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			switch {
			case r.Seq != seq+1:
				return n, fmt.Errorf("audit trail broken at record %d: record %d is missing", r.Seq, seq+1)
			case r.PrevHash != prev[r.Tenant]:
				return n, fmt.Errorf("audit trail broken at record %d (tenant %s): it does not follow the tenant's previous record", r.Seq, r.Tenant)
			case log.Hash(r) != r.Hash:
				return n, fmt.Errorf("audit trail broken at record %d (tenant %s): its content was changed", r.Seq, r.Tenant)
			}
			prev[r.Tenant], seq = r.Hash, r.Seq
			n++
		}
		if len(recs) < 1000 {
			return n, nil
		}
	}
}
