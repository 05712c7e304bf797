// Package verifiersvc is teesign's public verification service: POST
// /verify and POST /dcap-tools/quote-parse (compatible with SecretVM's PCCS
// quote parser), with strict decoding, a body limit and timeouts.
package verifiersvc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/internal/graceful"
	"github.com/teesign/teesign/internal/quote"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
	"github.com/teesign/teesign/workload"
)

// BodyLimit bounds request bodies.
const BodyLimit = 256 << 10

// RequestTimeout bounds a request, collateral fetching included.
const RequestTimeout = 2 * time.Minute

// Handler serves the verification API.
type Handler struct {
	// Trust is what is trusted beyond Intel's and AMD's roots (--trust-root,
	// --ark, --ask, --vcek; verify.NewTrust); nil trusts only those.
	Trust *verify.Trust
	// Log receives one line per verification (outcome, TEE, key type);
	// nil discards it.
	Log *slog.Logger
	// Offline skips collateral; Collateral says where to fetch it.
	Offline    bool
	Collateral *verify.CollateralSource
	// Registry holds the official builds a request's compose file is
	// checked against (nil: none, and such requests are refused). It is
	// also served at /registry/tdx.csv and /registry/sev.json, for the
	// page.
	Registry *workload.Registry
	// Cache, when set, keeps verdicts on quotes across requests (see
	// verify.VerdictCache): many messages of one quote cost one signature
	// verification each.
	Cache *verify.VerdictCache
	// Page, when set, serves the verifier page at / and its files beside
	// it (package webpage); the page's collateral goes through
	// /collateral/intel/ and /collateral/amd/ (unless Offline).
	Page http.Handler
}

// VerifyRequest is the body of POST /verify.
type VerifyRequest struct {
	Quote   string `json:"quote"`
	Message string `json:"message"`
	// MessageEncoding is how Message is written: "utf8" (default: its
	// UTF-8 bytes are what was signed), "base64" (standard, padded) or
	// "hex".
	MessageEncoding string           `json:"message_encoding,omitempty"`
	Signature       string           `json:"signature"`
	KeyType         string           `json:"key_type,omitempty"`
	PublicKey       string           `json:"public_key,omitempty"`
	Policy          *validate.Policy `json:"policy,omitempty"`
	// AnyWorkload accepts a quote whose workload the policy does not pin.
	AnyWorkload bool `json:"any_workload,omitempty"`
	// Compose is the docker-compose file the VM should run, exactly as
	// given: checked with the quote against the registry of builds.
	Compose *string `json:"compose,omitempty"`
	// DockerFilesSHA256 is the hex SHA-256 of the VM's docker-files
	// archive, if it was given one.
	DockerFilesSHA256 string `json:"docker_files_sha256,omitempty"`
	// CertTable is a SEV-SNP certificate table, base64 (/attestation's cert_table).
	CertTable string `json:"cert_table,omitempty"`
	// Items are the messages and signatures of POST /verify/batch, in
	// place of Message and Signature (1 to MaxBatch).
	Items []BatchItem `json:"items,omitempty"`
	// Bundle is a verification bundle (package bundle), in place of
	// Quote, Message, Signature and CertTable (POST /verify only).
	Bundle jsontext.Value `json:"bundle,omitempty"`
}

// BatchItem is one message and signature of POST /verify/batch.
type BatchItem struct {
	Message   string `json:"message"`
	Signature string `json:"signature"`
}

// MaxBatch is the most items POST /verify/batch takes.
const MaxBatch = 1000

// decodeStrict decodes exactly one JSON object into v: unknown,
// duplicate or case-folded member names, invalid UTF-8, wrong types and
// trailing data are errors.
func decodeStrict(body []byte, v any) error {
	if err := checkNameLengths(body); err != nil {
		return err
	}
	if err := json.Unmarshal(body, v, json.RejectUnknownMembers(true)); err != nil {
		return fmt.Errorf("invalid JSON: %s", short(err.Error()))
	}
	return nil
}

// MaxNameLength bounds the length of a member name anywhere in a request
// body, escaped as written. Every name this API and the bundle format know
// is far shorter; the JSON library's handling of an unknown name (matching
// it case-folded, an error position that repeats it escaped) costs many
// times its length, so a longer one is refused before decoding.
const MaxNameLength = 128

