//go:build !linux

package loadgen

import (
	"context"
	"time"
)

// eventLoopSupported says whether eventLoop exists: elsewhere than Linux
// the load runs on goroutines, the open loop from a Go timer, which can
// send up to a millisecond late and so overstates latencies.
const eventLoopSupported = false

func eventLoop(ctx context.Context, c Config, reqs [][]byte) ([]time.Duration, int64, tally, time.Time, error) {
	panic("unreachable")
}
