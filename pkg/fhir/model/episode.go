package model

// EpisodeOfCare is a FHIR R4 EpisodeOfCare.
type EpisodeOfCare struct {
	ResourceType         string                 `json:"resourceType"`
	ID                   string                 `json:"id"`
	Meta                 *Meta                  `json:"meta"`
	Extension            []Extension            `json:"extension"`
	Identifier           []Identifier           `json:"identifier"`
	Status               string                 `json:"status"`
	StatusHistory        []EpisodeStatusHistory `json:"statusHistory"`
	Type                 []CodeableConcept      `json:"type"`
	Diagnosis            []EpisodeDiagnosis     `json:"diagnosis"`
	Patient              *Reference             `json:"patient"`
	ManagingOrganization *Reference             `json:"managingOrganization"`
	Period               *Period                `json:"period"`
	ReferralRequest      []Reference            `json:"referralRequest"`
	CareManager          *Reference             `json:"careManager"`
	Team                 []Reference            `json:"team"`
	Account              []Reference            `json:"account"`
	rest                 rest
}

// UnmarshalJSON decodes an EpisodeOfCare, keeping what it does not name.
func (e *EpisodeOfCare) UnmarshalJSON(b []byte) (err error) { e.rest, err = decodeObject(b, e); return }

// MarshalJSON encodes an EpisodeOfCare with what it did not name.
func (e EpisodeOfCare) MarshalJSON() ([]byte, error) { return encodeObject(&e, e.rest) }

// GetExtension returns the episode's first extension with url, nil when
// none.
func (e *EpisodeOfCare) GetExtension(url string) *Extension { return findExtension(e.Extension, url) }

// SetExtension replaces the episode's extension with x's url, or adds x.
func (e *EpisodeOfCare) SetExtension(x Extension) { setExtension(&e.Extension, x) }

// EpisodeStatusHistory is EpisodeOfCare.statusHistory.
type EpisodeStatusHistory struct {
	Status string  `json:"status"`
	Period *Period `json:"period"`
	rest   rest
}

// UnmarshalJSON decodes a status history entry, keeping what it does not
// name.
func (h *EpisodeStatusHistory) UnmarshalJSON(b []byte) (err error) {
	h.rest, err = decodeObject(b, h)
	return
}

// MarshalJSON encodes a status history entry with what it did not name.
func (h EpisodeStatusHistory) MarshalJSON() ([]byte, error) { return encodeObject(&h, h.rest) }

// EpisodeDiagnosis is EpisodeOfCare.diagnosis.
type EpisodeDiagnosis struct {
	Condition *Reference       `json:"condition"`
	Role      *CodeableConcept `json:"role"`
	Rank      *int64           `json:"rank"`
	rest      rest
}

// UnmarshalJSON decodes a diagnosis, keeping what it does not name.
func (d *EpisodeDiagnosis) UnmarshalJSON(b []byte) (err error) {
	d.rest, err = decodeObject(b, d)
	return
}

// MarshalJSON encodes a diagnosis with what it did not name.
func (d EpisodeDiagnosis) MarshalJSON() ([]byte, error) { return encodeObject(&d, d.rest) }