// checkNameLengths walks body's tokens once, reading each in place, and
// refuses a member name over MaxNameLength bytes. Anything else wrong with
// body is left for the decoder to report.
func checkNameLengths(body []byte) error {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body), jsontext.AllowDuplicateNames(true))
	for {
		kind := dec.PeekKind()
		if kind == 0 {
			return nil // the end, or an error the decoder reports
		}
		var err error
		switch kind {
		case '{', '}', '[', ']':
			_, err = dec.ReadToken()
		default:
			level, n := dec.StackIndex(dec.StackDepth())
			var v jsontext.Value
			v, err = dec.ReadValue()
			if err == nil && level == '{' && n%2 == 0 && len(v) > MaxNameLength+2 {
				return fmt.Errorf("invalid JSON: a member name of %d bytes at byte %d, over the %d-byte limit (no field is named that long)", len(v)-2, dec.InputOffset()-int64(len(v)), MaxNameLength)
			}
		}
		if err != nil {
			return nil
		}
	}
}

// short bounds what an error message repeats of a request.
func short(s string) string {
	if len(s) > 200 {
		s = s[:200]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}

// decodeMessage reads a message in its encoding, strictly.
func decodeMessage(m, enc string) ([]byte, error) {
	switch enc {
	case "", "utf8":
		return []byte(m), nil
	case "base64":
		if strings.ContainsAny(m, "\r\n") {
			return nil, errors.New("message is not standard base64 (line breaks are not allowed)")
		}
		b, err := base64.StdEncoding.Strict().DecodeString(m)
		if err != nil {
			return nil, errors.New("message is not standard base64")
		}
		return b, nil
	case "hex":
		b, err := hex.DecodeString(m)
		if err != nil {
			return nil, errors.New("message is not hex")
		}
		return b, nil
	}
	return nil, fmt.Errorf("invalid message_encoding %q: accepted encodings are \"utf8\", \"base64\" and \"hex\"", short(enc))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := jsonv1.Marshal(v) // the same encoding as the CLI's output
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// ServeHTTP routes /verify, /dcap-tools/quote-parse and /healthz.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/verify", p == "/verify/batch", p == "/dcap-tools/quote-parse":
	case p == "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case strings.HasPrefix(p, "/collateral/"):
		h.collateral(w, r)
		return
	case p == "/registry/tdx.csv", p == "/registry/sev.json":
		h.registry(w, r)
		return
	case h.Page != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		h.Page.ServeHTTP(w, r)
		return
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found: endpoints are POST /verify, POST /verify/batch, POST /dcap-tools/quote-parse and GET /healthz"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, BodyLimit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("request body over the %d-byte limit", BodyLimit)})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "could not read the body"})
		return
	}
	if r.URL.Path == "/dcap-tools/quote-parse" {
		h.quoteParse(w, r, body)
		return
	}
	batch := r.URL.Path == "/verify/batch"
	var req VerifyRequest
	err = decodeStrict(body, &req)
	if err == nil && req.Policy != nil {
		err = req.Policy.Validate()
	}
	var b *bundle.Bundle
	switch {
	case err != nil:
	case req.Bundle != nil && batch:
		err = errors.New("POST /verify/batch takes a quote and items; send a bundle to POST /verify")
	case req.Bundle != nil && (req.Quote != "" || req.Message != "" || req.Signature != "" || req.MessageEncoding != "" || req.CertTable != "" || len(req.Items) > 0):
		err = errors.New("a bundle holds the quote, message and signature: send either a bundle or quote, message and signature")
	case req.Bundle != nil:
		b, err = bundle.Decode(req.Bundle)
	case req.Quote == "":
		err = errors.New("quote is required (or a bundle)")
	case batch && (req.Message != "" || req.Signature != ""):
		err = errors.New("POST /verify/batch takes items [{message, signature}], not message and signature")
	case batch && (len(req.Items) == 0 || len(req.Items) > MaxBatch):
		err = fmt.Errorf("items must hold 1 to %d messages, not %d", MaxBatch, len(req.Items))
	case !batch && len(req.Items) > 0:
		err = errors.New("items belong to POST /verify/batch")
	case !batch && req.Signature == "":
		err = errors.New("quote and signature are required")
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if b != nil {
		h.verifyBundle(w, r, &req, b)
		return
	}
	items := req.Items
	if !batch {
		items = []BatchItem{{Message: req.Message, Signature: req.Signature}}
	}
	signed := make([]verify.Signed, len(items))
	for i, it := range items {
		msg, err := decodeMessage(it.Message, req.MessageEncoding)
		if err == nil {
			signed[i].Message = msg
			signed[i].Signature, err = base64.StdEncoding.Strict().DecodeString(it.Signature)
			if err != nil || strings.ContainsAny(it.Signature, "\r\n") {
				err = errors.New("signature is not standard base64")
			}
		}
		if err != nil {
			if batch {
				err = fmt.Errorf("items[%d]: %w", i, err)
			}
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	o, err := h.options(&req)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	results, err := verify.VerifyBatch(r.Context(), []byte(req.Quote), signed, o)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if h.Log != nil {
		h.Log.Info("verified", "valid", results[0].Valid, "tee", results[0].TEE, "key_type", results[0].KeyType, "messages", len(results))
	}
	if batch {
		writeJSON(w, http.StatusOK, map[string]any{"results": results})
		return
	}
	writeJSON(w, http.StatusOK, results[0])
}

// verifyBundle answers POST /verify with a bundle.
func (h *Handler) verifyBundle(w http.ResponseWriter, r *http.Request, req *VerifyRequest, b *bundle.Bundle) {
	o, err := h.options(req)
	if err == nil {
		var res *verify.Result
		if res, err = verify.VerifyBundle(r.Context(), b, o); err == nil {
			if h.Log != nil {
				h.Log.Info("verified", "valid", res.Valid, "tee", res.TEE, "key_type", res.KeyType, "messages", 1, "bundle", true)
			}
			writeJSON(w, http.StatusOK, res)
			return
		}
	}
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
}

// collateral serves Intel's and AMD's collateral to the page, as this
// service fetches and caches it: GET /collateral/intel/<PCS path> (TCB
// info, QE identity, PCK CRL, and sgx/certification/v4/rootcacrl for the
// root CA's CRL) and GET /collateral/amd/<KDS path> (VCEK certificates,
// certificate chains, CRLs). Only those documents are served: it is not
// an open proxy.
func (h *Handler) collateral(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
		return
	}
	if h.Offline {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this service verifies offline and fetches no collateral"})
		return
	}
	upstream, ok := collateralURL(r.URL)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not collateral: /collateral/ serves Intel PCS TCB info, QE identity and CRLs, and AMD KDS certificates and CRLs"})
		return
	}
	src := h.Collateral
	if src == nil {
		src = &verify.CollateralSource{}
	}
	header, body, err := src.Fetch(r.Context(), upstream)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": short(err.Error())})
		return
	}
	for k, v := range header {
		if strings.HasSuffix(strings.ToLower(k), "issuer-chain") {
			w.Header()[http.CanonicalHeaderKey(k)] = v
		}
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if jsonv1.Valid(body) {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(body)
}

var (
	intelPaths = regexp.MustCompile(`^/collateral/intel/(tdx/certification/v4/(tcb|qe/identity)|sgx/certification/v4/pckcrl)$`)
	amdPaths   = regexp.MustCompile(`^/collateral/amd/(vcek|vlek)/v1/[A-Za-z]{1,16}/(cert_chain|crl|[0-9a-fA-F]{1,128})$`)
	queryChars = regexp.MustCompile(`^[A-Za-z0-9=&_-]{0,256}$`)
)

// collateralURL maps a /collateral/ request to Intel's or AMD's address.
func collateralURL(u *url.URL) (string, bool) {
	if !queryChars.MatchString(u.RawQuery) {
		return "", false
	}
	q := ""
	if u.RawQuery != "" {
		q = "?" + u.RawQuery
	}
	switch {
	case u.Path == "/collateral/intel/sgx/certification/v4/rootcacrl" && q == "":
		return verify.IntelRootCRLURL, true
	case intelPaths.MatchString(u.Path):
		return verify.IntelPCSURL + strings.TrimPrefix(u.Path, "/collateral/intel") + q, true
	case amdPaths.MatchString(u.Path):
		return verify.AMDKDSURL + strings.TrimPrefix(u.Path, "/collateral/amd") + q, true
	}
	return "", false
}

// registry serves the registry of builds in SecretVM's formats.
func (h *Handler) registry(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "use GET"})
		return
	}
	if h.Registry == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this service has no registry of builds"})
		return
	}
	tdx, snp, err := h.Registry.Files()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if strings.HasSuffix(r.URL.Path, ".csv") {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Write(tdx)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(snp)
}

