//go:build unix

package hl7v2

import (
	"syscall"
	"time"
)

// processCPU returns the user and system CPU time this process has used. The
// benchmarks report throughput per CPU-second as well as per wall-second,
// because on a shared machine wall time counts other processes' work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
