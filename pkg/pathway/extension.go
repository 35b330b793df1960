package pathway

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