// options turns a request's trust and workload inputs into verify.Options.
func (h *Handler) options(req *VerifyRequest) (verify.Options, error) {
	o := verify.Options{KeyType: req.KeyType, Policy: req.Policy, AnyWorkload: req.AnyWorkload, Trust: h.Trust, Offline: h.Offline, Collateral: h.Collateral, Cache: h.Cache}
	if req.Compose != nil {
		if h.Registry == nil {
			return o, errors.New("this service has no registry of builds to check a compose file against")
		}
		wl := workload.Workload{Compose: []byte(*req.Compose)}
		if req.DockerFilesSHA256 != "" {
			d, err := hex.DecodeString(req.DockerFilesSHA256)
			if err != nil || len(d) != 32 {
				return o, errors.New("docker_files_sha256 is not 64 hex digits")
			}
			wl.DockerFilesSHA256 = d
		}
		o.Workload = &verify.WorkloadCheck{Registry: h.Registry, Workload: wl}
	} else if req.DockerFilesSHA256 != "" {
		return o, errors.New("docker_files_sha256 goes with compose")
	}
	if req.PublicKey != "" {
		o.PublicKeyPEM = []byte(req.PublicKey)
	}
	if req.CertTable != "" {
		var err error
		if o.CertTable, err = base64.StdEncoding.Strict().DecodeString(req.CertTable); err != nil {
			return o, errors.New("cert_table is not standard base64")
		}
	}
	return o, nil
}

