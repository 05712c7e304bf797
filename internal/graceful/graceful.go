// Package graceful serves an http.Server until a context ends, then shuts
// it down, letting requests in flight finish.
package graceful

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// ShutdownWait is how long requests in flight may take to finish.
const ShutdownWait = 10 * time.Second

// Serve serves srv on ln until ctx ends, then shuts it down gracefully.
// It returns nil after a clean shutdown.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
