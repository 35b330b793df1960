package store

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
)

// AuditHash is the unkeyed chained hash of an audit record: the hash of
// records written before the chain had a key (AuditKey.From). Anyone with
// write access to the database can compute it, which is why later records
// are keyed.
func AuditHash(r AuditRecord) string { return auditDigest(sha256.New(), r) }

func auditDigest(h hash.Hash, r AuditRecord) string {
	for _, f := range []string{strconv.FormatInt(r.Seq, 10), r.PrevHash, r.Tenant, strconv.FormatInt(r.Time.UnixMicro(), 10),
		r.Agent, r.Action, r.Entity, r.Patient, r.Outcome, r.Detail} {
		h.Write([]byte(strconv.Itoa(len(f))))
		h.Write([]byte{':'})
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AuditKey keys the audit chain: from sequence From on, a record's hash is
// an HMAC-SHA256 under Secret, a secret kept outside the database, so that
// someone who edits a record and recomputes the hashes of the records after
// it cannot produce hashes that verify.
type AuditKey struct {
	Secret []byte
	// From is the first keyed sequence number: records before it were
	// written before the key existed and keep their unkeyed hash. It is
	// kept with the secret, outside the database, so that it cannot be
	// moved to pass re-hashed records off as old ones.
	From int64
}

// Keyed tells whether record seq is hashed with the key.
func (k AuditKey) Keyed(seq int64) bool { return len(k.Secret) > 0 && seq >= k.From }

// Hash is the hash record r must carry.
func (k AuditKey) Hash(r AuditRecord) string {
	if !k.Keyed(r.Seq) {
		return AuditHash(r)
	}
	return auditDigest(hmac.New(sha256.New, k.Secret), r)
}
