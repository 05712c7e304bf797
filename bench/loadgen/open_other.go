//go:build !linux

package loadgen

import (
	"context"
	"time"
)

// preciseOpenLoop says whether openLoop exists: elsewhere than Linux the
// open loop runs on goroutines and a Go timer, which can send up to a
// millisecond late and so overstates latencies.
const preciseOpenLoop = false

func openLoop(ctx context.Context, c Config, req []byte, start, measureFrom time.Time) ([]time.Duration, int64, error) {
	panic("unreachable")
}
