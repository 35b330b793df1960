package sqlstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

func deleteIndex(c *batchConn, typ, id string) {
	// Rows of this resource still pending would otherwise land after the
	// deletion.
	c.flushIndex()
	for _, table := range []string{"idx_token", "idx_ref", "idx_string", "idx_date"} {
		c.Queue("DELETE FROM "+table+" WHERE res_type = $1 AND res_id = $2", typ, id)
	}
}

// replaceIndex makes a resource's index rows those of entries, for a new
// version of it: the rows it has and keeps stay, the others are deleted and
// the new ones added. A task moving along its states changes two or three
// of its fifteen rows; deleting all and writing all again cost each of the
// others two index updates for nothing.
func replaceIndex(ctx context.Context, c *batchConn, typ, id string, entries []IndexEntry) error {
	// Rows held for this resource (created earlier in the job) are compared
	// too.
	c.flushIndex()
	type wanted struct {
		table int
		key   string
		e     IndexEntry
	}
	var want []wanted
	missing := map[string]bool{} // table number and key of the rows not stored yet
	for _, e := range entries {
		i := tableOf(e.Kind)
		if i < 0 || e.Param == "_id" {
			continue
		}
		k := strconv.Itoa(i) + rowKey(indexTables[i].row(typ, id, e)[2:])
		want = append(want, wanted{i, k, e})
		missing[k] = true
	}
	// One statement for the four tables: a round trip on PostgreSQL.
	rows, err := c.WriteConn.Query(ctx, indexRowsSQL, typ, id)
	if err != nil {
		return fmt.Errorf("index of %s/%s: %w", typ, id, err)
	}
	var gone [][]any // table number, then the row's values
	for rows.Next() {
		var i int
		var a, b, d string
		if err := rows.Scan(&i, &a, &b, &d); err != nil {
			rows.Close()
			return fmt.Errorf("index of %s/%s: %w", typ, id, err)
		}
		if i < 0 || i >= len(indexTables) {
			continue
		}
		v := []any{a, b, d}[:tableWidth[i]]
		if k := strconv.Itoa(i) + rowKey(v); missing[k] {
			delete(missing, k) // kept: not written again
			continue
		}
		if i == dateTable {
			lo, _ := strconv.ParseInt(b, 10, 64)
			hi, _ := strconv.ParseInt(d, 10, 64)
			v = []any{a, lo, hi}
		}
		gone = append(gone, append([]any{i}, v...))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("index of %s/%s: %w", typ, id, err)
	}
	for _, g := range gone {
		c.Queue(deleteRowSQL[g[0].(int)], append([]any{typ, id}, g[1:]...)...)
	}
	var add []IndexEntry
	for _, w := range want {
		if missing[w.key] {
			add = append(add, w.e)
		}
	}
	c.addIndex(typ, id, add)
	return nil
}

// indexRowsSQL reads a resource's index rows from the four tables: the
// table's number in indexTables, then its values as text (dates in
// microseconds), an empty text past the table's own.
const indexRowsSQL = `SELECT 0, param, sys, code FROM idx_token WHERE res_type = $1 AND res_id = $2
UNION ALL SELECT 1, param, ref, '' FROM idx_ref WHERE res_type = $1 AND res_id = $2
UNION ALL SELECT 2, param, norm, raw FROM idx_string WHERE res_type = $1 AND res_id = $2
UNION ALL SELECT 3, param, CAST(lo AS TEXT), CAST(hi AS TEXT) FROM idx_date WHERE res_type = $1 AND res_id = $2`

// dateTable is idx_date's place in indexTables.
const dateTable = 3

// tableWidth is how many values (columns after res_type and res_id) a row
// of each index table has, and deleteRowSQL the deletion of one row.
var (
	tableWidth   [len(indexTables)]int
	deleteRowSQL [len(indexTables)]string
)

func init() {
	for i, t := range indexTables {
		_, vals, _ := strings.Cut(t.cols, "res_id, ")
		cols := strings.Split(vals, ", ")
		tableWidth[i] = len(cols)
		q := "DELETE FROM " + t.name + " WHERE res_type = $1 AND res_id = $2"
		for k, col := range cols {
			q += " AND " + col + " = $" + strconv.Itoa(k+3)
		}
		deleteRowSQL[i] = q
	}
}

// rowKey is an index row's values as one comparable string: text as it is,
// dates as their microseconds in decimal (as indexRowsSQL reads them).
func rowKey(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			b.WriteString(v)
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		}
		b.WriteByte(0)
	}
	return b.String()
}

// indexTable is one of the search index tables, with how an entry becomes
// its row: res_type, res_id, then its values.
type indexTable struct {
	name, cols string
	row        func(typ, id string, e IndexEntry) []any
}

