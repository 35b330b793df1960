package outcomes

import (
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

func parisLoc() *time.Location { return clock.Paris }
