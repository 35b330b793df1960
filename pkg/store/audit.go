package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// AuditHash is the chained hash of an audit record.
func AuditHash(r AuditRecord) string {
	h := sha256.New()
	for _, f := range []string{strconv.FormatInt(r.Seq, 10), r.PrevHash, r.Tenant, strconv.FormatInt(r.Time.UnixMicro(), 10),
		r.Agent, r.Action, r.Entity, r.Patient, r.Outcome, r.Detail} {
		h.Write([]byte(strconv.Itoa(len(f))))
		h.Write([]byte{':'})
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}
