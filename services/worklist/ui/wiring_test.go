package ui

import (
	"github.com/passerelle-sante/passerelle/pkg/websession"
	"github.com/passerelle-sante/passerelle/services/teams"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// The real implementations fit the interfaces the pages declare.
var (
	_ Actions    = (*worklist.Service)(nil)
	_ Sessions   = (*websession.Manager)(nil)
	_ Reassigner = (*teams.Service)(nil)
)