var indexTables = [...]indexTable{
	{"idx_token", "res_type, res_id, param, sys, code", func(typ, id string, e IndexEntry) []any { return []any{typ, id, e.Param, e.System, e.Code} }},
	{"idx_ref", "res_type, res_id, param, ref", func(typ, id string, e IndexEntry) []any { return []any{typ, id, e.Param, e.Ref} }},
	{"idx_string", "res_type, res_id, param, norm, raw", func(typ, id string, e IndexEntry) []any { return []any{typ, id, e.Param, e.Text, e.Raw} }},
	{"idx_date", "res_type, res_id, param, lo, hi", func(typ, id string, e IndexEntry) []any {
		return []any{typ, id, e.Param, micros(e.Lo), micros(e.Hi)}
	}},
}

func tableOf(k store.ParamKind) int {
	switch k {
	case store.KindToken:
		return 0
	case store.KindReference:
		return 1
	case store.KindString, store.KindURI:
		return 2
	case store.KindDate:
		return 3
	}
	return -1
}

// batchConn is a write transaction's connection that holds the index rows
// of the resources written until something needs them: a statement on an
// index table (a search, a deletion of index rows), or the end of the job.
// Other statements go by: the rows are not theirs to see. They then go in one multi-row INSERT
// per table for all the resources written since, instead of one per
// resource and table: a discharge's thirteen tasks are four statements, not
// fifty (docs/architecture.md, "Write path").
type batchConn struct {
	WriteConn
	rows [len(indexTables)][][]any
}

// addIndex holds the entries of one resource.
func (c *batchConn) addIndex(typ, id string, entries []IndexEntry) {
	for _, e := range entries {
		if e.Param == "_id" {
			// Searched on resources.res_id (see param): an index row
			// would only cost a write.
			continue
		}
		if i := tableOf(e.Kind); i >= 0 {
			c.rows[i] = append(c.rows[i], indexTables[i].row(typ, id, e))
		}
	}
}

// insertChunks are the row counts of the index INSERT statements: a batch
// is cut into the largest that fit (195 rows: three of 64, three of 1), so
// that a handful of statement texts serve every batch and stay prepared.
var insertChunks = [...]int{256, 64, 16, 4, 1}

// flushIndex queues the held index rows.
func (c *batchConn) flushIndex() {
	for i, rows := range c.rows {
		for len(rows) > 0 {
			n := 1
			for _, k := range insertChunks {
				if k <= len(rows) {
					n = k
					break
				}
			}
			args := make([]any, 0, n*len(rows[0]))
			for _, r := range rows[:n] {
				args = append(args, r...)
			}
			c.Queue(insertSQL(i, n), args...)
			rows = rows[n:]
		}
		c.rows[i] = c.rows[i][:0]
	}
}

// insertSQL is the INSERT of n rows into index table i, built once.
func insertSQL(i, n int) string {
	key := [2]int{i, n}
	insertMu.Lock()
	defer insertMu.Unlock()
	if q, ok := insertCache[key]; ok {
		return q
	}
	t := indexTables[i]
	width := strings.Count(t.cols, ",") + 1
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + t.name + " (" + t.cols + ") VALUES ")
	arg := 0
	for r := range n {
		if r > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for c := range width {
			if c > 0 {
				sb.WriteString(", ")
			}
			arg++
			sb.WriteString("$" + strconv.Itoa(arg))
		}
		sb.WriteByte(')')
	}
	sb.WriteString(" ON CONFLICT DO NOTHING")
	q := sb.String()
	insertCache[key] = q
	return q
}

var (
	insertMu    sync.Mutex
	insertCache = map[[2]int]string{}
)

// flushFor flushes the held rows before a statement that touches an index
// table.
func (c *batchConn) flushFor(sql string) {
	if strings.Contains(sql, "idx_") {
		c.flushIndex()
	}
}

func (c *batchConn) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	c.flushFor(sql)
	return c.WriteConn.Exec(ctx, sql, args...)
}

func (c *batchConn) Query(ctx context.Context, sql string, args ...any) (Rows, error) {
	c.flushFor(sql)
	return c.WriteConn.Query(ctx, sql, args...)
}

func (c *batchConn) QueryRow(ctx context.Context, sql string, args ...any) Row {
	c.flushFor(sql)
	return c.WriteConn.QueryRow(ctx, sql, args...)
}

func (c *batchConn) Flush(ctx context.Context) error {
	c.flushIndex()
	return c.WriteConn.Flush(ctx)
}

