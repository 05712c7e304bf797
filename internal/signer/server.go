// Package signer is teesign's signing server: POST /sign on the Docker
// bridge, so containers get signatures while the private keys stay in the
// host process. It never logs, serves or returns key material or payloads.
package signer

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"

	"github.com/teesign/teesign/internal/identity"
	"github.com/teesign/teesign/internal/keys"
)

// DefaultPort is the signing server's port.
const DefaultPort = 49153

// DefaultBodyLimit is the largest request body accepted (413 above).
const DefaultBodyLimit = 1 << 20

// Config configures a Server.
type Config struct {
	// Identities are the key pairs and quotes, by algorithm.
	Identities map[keys.Alg]*identity.Identity
	// TEE is the attestation provider's name, reported by /attestation.
	TEE string
	// Allow lists the source networks that may call the server.
	Allow []netip.Prefix
	// Refresh, when set, returns the allowed networks anew (the Docker
	// bridges, which compose creates after teesign starts): a connection
	// from a source not allowed makes the server call it, at most once a
	// second, before refusing.
	Refresh func() []netip.Prefix
	// BodyLimit bounds request bodies; 0 means DefaultBodyLimit.
	BodyLimit int64
	// HeldBytes caps the request bytes held at once; 0 means
	// DefaultHeldBytes.
	HeldBytes int64
	// HeldBytesWait is how long a request waits for its share of
	// HeldBytes before it is answered 503; 0 means DefaultHeldBytesWait.
	HeldBytesWait time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// Server is the signing server's HTTP handler.
type Server struct {
	ids       [2]*identity.Identity // by algIndex
	allow     atomic.Pointer[[]netip.Prefix]
	refresh   func() []netip.Prefix
	refreshed atomic.Int64 // unix nanoseconds of the last refresh
	limit     int64
	log       *slog.Logger
	attJSON   map[string][]byte
	// bundleHead is each key's bundle up to its signature_format, message
	// and signature: {"media_type":...,"quote":..., (no closing brace).
	bundleHead [2][]byte
	heldCap    int64
	heldWait   time.Duration
	pubPEM     map[string][]byte
	bufs       sync.Pool
	decs       sync.Pool // *bodyDecoder
	metrics    *metrics
	debugLogs  bool
	held       *semaphore.Weighted
	// bulk lets one large body be read and decoded at a time, so that
	// floods of them leave a core to everyone else.
	bulk    *semaphore.Weighted
	bulkBuf []byte // the large body's buffer, under bulk
}

func algIndex(a keys.Alg) int {
	if a == keys.Ed25519 {
		return 1
	}
	return 0
}

// New builds the server, precomputing every response that does not depend
// on the request.
func New(cfg Config) (*Server, error) {
	s := &Server{limit: cfg.BodyLimit, log: cfg.Logger, attJSON: map[string][]byte{}, pubPEM: map[string][]byte{}, refresh: cfg.Refresh}
	allow := append([]netip.Prefix(nil), cfg.Allow...)
	s.allow.Store(&allow)
	if s.limit <= 0 {
		s.limit = DefaultBodyLimit
	}
	if cfg.HeldBytes <= 0 {
		cfg.HeldBytes = DefaultHeldBytes
	}
	if cfg.HeldBytes < s.limit {
		return nil, fmt.Errorf("signer: held bytes %d are fewer than the body limit %d", cfg.HeldBytes, s.limit)
	}
	s.held = semaphore.NewWeighted(cfg.HeldBytes)
	s.heldCap = cfg.HeldBytes
	s.heldWait = cfg.HeldBytesWait
	if s.heldWait <= 0 {
		s.heldWait = DefaultHeldBytesWait
	}
	s.bulk = semaphore.NewWeighted(1)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.debugLogs = s.log.Enabled(context.Background(), slog.LevelDebug)
	s.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	s.decs.New = func() any { return new(bodyDecoder) }
	for _, alg := range keys.Algs() {
		id := cfg.Identities[alg]
		if id == nil {
			return nil, fmt.Errorf("signer: no %s identity", alg)
		}
		s.ids[algIndex(alg)] = id
		s.pubPEM[string(alg)] = id.PublicPEM
		rd := id.Key.Public().ReportData()
		att := map[string]any{
			"key_type":    alg,
			"tee":         cfg.TEE,
			"public_key":  string(id.PublicPEM),
			"quote":       strings.TrimSuffix(string(id.QuoteText), "\n"),
			"report_data": hex.EncodeToString(rd[:]),
		}
		if alg == keys.Secp256k1 {
			addr, err := id.Key.Public().EthAddress()
			if err != nil {
				return nil, err
			}
			att["ethereum_address"] = addr
		}
		if id.Evidence != nil && len(id.Evidence.CertTable) > 0 {
			att["cert_table"] = base64.StdEncoding.EncodeToString(id.Evidence.CertTable)
		}
		b, err := json.Marshal(att)
		if err != nil {
			return nil, err
		}
		s.attJSON[string(alg)] = append(b, '\n')
		if s.bundleHead[algIndex(alg)], err = bundleHead(alg, id); err != nil {
			return nil, err
		}
	}
	s.metrics = newMetrics()
	return s, nil
}

// ServeHTTP routes requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(r.RemoteAddr) { // the listener refuses these first; this guards other transports
		s.metrics.denied.Inc()
		writeError(w, http.StatusForbidden, "forbidden: this source address may not use the signing server")
		return
	}
	path := r.URL.Path
	switch {
	case path == "/sign":
		if s.method(w, r, http.MethodPost) {
			s.sign(w, r, false)
		}
	case path == "/sign/batch":
		if s.method(w, r, http.MethodPost) {
			s.sign(w, r, true)
		}
	case strings.HasPrefix(path, "/public_key/"):
		if s.method(w, r, http.MethodGet) {
			s.getByAlg(w, strings.TrimPrefix(path, "/public_key/"), s.pubPEM, "application/x-pem-file")
		}
	case strings.HasPrefix(path, "/attestation/"):
		if s.method(w, r, http.MethodGet) {
			s.getByAlg(w, strings.TrimPrefix(path, "/attestation/"), s.attJSON, "application/json")
		}
	case path == "/healthz":
		if s.method(w, r, http.MethodGet) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "{\"status\":\"ok\"}\n")
		}
	case path == "/metrics":
		if s.method(w, r, http.MethodGet) {
			promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		}
	default:
		s.metrics.errors.WithLabelValues("404").Inc()
		writeError(w, http.StatusNotFound, "not found: endpoints are POST /sign, POST /sign/batch, GET /public_key/<alg>, GET /attestation/<alg>, GET /healthz, GET /metrics")
	}
}

