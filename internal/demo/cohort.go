package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

// Pathways of the demo's patients.
const (
	HeartFailure = "hf"
	Fall         = "fall"
)

// Where a death becomes known.
const (
	DeathInHospital = "hospital" // the ADT feed: discharge mode 9
	DeathByTeam     = "team"     // a team member records it
	DeathInRegister = "register" // only INSEE's monthly register tells
)

// Patient is one invented patient. Names come from fixed lists of plants
// and trees, identifiers from the demo INS system: nobody real.
type Patient struct {
	N              int
	Family, Given  string
	Sex            string // F or M
	Birth          time.Time
	BirthPlace     string // INSEE code of the commune of birth
	INS            string // demo INS-NIR (urn:oid:1.2.250.1.213.1.4.11)
	Commune        Commune
	Street         string
	GP             int // index in members of the declared GP, or -1
	Pathway        string
	Weight         float64 // dry weight, kg
	Systolic       float64
	HeartRate      float64
	NYHA           string
	Stays          []*Stay
	Death          *Death
	RefusesPathway bool
}

// Stay is one hospital stay of a patient.
type Stay struct {
	P                 *Patient
	N                 int // rank among the patient's stays, from 1
	H                 Hospital
	Unit              string
	Admit, Discharge  time.Time
	Diagnosis, DxText string // ICD-10; empty when the feed sends none
	Elective          bool
	// Dies: the patient dies in hospital, at Discharge.
	Dies bool
	// HF: the stay is a heart-failure decompensation.
	HF bool
}

// Death is a patient's death and how it becomes known.
type Death struct {
	At     time.Time
	Source string
}

// Plan is the demo's population and their stories, all drawn from one
// seed: the same seed and dates give the same plan.
type Plan struct {
	Start, End time.Time
	Patients   []*Patient
}

// Sizes of the demo: heart-failure discharges per year (Défi Santé's CPTS
// followed 200 patients in a year) and fall pathways per year.
const (
	hfPerYear   = 165
	fallPerYear = 20
)

var (
	familyNames = []string{"AUBÉPINE", "BRUYÈRE", "CHARMILLE", "DOUCETTE", "ÉGLANTIER", "FOUGERAIE", "GENÉVRIER", "HOUSSAIE",
		"IRISÉE", "JONQUILLE", "LAVANDIN", "MARRONNIER", "NOISETIER", "OSERAIE", "PERVENCHE", "QUENOUILLE", "ROSERAIE",
		"SAULAIE", "TILLEULIER", "VERVEINE", "ARMOISE", "BLEUET", "CAMOMILLE", "DIGITALE", "ÉPICÉA", "FRÊNAIE", "GENTIANE",
		"HÊTRAIE", "ORTIGUE", "MYRTILLIER", "NARCISSE", "ORMAIE", "PÂQUERETTE", "RENONCULE", "SARRIETTE", "TAMARIS",
		"VIORNE", "ACANTHE", "BOURRACHE", "CHÂTAIGNERAIE", "CORMIER", "ERABLAIE", "GLYCINE", "LISERON", "MÉLILOT",
		"PRUNELLIER", "SORBIER", "TRÈFLERIE"}
	givenF = []string{"Jeanne", "Marie", "Simone", "Yvette", "Odette", "Colette", "Monique", "Denise", "Josiane", "Paulette",
		"Germaine", "Huguette", "Madeleine", "Suzanne", "Renée", "Lucienne", "Micheline", "Ginette", "Arlette", "Raymonde",
		"Bernadette", "Christiane", "Nicole", "Françoise", "Geneviève", "Andrée", "Thérèse", "Marcelle", "Solange", "Éliane"}
	givenM = []string{"Jean", "Pierre", "André", "Marcel", "Robert", "Roger", "René", "Louis", "Georges", "Henri",
		"Maurice", "Raymond", "Lucien", "Gérard", "Bernard", "Jacques", "Michel", "Claude", "Albert", "Gilbert",
		"Marius", "Fernand", "Émile", "Gaston", "Armand", "Antoine", "Joseph", "Paul", "Guy", "Daniel"}
	streets = []string{"rue des Tilleuls", "chemin des Vignes", "avenue de la Loire", "rue du Lavoir", "impasse des Mésanges",
		"rue de la Fontaine", "place du Marché", "rue des Écoles", "allée des Peupliers", "route de Renaison"}
	// Communes of birth: the territory's and a few others of the Loire.
	birthPlaces = []string{"42187", "42187", "42184", "42127", "42071", "42332", "42182", "42218", "42207", "42147"}
)