// CountTokens counts the tenant's resources of a type by the code they
// have for a token parameter (a task's status, say): one pass over the
// parameter's index rows, where a search per code with its total would read
// them once per code (store.TokenCounter).
func (s *Store) CountTokens(ctx context.Context, tenant, typ, param string) (map[string]int, error) {
	if !ValidType(typ) {
		return nil, fmt.Errorf("%w: resource type %q", store.ErrInvalid, typ)
	}
	rows, err := s.be.Reader().Query(ctx, `SELECT x.code, COUNT(DISTINCT x.res_id) FROM idx_token x
JOIN resources r ON r.res_type = x.res_type AND r.res_id = x.res_id
WHERE x.res_type = $1 AND x.param = $2 AND r.tenant = $3 AND r.deleted = $4
GROUP BY x.code`, typ, param, tenant, false)
	if err != nil {
		return nil, fmt.Errorf("count %s by %s: %w", typ, param, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var code string
		var n int64
		if err := rows.Scan(&code, &n); err != nil {
			return nil, fmt.Errorf("count %s by %s: %w", typ, param, err)
		}
		out[code] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count %s by %s: %w", typ, param, err)
	}
	return out, nil
}

// Search implements store.Store.
func (s *Store) Search(ctx context.Context, q store.Query) (store.Page, error) {
	page := store.Page{Total: -1}
	if !ValidType(q.Type) {
		return page, fmt.Errorf("%w: resource type %q", store.ErrInvalid, q.Type)
	}
	count := clampCount(q.Count)
	var after int64
	if q.Cursor != "" {
		v, err := decodeCursor(q.Cursor, "s")
		if err != nil {
			return page, err
		}
		after = v
	}
	b := &sqlBuilder{args: []any{q.Type}}
	where := "r.res_type = $1 AND r.deleted = " + b.arg(false)
	if q.Tenant != "" {
		where += " AND r.tenant = " + b.arg(q.Tenant)
	}
	from := "resources r"
	for i, p := range driverFirst(q.Params) {
		cond, drive, err := b.param(p, i == 0)
		if err != nil {
			return page, err
		}
		if cond != "" {
			where += " AND " + cond
		}
		if drive != "" {
			// The driving parameter's matches come first whatever the
			// planner would guess: SQLite keeps CROSS JOIN's order, and
			// runs without statistics (none is gathered), so the plan
			// is the query's shape, the same on every database.
			from = "(" + drive + ") d CROSS JOIN resources r"
			where += " AND r.res_id = d.res_id"
		}
	}
	if q.Total {
		var n int64
		if err := s.be.Reader().QueryRow(ctx, "SELECT COUNT(*) FROM "+from+" WHERE "+where, b.args...).Scan(&n); err != nil {
			return page, fmt.Errorf("search %s: %w", q.Type, err)
		}
		page.Total = int(n)
	}
	query := `SELECT r.res_id, r.seq, v.tenant, v.version, v.last_updated, v.body
FROM ` + from + ` JOIN resource_versions v ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version = r.version
WHERE ` + where + " AND r.seq > " + b.arg(after) + " ORDER BY r.seq LIMIT " + b.arg(count+1)
	began := time.Now()
	rows, err := s.be.Reader().Query(ctx, query, b.args...)
	if err != nil {
		return page, fmt.Errorf("search %s: %w", q.Type, err)
	}
	defer func() {
		rows.Close()
		if took := time.Since(began); took > slowSearch {
			slog.Default().Warn("slow search", "type", q.Type, "params", len(q.Params), "took_ms", took.Milliseconds(), "sql", query, "args", fmt.Sprint(b.args...))
		}
	}()
	var lastSeq int64
	for rows.Next() {
		r := store.Resource{Type: q.Type}
		var seq, lu int64
		var body []byte
		if err := rows.Scan(&r.ID, &seq, &r.Tenant, &r.Version, &lu, &body); err != nil {
			return page, fmt.Errorf("search %s: %w", q.Type, err)
		}
		if len(page.Resources) == count {
			page.Next = encodeCursor("s", lastSeq)
			break
		}
		r.LastUpdated = fromMicros(lu)
		r.Body = body
		page.Resources = append(page.Resources, r)
		lastSeq = seq
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("search %s: %w", q.Type, err)
	}
	return page, nil
}

// slowSearch is the time past which a search is logged with its query.
const slowSearch = time.Second

type sqlBuilder struct{ args []any }

func (b *sqlBuilder) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// driverFirst orders the parameters so that the most selective kind comes
// first: a reference (a patient's, an owner's), then an id, a token, a
// string, a date. The first selects the candidate resources; each other
// one is checked per candidate (param).
func driverFirst(ps []store.Param) []store.Param {
	rank := func(p store.Param) int {
		switch {
		case p.Kind == store.KindReference:
			return 0
		case p.Name == "_id":
			return 1
		case p.Kind == store.KindToken:
			return 2
		case p.Kind == store.KindDate:
			return 4
		}
		return 3
	}
	out := append([]store.Param(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// param builds the condition for one parameter: any of its values (OR).
// The driving parameter is a set the resources are looked up from; the
// others are correlated checks on the index's primary key (res_type,
// res_id, param, …), so that "this patient's weights" does not read every
// weight of the database.
//
// For the driving parameter it returns no condition but the query of its
// matching ids, which the search joins on
// (DISTINCT: a resource may match by several index rows).
func (b *sqlBuilder) param(p store.Param, driver bool) (cond, drive string, err error) {
	if len(p.Values) == 0 {
		return "", "", fmt.Errorf("%w: parameter %s has no value", store.ErrInvalid, p.Name)
	}
	if p.Name == "_id" {
		var ors []string
		for _, v := range p.Values {
			ors = append(ors, "r.res_id = "+b.arg(v.Code))
		}
		return "(" + strings.Join(ors, " OR ") + ")", "", nil
	}
	var table string
	var ors []string
	for _, v := range p.Values {
		var cond string
		switch p.Kind {
		case store.KindToken:
			table = "idx_token"
			// Only the values a condition uses become arguments: PostgreSQL
			// refuses a statement with an argument it cannot type.
			switch {
			case v.Code == "" && v.System != nil: // system|: any code of that system
				cond = "sys = " + b.arg(*v.System)
			case v.System != nil:
				cond = "code = " + b.arg(v.Code) + " AND sys = " + b.arg(*v.System)
			default:
				cond = "code = " + b.arg(v.Code)
			}
		case store.KindReference:
			table = "idx_ref"
			cond = "ref = " + b.arg(v.Ref)
		case store.KindString:
			table = "idx_string"
			if v.Exact {
				cond = "raw = " + b.arg(v.Text)
			} else {
				cond = `norm LIKE ` + b.arg(likePrefix(v.Text)) + ` ESCAPE '\'`
			}
		case store.KindURI:
			table = "idx_string"
			cond = "raw = " + b.arg(v.Text)
		case store.KindDate:
			table = "idx_date"
			c, err := b.dateCond(v)
			if err != nil {
				return "", "", fmt.Errorf("%s: %w", p.Name, err)
			}
			cond = c
		default:
			return "", "", fmt.Errorf("%w: parameter %s has unsupported type %q", store.ErrInvalid, p.Name, p.Kind)
		}
		ors = append(ors, "("+cond+")")
	}
	if driver {
		return "", "SELECT DISTINCT res_id FROM " + table + " WHERE res_type = $1 AND param = " + b.arg(p.Name) +
			" AND (" + strings.Join(ors, " OR ") + ")", nil
	}
	return "EXISTS (SELECT 1 FROM " + table + " x WHERE x.res_type = $1 AND x.res_id = r.res_id AND x.param = " + b.arg(p.Name) +
		" AND (" + strings.Join(ors, " OR ") + "))", "", nil
}

// dateCond compares an indexed interval [lo, hi) with the value's interval
// [Lo, Hi), as pkg/fhir/search documents for each prefix.
func (b *sqlBuilder) dateCond(v store.Value) (string, error) {
	lo, hi := micros(v.Lo), micros(v.Hi)
	switch v.Prefix {
	case "", "eq":
		return "lo >= " + b.arg(lo) + " AND hi <= " + b.arg(hi), nil
	case "ne":
		return "NOT (lo >= " + b.arg(lo) + " AND hi <= " + b.arg(hi) + ")", nil
	case "lt":
		return "lo < " + b.arg(lo), nil
	case "le":
		return "lo < " + b.arg(hi), nil
	case "gt":
		return "hi > " + b.arg(hi), nil
	case "ge":
		return "hi > " + b.arg(lo), nil
	case "sa":
		return "lo >= " + b.arg(hi), nil
	case "eb":
		return "hi <= " + b.arg(lo), nil
	case "ap":
		// The parser has already widened the value; ap is then overlap.
		return "lo < " + b.arg(hi) + " AND hi > " + b.arg(lo), nil
	}
	return "", fmt.Errorf("%w: date prefix %q", store.ErrInvalid, v.Prefix)
}

func likePrefix(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s) + "%"
}

func encodeCursor(kind string, v int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + strconv.FormatInt(v, 10)))
}

func decodeCursor(c, kind string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(raw), kind) {
		return 0, fmt.Errorf("%w: malformed paging cursor", store.ErrInvalid)
	}
	v, err := strconv.ParseInt(string(raw[len(kind):]), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: malformed paging cursor", store.ErrInvalid)
	}
	return v, nil
}
