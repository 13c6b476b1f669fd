package promexport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server serves a Registry at /metrics, and whatever else the caller adds
// to Mux (health endpoints), on one address.
type Server struct {
	Mux  *http.ServeMux
	srv  *http.Server
	addr string
	done chan error

	once     sync.Once
	closeErr error
}

// Start listens on addr (":9100"; ":0" picks a free port) and serves reg
// at /metrics until Close.
func Start(addr string, reg *Registry) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg)
	s := &Server{Mux: mux, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address listened on.
func (s *Server) Addr() string { return s.addr }

// Close stops serving (letting requests in progress finish until ctx
// ends) and waits for the serving goroutine. It is idempotent.
func (s *Server) Close(ctx context.Context) error {
	s.once.Do(func() {
		err := s.srv.Shutdown(ctx)
		if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		s.closeErr = err
	})
	return s.closeErr
}
