package devidp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Key files are named signing-key-<sequence>.pem; the highest sequence is the
// current key, so the choice survives a restart without a separate index.
const (
	keySubdir    = "dev-idp"
	keyPrefix    = "signing-key-"
	keySuffix    = ".pem"
	rsaKeyBits   = 2048
	keyFileMode  = 0o600
	keyDirMode   = 0o700
	pemBlockType = "PRIVATE KEY"
)

// errNoKeys means the data directory holds no signing key yet.
var errNoKeys = errors.New("no development signing keys")

type signingKey struct {
	seq  int
	kid  string
	priv *rsa.PrivateKey
	path string
}

func keyDir(dataDir string) string { return filepath.Join(dataDir, keySubdir) }

// thumbprint is the RFC 7638 JWK thumbprint, the key id: it is derived from
// the key itself, so the same file always publishes under the same kid.
func thumbprint(pub *rsa.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// loadKeys reads every key file of dir, oldest first. With fix, it tightens
// the permissions of a directory or file that others could read (a key
// copied by hand, a permissive umask) and reports it through warn.
func loadKeys(dir string, fix bool, warn func(msg string, args ...any)) ([]*signingKey, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read key directory: %w", err)
	}
	if fix {
		if err := tighten(dir, keyDirMode, warn); err != nil {
			return nil, err
		}
	}
	var keys []*signingKey
	for _, e := range entries {
		name := e.Name()
		num, ok := strings.CutPrefix(name, keyPrefix)
		if !ok {
			continue
		}
		num, ok = strings.CutSuffix(num, keySuffix)
		if !ok {
			continue
		}
		seq, err := strconv.Atoi(num)
		if err != nil || seq <= 0 {
			continue
		}
		path := filepath.Join(dir, name)
		if fix {
			if err := tighten(path, keyFileMode, warn); err != nil {
				return nil, err
			}
		}
		k, err := readKey(path, seq)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b *signingKey) int { return a.seq - b.seq })
	return keys, nil
}

func tighten(path string, mode os.FileMode, warn func(msg string, args ...any)) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&^mode == 0 {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("restrict permissions of %s: %w", path, err)
	}
	warn("development key permissions were too open; restricted", "path", path,
		"was", fi.Mode().Perm().String(), "now", mode.String())
	return nil
}

func readKey(path string, seq int) (*signingKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemBlockType {
		return nil, fmt.Errorf("signing key %s: no %s PEM block", path, pemBlockType)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an RSA key", path)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &signingKey{seq: seq, kid: kid, priv: priv, path: path}, nil
}

// createKey generates a key and stores it as sequence seq. The file is
// written under a temporary name and then linked into place, so a concurrent
// reader (a "dev token" command) never sees half a key and two processes
// starting together cannot overwrite each other's key: the loser gets
// fs.ErrExist and reloads.
func createKey(dir string, seq int) (*signingKey, error) {
	if err := os.MkdirAll(dir, keyDirMode); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone, and the umask may
	// have widened a new one.
	if err := os.Chmod(dir, keyDirMode); err != nil {
		return nil, fmt.Errorf("restrict key directory: %w", err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, rsaKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-key-*") // created with mode 0600
	if err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: pemBlockType, Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s%06d%s", keyPrefix, seq, keySuffix))
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &signingKey{seq: seq, kid: kid, priv: priv, path: path}, nil
}

// sign serialises claims as a compact JWS signed with k. typ is the JOSE
// header "typ": at+jwt for access tokens (RFC 9068 §2.1), JWT for ID tokens.
func (k *signingKey) sign(claims any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: string(jose.RS256)}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

// publicJWK is the key as published in the JWKS.
func (k *signingKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig"}
}