func (s *Server) method(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want || (want == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	allow := want
	if want == http.MethodGet {
		allow = "GET, HEAD"
	}
	w.Header().Set("Allow", allow)
	s.metrics.errors.WithLabelValues("405").Inc()
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use "+want)
	return false
}

func (s *Server) getByAlg(w http.ResponseWriter, alg string, m map[string][]byte, ctype string) {
	b, ok := m[alg]
	if !ok {
		s.metrics.errors.WithLabelValues("404").Inc()
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown key type %q: accepted key types are \"secp256k1\" and \"ed25519\"", alg))
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(b)
}

func (s *Server) allowed(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return s.allowedIP(ap.Addr().Unmap())
}

// sign is the hot path: one pooled buffer for the body and the response,
// no disk I/O, no key parsing, no lock.
func (s *Server) sign(w http.ResponseWriter, r *http.Request, batch bool) {
	if r.ContentLength > s.limit {
		s.tooLarge(w)
		return
	}
	// Hold at most HeldBytes of requests at once: each request reserves
	// its declared length (the body limit when it declares none).
	want := s.limit
	if r.ContentLength >= 0 {
		want = r.ContentLength
	}
	// A large body first waits for its turn, then for bytes: the bytes
	// semaphore is FIFO, and a large waiter at its head would hold up
	// every small request behind it.
	bulk := want > bulkBody
	wait := waiter{parent: r.Context(), limit: s.heldWait}
	var err error
	if bulk {
		if err = wait.take(s.bulk, 1); err == nil {
			defer s.bulk.Release(1)
		}
	}
	if err == nil {
		err = wait.take(s.held, want)
	}
	wait.done()
	if err != nil {
		s.busy(w)
		return
	}
	defer s.held.Release(want)
	var bp *[]byte
	if bulk {
		bp = &s.bulkBuf // one large body at a time: one buffer serves them all
	} else {
		bp = s.bufs.Get().(*[]byte)
		defer func() {
			if cap(*bp) <= maxPooledBuf { // let huge buffers go
				s.bufs.Put(bp)
			}
		}()
	}
	body, err := readBody(r.Body, (*bp)[:0], min(s.limit, want), bulk)
	*bp = body[:0]
	if err != nil {
		if errors.Is(err, errTooLarge) {
			s.tooLarge(w)
			return
		}
		s.metrics.errors.WithLabelValues("400").Inc()
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return
	}
	dec := s.decs.Get().(*bodyDecoder)
	req, err := dec.decode(body, batch)
	s.decs.Put(dec)
	if err != nil {
		s.metrics.errors.WithLabelValues("400").Inc()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := s.ids[algIndex(req.keyType)]
	var sigs [][]byte // raw signatures, kept for bundles
	if req.bundle {
		// Bundles repeat the quote for every signature: their bytes count
		// against the same cap as request bytes.
		extra := s.bundleBytes(req)
		if extra > s.heldCap {
			s.metrics.errors.WithLabelValues("400").Inc()
			writeError(w, http.StatusBadRequest, fmt.Sprintf("the bundles of this request would take about %d bytes, over the server's %d-byte cap (--max-held-bytes): ask fewer payloads at once", extra, s.heldCap))
			return
		}
		wait := waiter{parent: r.Context(), limit: s.heldWait}
		err := wait.take(s.held, extra)
		wait.done()
		if err != nil {
			s.busy(w)
			return
		}
		defer s.held.Release(extra)
		sigs = make([][]byte, 0, max(1, len(req.payloads)))
	}
	// Build the response after the body in the same buffer.
	out := body[len(body):]
	sign := func(out []byte, p []byte) ([]byte, error) {
		sig, err := signBytes(id.Key, req.format, p)
		if err != nil {
			return out, err
		}
		if sigs != nil {
			sigs = append(sigs, sig)
		}
		return appendSignature(out, req.format, sig), nil
	}
	if batch {
		out = append(out, `{"signatures":[`...)
		for i, p := range req.payloads {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = sign(append(out, '"'), p); err != nil {
				s.internalError(w, err)
				return
			}
			out = append(out, '"')
		}
		out = append(out, ']')
		s.metrics.signatures[algIndex(req.keyType)].Add(float64(len(req.payloads)))
	} else {
		if out, err = sign(append(out, `{"signature":"`...), req.payload); err != nil {
			s.internalError(w, err)
			return
		}
		out = append(out, '"')
		s.metrics.signatures[algIndex(req.keyType)].Inc()
	}
	if sigs != nil {
		out = append(out, `,"bundle":`...)
		if batch {
			out = append(out, '[')
			for i, p := range req.payloads {
				if i > 0 {
					out = append(out, ',')
				}
				out = s.appendBundle(out, req.keyType, req.format, p, sigs[i])
			}
			out = append(out, ']')
		} else {
			out = s.appendBundle(out, req.keyType, req.format, req.payload, sigs[0])
		}
	}
	out = append(out, `,"key_type":"`...)
	out = append(out, req.keyType...)
	out = append(out, "\"}\n"...)
	if cap(out) > cap(body) {
		*bp = out[:0]
	}
	h := w.Header()
	h["Content-Type"] = jsonCT
	h["Content-Length"] = []string{strconv.Itoa(len(out))} // not chunked, even for a large batch
	w.Write(out)
	if s.debugLogs {
		s.logSign(req)
	}
}

// bulkBody is the body size above which a request waits for its turn
// (one at a time): signing requests are small, /sign/batch of 1000 short
// payloads is under it.
const bulkBody = 256 << 10

// maxPooledBuf is the largest buffer kept for reuse.
const maxPooledBuf = 64 << 10

// signBytes signs p in format f: DER ECDSA or Ed25519 for FormatDER,
// r‖s‖v for the Ethereum formats.
func signBytes(k *keys.PrivateKey, f string, p []byte) ([]byte, error) {
	switch f {
	case FormatEthPersonalSign, FormatEthRaw:
		digest := p
		if f == FormatEthPersonalSign {
			digest = keys.EthPersonalHash(p)
		}
		return k.SignEth(digest)
	}
	return k.Sign(p), nil
}

// appendSignature appends sig as the response carries it: base64 for
// FormatDER, 0x-hex r‖s‖v for the Ethereum formats.
func appendSignature(dst []byte, f string, sig []byte) []byte {
	switch f {
	case FormatEthPersonalSign, FormatEthRaw:
		return hex.AppendEncode(append(dst, "0x"...), sig)
	}
	return appendB64(dst, sig)
}

func (s *Server) internalError(w http.ResponseWriter, err error) {
	s.metrics.errors.WithLabelValues("500").Inc()
	s.log.Error("signing failed", "err", err.Error())
	writeError(w, http.StatusInternalServerError, "internal error while signing")
}

var jsonCT = []string{"application/json"}

// logSign logs that a request was signed: never its payload or anything
// derived from it.
func (s *Server) logSign(req *signRequest) {
	if req.payloads != nil {
		s.log.Debug("signed batch", "key_type", req.keyType, "count", len(req.payloads))
		return
	}
	s.log.Debug("signed", "key_type", req.keyType)
}

// waiter takes from semaphores for one request, waiting at most
// Config.HeldBytesWait in all; the timer is made only when something is not free
// at once, which under normal load is never.
type waiter struct {
	parent context.Context
	limit  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
}

func (w *waiter) take(sem *semaphore.Weighted, n int64) error {
	if sem.TryAcquire(n) {
		return nil
	}
	if w.ctx == nil {
		w.ctx, w.cancel = context.WithTimeout(w.parent, w.limit)
	}
	return sem.Acquire(w.ctx, n)
}

func (w *waiter) done() {
	if w.cancel != nil {
		w.cancel()
	}
}

// busy answers a request that could not reserve its bytes in time.
func (s *Server) busy(w http.ResponseWriter) {
	s.metrics.errors.WithLabelValues("503").Inc()
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "busy: too many request bytes in flight, retry")
}