// quoteParse answers like SecretVM's PCCS quote parser: the TDX body fields
// as lowercase hex under "quote".
func (h *Handler) quoteParse(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Quote string `json:"quote"`
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		// SecretVM's clients post the quote as a form field.
		form, err := url.ParseQuery(string(body))
		if err != nil || len(form) != 1 || len(form["quote"]) != 1 || !utf8.ValidString(form.Get("quote")) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid form: want exactly one field, quote"})
			return
		}
		req.Quote = form.Get("quote")
	} else if err := decodeStrict(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	raw, kind, err := quote.Decode([]byte(req.Quote))
	if err == nil && kind != quote.TDX {
		err = errors.New("not a TDX quote (SEV-SNP reports are parsed locally)")
	}
	var f quote.Fields
	if err == nil {
		_, f, err = quote.Parse(raw)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out := map[string]any{}
	for _, k := range []string{"mr_seam", "mr_signer_seam", "td_attributes", "xfam", "mr_td", "mr_config_id", "mr_owner", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "report_data"} {
		out[k] = f[k]
	}
	out["version"] = f["version"]
	out["tee_type"] = f["tee_type"]
	out["tcb_svn"] = f["tee_tcb_svn"]
	out["mr_config"] = f["mr_owner_config"]
	// The quote's own verdict, as Intel's library reports it: its
	// signatures and chain, and (unless offline) the TCB status.
	res, err := verify.Verify(r.Context(), raw, nil, nil, verify.Options{AnyWorkload: true, Trust: h.Trust, Offline: h.Offline, Collateral: h.Collateral, Cache: h.Cache})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"quote": out, "status": map[string]int{"result": qvResult(res), "exp_status": 0}})
}

// Intel's sgx_ql_qv_result_t values, as SecretVM's collateral tool reports
// them in status.result.
var qvResults = map[string]int{
	"UpToDate": 0x0000, "ConfigurationNeeded": 0xA001, "OutOfDate": 0xA002, "OutOfDateConfigurationNeeded": 0xA003,
	"Revoked": 0xA005, "SWHardeningNeeded": 0xA007, "ConfigurationAndSWHardeningNeeded": 0xA008,
}

const (
	qvInvalidSignature = 0xA004
	qvUnspecified      = 0xA006
)

// qvResult maps a verification to sgx_ql_qv_result_t: 0 only when the
// quote's signatures and chain verify and its TCB (when checked) is up to
// date.
func qvResult(res *verify.Result) int {
	status := map[string]string{}
	for _, c := range res.Checks {
		status[c.Name] = c.Status
	}
	switch {
	case status[verify.CheckQuoteSignature] != verify.Pass || status[verify.CheckCertChain] != verify.Pass:
		return qvInvalidSignature
	case status[verify.CheckTCBStatus] == verify.Unchecked:
		return 0
	}
	code, ok := qvResults[res.TCBStatus]
	if !ok {
		return qvUnspecified
	}
	if qe, ok := qvResults[res.QEStatus]; ok && qe > code {
		code = qe
	}
	return code
}

// Server wraps h with a public service's limits: net/http's timeouts
// bound each request, from its headers to the end of its response
// (collateral fetching included).
func Server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: RequestTimeout, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}

// Serve serves srv on ln until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	return graceful.Serve(ctx, srv, ln)
}
