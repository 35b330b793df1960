package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
)

// auditKeyFile holds the audit chain's HMAC key, in the data directory
// (mode 0600), made at first start, unless PASSERELLE_AUDIT_KEY_FILE names
// another file. It is kept out of the database so that someone who can edit
// the database cannot recompute the chain's hashes; it belongs apart from
// the database's backups. A distributed deployment gives every process the
// same file.
const auditKeyFile = "audit-chain.key"

// auditKeyPath is the key file of cfg and whether it is the default one in
// the data directory (which may be made).
func auditKeyPath(cfg Config) (string, bool) {
	if cfg.AuditKeyFile != "" {
		return cfg.AuditKeyFile, false
	}
	return filepath.Join(cfg.DataDir, auditKeyFile), true
}

// keyAudit keys st's audit chain with the key file, making the default file
// when it does not exist yet: its records from then on are keyed, the ones
// already written keep their unkeyed hash (the file says from which
// sequence number on, out of the database's reach).
func keyAudit(ctx context.Context, cfg Config, st store.Store) error {
	s, ok := st.(*sqlstore.Store)
	if !ok {
		return fmt.Errorf("audit key: store %T cannot be keyed", st)
	}
	k, err := loadAuditKey(ctx, cfg, s.AuditLog(), true)
	if err != nil {
		return err
	}
	s.SetAuditKey(k)
	return nil
}

func loadAuditKey(ctx context.Context, cfg Config, log store.AuditLog, create bool) (store.AuditKey, error) {
	path, inDataDir := auditKeyPath(cfg)
	name := "PASSERELLE_AUDIT_KEY_FILE"
	if inDataDir {
		name = "PASSERELLE_DATA_DIR"
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && inDataDir && create {
		return makeAuditKey(ctx, cfg, log, path)
	}
	if err != nil {
		return store.AuditKey{}, fmt.Errorf("%s: audit key: %v", name, err)
	}
	k, err := parseAuditKey(b)
	if err != nil {
		return k, fmt.Errorf("%s: audit key %s: %v", name, path, err)
	}
	return k, nil
}

// parseAuditKey reads "key <hex>" and, optionally, "from <seq>" lines; a
// key with no "from" keys every record.
func parseAuditKey(b []byte) (store.AuditKey, error) {
	k := store.AuditKey{From: 1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, value, _ := strings.Cut(line, " ")
		switch name {
		case "", "#":
		case "key":
			secret, err := hex.DecodeString(strings.TrimSpace(value))
			if err != nil || len(secret) < 32 {
				return k, errors.New(`"key" wants at least 32 bytes in hexadecimal`)
			}
			k.Secret = secret
		case "from":
			n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			if err != nil || n < 1 {
				return k, errors.New(`"from" wants a sequence number`)
			}
			k.From = n
		default:
			if !strings.HasPrefix(name, "#") {
				return k, fmt.Errorf("unknown line %q", name)
			}
		}
	}
	if k.Secret == nil {
		return k, errors.New(`no "key" line`)
	}
	return k, nil
}

func makeAuditKey(ctx context.Context, cfg Config, log store.AuditLog, path string) (store.AuditKey, error) {
	heads, err := log.Heads(ctx)
	if err != nil {
		return store.AuditKey{}, fmt.Errorf("audit key: %w", err)
	}
	k := store.AuditKey{Secret: make([]byte, 32), From: 1}
	for _, h := range heads {
		k.From = max(k.From, h.Seq+1)
	}
	if _, err := rand.Read(k.Secret); err != nil {
		return k, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return k, fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// Another process made it meanwhile.
		return loadAuditKey(ctx, cfg, log, false)
	}
	if err != nil {
		return k, fmt.Errorf("PASSERELLE_DATA_DIR: %v", err)
	}
	_, err = fmt.Fprintf(f, "# Passerelle audit chain key: keep it apart from the database and its backups.\nkey %s\nfrom %d\n",
		hex.EncodeToString(k.Secret), k.From)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return k, err
}