func (s *Server) tooLarge(w http.ResponseWriter) {
	s.metrics.errors.WithLabelValues("413").Inc()
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the %d-byte limit", s.limit))
}

var errTooLarge = errors.New("body too large")

// readBody appends r to buf, failing with errTooLarge past limit bytes.
// A bulk body is read a slice at a time, letting other goroutines run
// before each slice: a reader that always finds data ready is otherwise
// preempted only every few milliseconds, and on a server with one
// processor every request that became ready meanwhile waits for that.
func readBody(r io.Reader, buf []byte, limit int64, bulk bool) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := cap(buf)
		if bulk {
			end = min(end, len(buf)+bulkSlice)
			runtime.Gosched()
		}
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// bulkSlice is how much of a bulk body is read between yields.
const bulkSlice = 64 << 10

func appendB64(dst, src []byte) []byte {
	n := base64.StdEncoding.EncodedLen(len(src))
	dst = append(dst, make([]byte, n)...)
	base64.StdEncoding.Encode(dst[len(dst)-n:], src)
	return dst
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

type metrics struct {
	reg        *prometheus.Registry
	signatures [2]prometheus.Counter
	errors     *prometheus.CounterVec
	denied     prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	sigs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "teesign_signatures_total", Help: "Signatures made, by key type."}, []string{"key_type"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "teesign_request_errors_total", Help: "Requests answered with an error, by status code."}, []string{"code"})
	denied := prometheus.NewCounter(prometheus.CounterOpts{Name: "teesign_requests_denied_total", Help: "Requests refused because of their source address."})
	reg.MustRegister(sigs, errs, denied, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return &metrics{reg: reg, errors: errs, denied: denied,
		signatures: [2]prometheus.Counter{sigs.WithLabelValues(string(keys.Secp256k1)), sigs.WithLabelValues(string(keys.Ed25519))}}
}

// DefaultListenAddr is the docker0 bridge's IPv4 address on DefaultPort, or
// 127.0.0.1 when there is no Docker bridge.
func DefaultListenAddr() string {
	if a, ok := interfaceIPv4("docker0"); ok {
		return net.JoinHostPort(a.String(), strconv.Itoa(DefaultPort))
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultPort))
}

// HostAllow is what is always allowed: loopback, and this machine's own
// addresses (a request from the host to the docker0 address comes from one
// of them, docker0's own or, when the bridge is down, the main interface's;
// no remote party can complete a TCP handshake with such a source).
func HostAllow() []netip.Prefix {
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ip = ip.Unmap()
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	return out
}

// DefaultAllow is HostAllow plus the networks of the Docker bridges
// (docker0 and the br-* bridges of compose networks).
func DefaultAllow() []netip.Prefix {
	out := HostAllow()
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Name != "docker0" && !strings.HasPrefix(ifc.Name, "br-") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(n.String()); err == nil {
					out = append(out, p.Masked())
				}
			}
		}
	}
	return out
}

func interfaceIPv4(name string) (netip.Addr, bool) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			addr, _ := netip.AddrFromSlice(n.IP.To4())
			return addr, true
		}
	}
	return netip.Addr{}, false
}
