package pathway

import "time"

// Extensions of a pathway's instance (EpisodeOfCare, Task), written by the
// pathway and teams services and read by the others. They are declared here,
// once, because every service imports this package and no service imports
// another.
const (
	// ExtEpisodePathway on an EpisodeOfCare: the template it instantiates
	// (valueCanonical url|version), as CarePlan.instantiatesCanonical.
	ExtEpisodePathway = "https://passerelle.health/fhir/StructureDefinition/episode-pathway"
	// ExtIndexEncounter on an EpisodeOfCare: the discharge that opened it.
	ExtIndexEncounter = "https://passerelle.health/fhir/StructureDefinition/index-encounter"
	// ExtEpisodeCarePlan on an EpisodeOfCare: its CarePlan, on which the
	// pathway's tasks are based (R4 has no element for it).
	ExtEpisodeCarePlan = "https://passerelle.health/fhir/StructureDefinition/episode-careplan"
	// ExtReadmission on an EpisodeOfCare, repeated: a stay during the
	// episode (encounter, start, end once discharged, planned).
	ExtReadmission = "https://passerelle.health/fhir/StructureDefinition/readmission"
	// ExtTaskAssignment on a Task: who the teams service offered it to, and
	// who declined it or let its acceptance time run out. Teams writes it;
	// the coordinator's worklist reads it.
	ExtTaskAssignment = "https://passerelle.health/fhir/StructureDefinition/task-assignment"
)

// ExtLateInclusion on an EpisodeOfCare opened from a discharge notified
// late (Template.Late): notified (valueDateTime, when Passerelle learnt of
// the discharge and opened the episode), daysLate (valueInteger, calendar
// days from the discharge), then, once its tasks are created, skipped and
// missed (valueInteger, the occurrences already past) and notice
// (valueReference, the Communication that told the referent). The pathway
// service writes it; the worklist counts missing data from notified.
const ExtLateInclusion = "https://passerelle.health/fhir/StructureDefinition/late-inclusion"

// LateNotified reads when Passerelle learnt of a late discharge from an
// EpisodeOfCare's extension late-inclusion; ok is false for an episode
// opened on time.
func LateNotified(ep map[string]any) (at time.Time, ok bool) {
	exts, _ := ep["extension"].([]any)
	for _, x := range exts {
		xo, _ := x.(map[string]any)
		if xo["url"] != ExtLateInclusion {
			continue
		}
		subs, _ := xo["extension"].([]any)
		for _, s := range subs {
			so, _ := s.(map[string]any)
			if so["url"] != "notified" {
				continue
			}
			v, _ := so["valueDateTime"].(string)
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}
