//go:build !linux

package http1

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// busyPollSupported says whether Server.BusyPoll has an effect here.
const busyPollSupported = false

type busyPoller struct{}

func newBusyPoller(time.Duration) (*busyPoller, error) {
	return nil, errors.New("busy poll needs Linux's epoll")
}

func (*busyPoller) watch(syscall.RawConn) error { return nil }
func (*busyPoller) close()                      {}
func (*busyPoller) poke()                       {}
func (*busyPoller) arrived()                    {}
func (*busyPoller) run(context.Context)         {}
