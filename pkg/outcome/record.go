package outcome

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Record is what the outcomes service keeps about one patient: the traits
// that match the register of deaths, the death, the hospital stays seen
// from any partner hospital and the pathway episodes. It is built from
// events (intake's Encounter and Patient, pathway's EpisodeOfCare and
// Tasks, worklist's Task progress) and is all an evaluation reads.
type Record struct {
	Patient string // Patient id
	// INS traits (docs/domain.md): birth family name, given names, birth date,
	// sex (M, F or empty), INSEE code of the birth place.
	Family     string
	Given      []string
	BirthDate  Day
	Sex        string
	BirthPlace string
	// Death is when the patient died (zero: not known to be dead), and
	// DeathSource who said so: hospital, patient (Patient.deceased),
	// team (a team member) or insee (the register).
	Death       time.Time
	DeathSource string
	Stays       []Stay
	Episodes    []Episode
}

// Stay is one hospital stay of the patient.
type Stay struct {
	Encounter string
	// Class is Encounter.class (IMP for a full hospitalisation).
	Class string
	// Planned: Encounter.priority elective (PV1-4).
	Planned bool
	Start   time.Time
	End     time.Time
	FINESS  string
	// HF is the principal diagnosis's heart-failure status: 'y', 'n', or
	// '?' when the feed carried no diagnosis.
	HF byte
}

// Episode is one pathway episode.
type Episode struct {
	ID string
	// Status is the EpisodeOfCare status.
	Status string
	// Pathway is the template's canonical URL (without version).
	Pathway        string
	CPTS           string
	IndexEncounter string
	Discharge      time.Time
	Tasks          []Task
}

// Task is one pathway task of an episode.
type Task struct {
	ID     string
	Code   string
	Role   string // performerType team role
	Status string
	Due    time.Time // restriction.period.end; zero when none
	Done   time.Time // completion time when completed
}

// Counted tells whether an episode belongs to the outcome populations:
// opened for a follow-up (active, on hold or finished). An inclusion still
// to confirm, a cancelled episode and one entered in error do not count.
func (e Episode) Counted() bool {
	switch e.Status {
	case "active", "onhold", "finished", "waitlist":
		return true
	}
	return false
}

// Hospital is the FINESS of the episode's index stay.
func (r *Record) Hospital(e Episode) string {
	for _, s := range r.Stays {
		if s.Encounter == e.IndexEncounter {
			return s.FINESS
		}
	}
	return ""
}

// EpisodeByID returns the episode with id, or nil.
func (r *Record) EpisodeByID(id string) *Episode {
	for i := range r.Episodes {
		if r.Episodes[i].ID == id {
			return &r.Episodes[i]
		}
	}
	return nil
}

// PutStay adds or replaces the stay of its encounter.
func (r *Record) PutStay(s Stay) {
	for i := range r.Stays {
		if r.Stays[i].Encounter == s.Encounter {
			r.Stays[i] = s
			return
		}
	}
	r.Stays = append(r.Stays, s)
	sort.SliceStable(r.Stays, func(i, j int) bool { return r.Stays[i].Start.Before(r.Stays[j].Start) })
}

// DropStay removes the stay of an encounter (an admission cancelled).
func (r *Record) DropStay(encounter string) {
	out := r.Stays[:0]
	for _, s := range r.Stays {
		if s.Encounter != encounter {
			out = append(out, s)
		}
	}
	r.Stays = out
}

// PutEpisode adds or replaces an episode, keeping its known tasks when e
// has none.
func (r *Record) PutEpisode(e Episode) {
	for i := range r.Episodes {
		if r.Episodes[i].ID == e.ID {
			if e.Tasks == nil {
				e.Tasks = r.Episodes[i].Tasks
			}
			r.Episodes[i] = e
			return
		}
	}
	r.Episodes = append(r.Episodes, e)
	sort.SliceStable(r.Episodes, func(i, j int) bool { return r.Episodes[i].Discharge.Before(r.Episodes[j].Discharge) })
}

// PutTask adds or replaces a task of episode ep (created if unknown, with
// no other data). It returns false when the episode is unknown and ep is
// empty.
func (r *Record) PutTask(ep string, t Task) bool {
	for i := range r.Episodes {
		e := &r.Episodes[i]
		if ep != "" && e.ID != ep {
			continue
		}
		for j := range e.Tasks {
			if e.Tasks[j].ID == t.ID {
				e.Tasks[j] = t
				return true
			}
		}
		if ep != "" {
			e.Tasks = append(e.Tasks, t)
			return true
		}
	}
	return false
}

// SetDeath records a death unless an earlier source already gave one: the
// first source that knew keeps the date; a hospital's date wins over the
// others because it is recorded where the death happened.
func (r *Record) SetDeath(at time.Time, source string) bool {
	if at.IsZero() {
		return false
	}
	if !r.Death.IsZero() && !(source == "hospital" && r.DeathSource != "hospital") {
		return false
	}
	r.Death, r.DeathSource = at.UTC(), source
	return true
}

// The encoding of a Record is one line of text, small and fast to read
// back: a million records are read in one evaluation. Sections are
// separated by ';', fields by '|', list items by ','; every field is
// percent-escaped so that none of these appear inside one. Times are Unix
// seconds, days are Day numbers; empty means none.
const recordVersion = "r1"

// Encode returns the record's compact text: EncodeParts' two parts
// joined.
func (r *Record) Encode() string {
	rec, tasks := r.EncodeParts()
	return rec + tasks
}

