package attest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// retryAttempts is how many times a quote is asked for before its error
// is reported; waits between them double from Options.RetryBackoff.
const retryAttempts = 4

// retry runs f until it succeeds, fails for good (transient false), runs
// out of attempts, or ctx ends.
func retry(ctx context.Context, backoff time.Duration, f func() (transient bool, err error)) error {
	if backoff <= 0 {
		backoff = time.Second
	}
	var err error
	for attempt := 1; ; attempt++ {
		var transient bool
		if transient, err = f(); err == nil || !transient {
			return err
		}
		if attempt == retryAttempts {
			return fmt.Errorf("%w (tried %d times)", err, attempt)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (then: %v)", err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// transientErrnos are the kernel's answers that may pass: the quote
// service busy (EBUSY), slow (ETIMEDOUT) or failing for now (EIO), or a
// signal (EINTR).
var transientErrnos = []syscall.Errno{syscall.EBUSY, syscall.EINTR, syscall.ETIMEDOUT, syscall.EIO, syscall.EAGAIN}

// isErrno reports whether err is one of errnos, by value or, since
// go-configfs-tsm formats some causes with %v, by the errno's text.
func isErrno(err error, errnos ...syscall.Errno) bool {
	if err == nil {
		return false
	}
	for _, e := range errnos {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return true
		}
	}
	return false
}