// Diagnoses of the stays.
var (
	hfDiagnoses = [][2]string{{"I50.0", "Insuffisance cardiaque congestive"}, {"I50.1", "Insuffisance ventriculaire gauche"},
		{"I50.9", "Insuffisance cardiaque, sans précision"}, {"I11.0", "Cardiopathie hypertensive, avec insuffisance cardiaque (congestive)"}}
	otherDiagnoses = [][2]string{{"J18.9", "Pneumopathie, sans précision"}, {"N39.0", "Infection des voies urinaires, siège non précisé"},
		{"E86", "Hypovolémie"}, {"I48.9", "Fibrillation auriculaire, sans précision"}, {"K92.2", "Hémorragie gastro-intestinale, sans précision"}}
	fallDiagnoses = [][2]string{{"S72.0", "Fracture du col du fémur"}, {"W19", "Chute, sans précision"}, {"R29.6", "Chutes à répétition, non classées ailleurs"}}
)

// NewPlan draws the population of a simulation from start to end: the
// index discharges spread over the period (the last ones a few days before
// its end), each patient's later stays, elective or not, and death at
// plausible rates (about 20 % readmitted within six months, one in twelve
// for heart failure; about 6 % dead within the year).
func NewPlan(seed uint64, start, end time.Time) *Plan {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	p := &Plan{Start: start, End: end}
	years := end.Sub(start).Hours() / 24 / 365
	nHF := int(math.Round(hfPerYear * years))
	nFall := int(math.Round(fallPerYear * years))
	used := map[string]bool{}
	span := end.Add(-4 * 24 * time.Hour).Sub(start.Add(24 * time.Hour))
	for i := range nHF + nFall {
		pt := &Patient{N: i + 1, Pathway: HeartFailure, GP: -1}
		if i >= nHF {
			pt.Pathway = Fall
		}
		pt.Sex = "F"
		if rng.IntN(100) < 46 {
			pt.Sex = "M"
		}
		for {
			pt.Family = familyNames[rng.IntN(len(familyNames))]
			if pt.Sex == "F" {
				pt.Given = givenF[rng.IntN(len(givenF))]
			} else {
				pt.Given = givenM[rng.IntN(len(givenM))]
			}
			if !used[pt.Family+pt.Given] {
				used[pt.Family+pt.Given] = true
				break
			}
		}
		age := 62 + rng.IntN(32) // 62–93
		if pt.Pathway == Fall {
			age = 70 + rng.IntN(25)
		}
		day0 := start.Add(24*time.Hour + time.Duration(rng.Int64N(int64(span))))
		pt.Birth = time.Date(day0.Year()-age, time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC)
		pt.BirthPlace = birthPlaces[rng.IntN(len(birthPlaces))]
		pt.INS = insOf(pt)
		pt.Commune = pickCommune(rng)
		pt.Street = fmt.Sprintf("%d %s", 1+rng.IntN(80), streets[rng.IntN(len(streets))])
		if rng.IntN(100) < 80 {
			pt.GP = gpFor(rng, pt.Commune)
		}
		pt.Weight = math.Round((55+rng.Float64()*35)*10) / 10
		pt.Systolic = 105 + float64(rng.IntN(30))
		pt.HeartRate = 62 + float64(rng.IntN(20))
		pt.NYHA = []string{"II", "II", "II", "III", "III", "IV"}[rng.IntN(6)]
		pt.RefusesPathway = rng.IntN(100) < 2
		p.Patients = append(p.Patients, pt)
		story(rng, pt, day0, end)
	}
	return p
}