// EncodeParts returns the record's text without its tasks, and the tasks'
// sections (each ";T|episode|…"): evaluations that do not count tasks read
// only the first.
func (r *Record) EncodeParts() (string, string) {
	var b strings.Builder
	b.WriteString(recordVersion)
	b.WriteString(";P|")
	fields(&b, r.Patient, r.Family)
	// Given names are a list: each escaped, joined by ','.
	b.WriteString("|" + strings.Join(escAll(r.Given), ",") + "|")
	fields(&b, day(r.BirthDate), r.Sex, r.BirthPlace, unix(r.Death), r.DeathSource)
	for _, s := range r.Stays {
		b.WriteString(";S|")
		hf := "?"
		if s.HF == 'y' || s.HF == 'n' {
			hf = string(rune(s.HF))
		}
		fields(&b, s.Encounter, s.Class, boolStr(s.Planned), unix(s.Start), unix(s.End), s.FINESS, hf)
	}
	for _, e := range r.Episodes {
		b.WriteString(";E|")
		fields(&b, e.ID, e.Status, e.Pathway, e.CPTS, e.IndexEncounter, unix(e.Discharge))
	}
	var t strings.Builder
	for _, e := range r.Episodes {
		for _, k := range e.Tasks {
			t.WriteString(";T|")
			fields(&t, e.ID, k.ID, k.Code, k.Role, k.Status, unix(k.Due), unix(k.Done))
		}
	}
	return b.String(), t.String()
}

func fields(b *strings.Builder, fs ...string) {
	for i, f := range fs {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(esc(f))
	}
}

var (
	escaper   = strings.NewReplacer("%", "%25", ";", "%3B", "|", "%7C", ",", "%2C")
	unescaper = strings.NewReplacer("%25", "%", "%3B", ";", "%7C", "|", "%2C", ",")
)

func esc(s string) string {
	if !strings.ContainsAny(s, "%;|,") {
		return s
	}
	return escaper.Replace(s)
}

func unesc(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	return unescaper.Replace(s)
}

func escAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = esc(s)
	}
	return out
}

func boolStr(v bool) string {
	if v {
		return "1"
	}
	return ""
}

func unix(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.Unix(), 10)
}

func day(d Day) string {
	if d == NoDay {
		return ""
	}
	return strconv.Itoa(int(d))
}

// ErrRecord is the error of a record text that cannot be read.
var ErrRecord = errors.New("outcome record unreadable")

// DecodeRecord reads a record's compact text.
func DecodeRecord(s string) (Record, error) {
	var r Record
	err := DecodeInto(&r, s)
	return r, err
}

// DecodeInto reads a record's text (or its two parts concatenated) into r,
// reusing r's slices: a scan over a million records allocates little.
func DecodeInto(r *Record, s string) error {
	stays, eps, given := r.Stays[:0], r.Episodes[:0], r.Given[:0]
	*r = Record{BirthDate: NoDay, Stays: stays, Episodes: eps}
	sec, rest, _ := strings.Cut(s, ";")
	if sec != recordVersion {
		return fmt.Errorf("%w: unknown version", ErrRecord)
	}
	var f [10]string
	for rest != "" {
		sec, rest, _ = strings.Cut(rest, ";")
		escaped := strings.IndexByte(sec, '%') >= 0
		n := 0
		for n < len(f) {
			var v string
			var more bool
			v, sec, more = strings.Cut(sec, "|")
			f[n] = v
			n++
			if !more {
				break
			}
		}
		for i := n; i < len(f); i++ {
			f[i] = ""
		}
		for i := 1; escaped && i < n; i++ {
			// The given names (P, field 3) are a list of escaped names.
			if f[0] != "P" || i != 3 {
				f[i] = unesc(f[i])
			}
		}
		switch f[0] {
		case "P":
			r.Patient, r.Family = f[1], f[2]
			if f[3] != "" {
				// Cut, not Split: no slice allocated per record.
				r.Given = given
				for rest, more := f[3], true; more; {
					var x string
					x, rest, more = strings.Cut(rest, ",")
					r.Given = append(r.Given, unesc(x))
				}
			}
			r.BirthDate = parseDayNum(f[4])
			r.Sex, r.BirthPlace = f[5], f[6]
			r.Death, r.DeathSource = parseUnix(f[7]), f[8]
		case "S":
			st := Stay{Encounter: f[1], Class: f[2], Planned: f[3] == "1", Start: parseUnix(f[4]), End: parseUnix(f[5]), FINESS: f[6], HF: '?'}
			if f[7] == "y" || f[7] == "n" {
				st.HF = f[7][0]
			}
			r.Stays = append(r.Stays, st)
		case "E":
			// The slot's tasks buffer from the record read before is
			// reused, as the stays and episodes are.
			var tasks []Task
			if n := len(r.Episodes); n < cap(r.Episodes) {
				tasks = r.Episodes[:n+1][n].Tasks[:0]
			}
			r.Episodes = append(r.Episodes, Episode{ID: f[1], Status: f[2], Pathway: f[3], CPTS: f[4], IndexEncounter: f[5], Discharge: parseUnix(f[6]), Tasks: tasks})
		case "T":
			e := r.EpisodeByID(f[1])
			if e == nil {
				return fmt.Errorf("%w: task of an unknown episode", ErrRecord)
			}
			e.Tasks = append(e.Tasks, Task{ID: f[2], Code: f[3], Role: f[4], Status: f[5], Due: parseUnix(f[6]), Done: parseUnix(f[7])})
		default:
			return fmt.Errorf("%w: unknown section %q", ErrRecord, f[0])
		}
	}
	return nil
}

func parseUnix(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

func parseDayNum(s string) Day {
	if s == "" {
		return NoDay
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return NoDay
	}
	return Day(n)
}
