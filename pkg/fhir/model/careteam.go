package model

// CareTeam is a FHIR R4 CareTeam.
type CareTeam struct {
	ResourceType         string                `json:"resourceType"`
	ID                   string                `json:"id"`
	Meta                 *Meta                 `json:"meta"`
	Extension            []Extension           `json:"extension"`
	Identifier           []Identifier          `json:"identifier"`
	Status               string                `json:"status"`
	Category             []CodeableConcept     `json:"category"`
	Name                 string                `json:"name"`
	Subject              *Reference            `json:"subject"`
	Encounter            *Reference            `json:"encounter"`
	Period               *Period               `json:"period"`
	Participant          []CareTeamParticipant `json:"participant"`
	ReasonCode           []CodeableConcept     `json:"reasonCode"`
	ReasonReference      []Reference           `json:"reasonReference"`
	ManagingOrganization []Reference           `json:"managingOrganization"`
	Note                 []Annotation          `json:"note"`
	rest                 rest
}

// UnmarshalJSON decodes a CareTeam, keeping what it does not name.
func (c *CareTeam) UnmarshalJSON(b []byte) (err error) { c.rest, err = decodeObject(b, c); return }

// MarshalJSON encodes a CareTeam with what it did not name.
func (c CareTeam) MarshalJSON() ([]byte, error) { return encodeObject(&c, c.rest) }

// GetExtension returns the team's first extension with url, nil when none.
func (c *CareTeam) GetExtension(url string) *Extension { return findExtension(c.Extension, url) }

// SetExtension replaces the team's extension with e's url, or adds e.
func (c *CareTeam) SetExtension(e Extension) { setExtension(&c.Extension, e) }

// CareTeamParticipant is CareTeam.participant.
type CareTeamParticipant struct {
	Role       []CodeableConcept `json:"role"`
	Member     *Reference        `json:"member"`
	OnBehalfOf *Reference        `json:"onBehalfOf"`
	Period     *Period           `json:"period"`
	rest       rest
}

// UnmarshalJSON decodes a participant, keeping what it does not name.
func (p *CareTeamParticipant) UnmarshalJSON(b []byte) (err error) {
	p.rest, err = decodeObject(b, p)
	return
}

// MarshalJSON encodes a participant with what it did not name.
func (p CareTeamParticipant) MarshalJSON() ([]byte, error) { return encodeObject(&p, p.rest) }

// TeamRole is the participant's role in the team-role code system.
func (p *CareTeamParticipant) TeamRole() string { return FirstCode(p.Role, SystemTeamRole) }

// Current tells whether the participation has not ended.
func (p *CareTeamParticipant) Current() bool { return !p.Period.Ended() }