func pickCommune(rng *rand.Rand) Commune {
	total := 0
	for _, c := range Communes {
		total += c.Weight
	}
	n := rng.IntN(total)
	for _, c := range Communes {
		if n < c.Weight {
			return c
		}
		n -= c.Weight
	}
	return Communes[0]
}

// gpFor picks a GP member practising in the commune (any GP otherwise).
func gpFor(rng *rand.Rand, c Commune) int {
	var gps, all []int
	for i, m := range members {
		if m.role != "gp" {
			continue
		}
		all = append(all, i)
		for _, ci := range m.communes {
			if Communes[ci] == c {
				gps = append(gps, i)
			}
		}
	}
	if len(gps) == 0 {
		gps = all
	}
	return gps[rng.IntN(len(gps))]
}

// insOf builds the patient's demo INS-NIR: sex, year and month of birth,
// commune of birth, an order number, and the key 97 - (number mod 97).
func insOf(p *Patient) string {
	sex := "2"
	if p.Sex == "M" {
		sex = "1"
	}
	base := fmt.Sprintf("%s%02d%02d%s%03d", sex, p.Birth.Year()%100, int(p.Birth.Month()), p.BirthPlace, 100+p.N%900)
	var n uint64
	for _, c := range base {
		n = n*10 + uint64(c-'0')
	}
	return fmt.Sprintf("%s%02d", base, 97-n%97)
}

// at is a time of day in Europe/Paris on t's day.
func at(t time.Time, hour, minute int) time.Time {
	y, m, d := t.In(clock.Paris).Date()
	return time.Date(y, m, d, hour, minute, 0, 0, clock.Paris)
}

