//go:build !unix

package hl7v2

import "time"

func processCPU() time.Duration { return 0 }