// story draws the patient's stays and death from the index discharge day.
func story(rng *rand.Rand, p *Patient, day0, end time.Time) {
	idx := &Stay{P: p, N: 1, H: CHDemo}
	if p.Pathway == HeartFailure {
		if rng.IntN(100) < 25 {
			idx.H = Forez
		}
		idx.Unit = idx.H.Cardiology
		dx := hfDiagnoses[rng.IntN(len(hfDiagnoses))]
		idx.Diagnosis, idx.DxText, idx.HF = dx[0], dx[1], true
		// The Forez feed sends no diagnosis for a third of its stays: the
		// coordinating nurse confirms the inclusion.
		if idx.H == Forez && rng.IntN(3) == 0 {
			idx.Diagnosis, idx.DxText = "", ""
		}
	} else {
		idx.Unit = idx.H.Geriatrics
		dx := fallDiagnoses[rng.IntN(len(fallDiagnoses))]
		idx.Diagnosis, idx.DxText = dx[0], dx[1]
	}
	idx.Discharge = at(day0, 10+rng.IntN(7), 15*rng.IntN(4))
	if wd := idx.Discharge.In(clock.Paris).Weekday(); wd == time.Sunday {
		idx.Discharge = idx.Discharge.Add(24 * time.Hour)
	}
	idx.Admit = at(idx.Discharge.Add(-time.Duration(4+rng.IntN(9))*24*time.Hour), 8+rng.IntN(12), 0)
	p.Stays = append(p.Stays, idx)

	// Death within the year: about 7 % (heart failure), 4 % (falls).
	deathRate := 7
	if p.Pathway == Fall {
		deathRate = 4
	}
	var death *Death
	if rng.IntN(100) < deathRate {
		days := 3 + rng.IntN(360)
		death = &Death{At: at(idx.Discharge.Add(time.Duration(days)*24*time.Hour), 1+rng.IntN(22), rng.IntN(60))}
		if !death.At.Before(end) {
			death = nil // beyond the simulation
		}
	}
	if death != nil {
		switch n := rng.IntN(100); {
		case n < 35:
			death.Source = DeathInHospital
		case n < 70:
			death.Source = DeathByTeam
		default:
			death.Source = DeathInRegister
		}
	}

	// Unplanned readmissions: about 20 % within six months, a quarter of
	// them readmitted twice; and a few planned stays.
	last := idx.Discharge
	readmitRate := 20
	if p.Pathway == Fall {
		readmitRate = 12
	}
	for k := 0; k < 2; k++ {
		if (k == 0 && rng.IntN(100) >= readmitRate) || (k == 1 && rng.IntN(100) >= 25) {
			break
		}
		gap := 1 + int(rng.ExpFloat64()*55)
		s := &Stay{P: p, H: CHDemo}
		if rng.IntN(100) < 25 {
			s.H = Forez
		}
		s.Admit = at(last.Add(time.Duration(gap)*24*time.Hour), 6+rng.IntN(16), rng.IntN(60))
		s.Discharge = at(s.Admit.Add(time.Duration(3+rng.IntN(8))*24*time.Hour), 10+rng.IntN(7), 0)
		switch n := rng.IntN(100); {
		case p.Pathway == HeartFailure && n < 45:
			dx := hfDiagnoses[rng.IntN(len(hfDiagnoses))]
			s.Diagnosis, s.DxText, s.HF, s.Unit = dx[0], dx[1], true, s.H.Cardiology
		case n < 85:
			dx := otherDiagnoses[rng.IntN(len(otherDiagnoses))]
			s.Diagnosis, s.DxText, s.Unit = dx[0], dx[1], s.H.Geriatrics
		default:
			// An admission whose feed carries no diagnosis: "HF status
			// unknown" in the heart-failure readmission measure.
			s.H, s.Unit, s.HF = Forez, Forez.Geriatrics, rng.IntN(2) == 0
		}
		p.Stays = append(p.Stays, s)
		last = s.Discharge
	}
	if rng.IntN(100) < 6 {
		s := &Stay{P: p, H: CHDemo, Unit: CHDemo.Cardiology, Elective: true, Diagnosis: "Z45.0", DxText: "Ajustement et entretien d'un dispositif cardiaque"}
		s.Admit = at(idx.Discharge.Add(time.Duration(20+rng.IntN(120))*24*time.Hour), 8, 0)
		s.Discharge = at(s.Admit.Add(24*time.Hour), 15, 0)
		p.Stays = append(p.Stays, s)
	}
	sort.SliceStable(p.Stays, func(i, j int) bool { return p.Stays[i].Admit.Before(p.Stays[j].Admit) })

	// Stays overlapping an earlier one, or after the death, are dropped;
	// a death in hospital happens during a last stay.
	var kept []*Stay
	for _, s := range p.Stays {
		if len(kept) > 0 && !s.Admit.After(kept[len(kept)-1].Discharge.Add(12*time.Hour)) {
			continue
		}
		if death != nil && !s.Admit.Before(death.At.Add(-48*time.Hour)) {
			break
		}
		kept = append(kept, s)
	}
	if death != nil && death.Source == DeathInHospital {
		s := &Stay{P: p, H: CHDemo, Unit: CHDemo.Cardiology, Discharge: death.At, Dies: true}
		s.Admit = at(death.At.Add(-time.Duration(1+rng.IntN(6))*24*time.Hour), 3+rng.IntN(18), 0)
		if p.Pathway == HeartFailure || rng.IntN(2) == 0 {
			dx := hfDiagnoses[rng.IntN(len(hfDiagnoses))]
			s.Diagnosis, s.DxText, s.HF = dx[0], dx[1], true
		} else {
			dx := otherDiagnoses[rng.IntN(len(otherDiagnoses))]
			s.Diagnosis, s.DxText, s.Unit = dx[0], dx[1], CHDemo.Geriatrics
		}
		prev := kept[len(kept)-1]
		switch {
		case s.Admit.After(prev.Discharge.Add(12 * time.Hour)):
			kept = append(kept, s)
		case prev != idx:
			// Dies during the previous stay.
			prev.Dies, prev.Discharge = true, death.At
		case death.At.Sub(idx.Discharge) > 36*time.Hour:
			s.Admit = idx.Discharge.Add(24 * time.Hour)
			kept = append(kept, s)
		default:
			death.Source = DeathByTeam
		}
	}
	for i, s := range kept {
		s.N = i + 1
	}
	p.Stays = kept
	p.Death = death
}
