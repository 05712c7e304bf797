//go:build js && wasm

// Command wasm is the verifier page's engine: package verify compiled to
// WebAssembly. It defines one JavaScript function,
//
//	teesignVerify(requestJSON) → Promise<responseJSON>
//
// which verifies in the browser. The request is a JSON object (see
// request); the response is {"result": verify.Result} or {"error": "..."}.
// Nothing leaves the browser but collateral requests, and only when the
// request names a collateral base URL and does not ask for offline.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	jsonv1 "encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/teesign/teesign/bundle"
	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
	"github.com/teesign/teesign/workload"
)

// request is what the page sends: a bundle, or a quote, message and
// signature; and what to expect of them.
type request struct {
	Bundle jsontext.Value `json:"bundle,omitempty"`
	// Loose parts, when there is no bundle.
	Quote   string `json:"quote,omitempty"`
	Message string `json:"message,omitempty"`
	// MessageEncoding is utf8 (default), base64 or hex.
	MessageEncoding string `json:"message_encoding,omitempty"`
	// Signature is base64 (der) or 0x-hex (Ethereum formats).
	Signature       string `json:"signature,omitempty"`
	SignatureFormat string `json:"signature_format,omitempty"`
	PublicKey       string `json:"public_key,omitempty"`
	KeyType         string `json:"key_type,omitempty"`
	// TrustRoots are extra trusted certificates, PEM (a simulated root).
	TrustRoots []string `json:"trust_roots,omitempty"`
	// Policy is a policy document, YAML or JSON.
	Policy string `json:"policy,omitempty"`
	// Compose is the compose file the VM should run; Registry the builds
	// to check it against.
	Compose  *string   `json:"compose,omitempty"`
	Registry *registry `json:"registry,omitempty"`
	// AnyWorkload accepts a workload nothing pins.
	AnyWorkload bool `json:"any_workload,omitempty"`
	// Offline skips collateral; otherwise it is fetched from
	// CollateralBase (base URLs .../intel and .../amd).
	Offline        bool   `json:"offline,omitempty"`
	CollateralBase string `json:"collateral_base,omitempty"`
}

type registry struct {
	Source  string `json:"source"`
	TDXCSV  string `json:"tdx_csv"`
	SEVJSON string `json:"sev_json"`
}

type response struct {
	Result  *verify.Result `json:"result,omitempty"`
	Error   string         `json:"error,omitempty"`
	Elapsed float64        `json:"elapsed_ms"`
}

// page holds what verifications on one page share: the collateral
// sources by base URL, whose in-memory caches and remembered failures last
// as long as the page.
type page struct {
	mu         sync.Mutex
	collateral map[string]*verify.CollateralSource
	// cache keeps verdicts on quotes while the page is open.
	cache *verify.VerdictCache
}

func (p *page) source(base string) *verify.CollateralSource {
	p.mu.Lock()
	defer p.mu.Unlock()
	src, ok := p.collateral[base]
	if !ok {
		src = &verify.CollateralSource{PCCSURL: base + "/intel", KDSURL: base + "/amd", Client: &http.Client{Timeout: 30 * time.Second}, Retries: 1}
		p.collateral[base] = src
	}
	return src
}

func (p *page) run(ctx context.Context, in string) (*verify.Result, error) {
	var req request
	if err := json.Unmarshal([]byte(in), &req, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("page request: %w", err)
	}
	o := verify.Options{AnyWorkload: req.AnyWorkload, Offline: req.Offline || req.CollateralBase == "", KeyType: req.KeyType, Cache: p.cache}
	for i, pem := range req.TrustRoots {
		if strings.TrimSpace(pem) == "" {
			continue
		}
		certs, err := verify.ParseCerts([]byte(pem))
		if err != nil {
			return nil, fmt.Errorf("trusted root %d: %w", i+1, err)
		}
		o.TrustedCerts = append(o.TrustedCerts, certs...)
	}
	if strings.TrimSpace(req.Policy) != "" {
		p, err := validate.Parse([]byte(req.Policy))
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		o.Policy = p
	}
	if req.Compose != nil && strings.TrimSpace(*req.Compose) != "" {
		if req.Registry == nil {
			return nil, errors.New("a compose file is checked against a registry of builds, and the page has none: serve it with `teesign verifier serve`, or give a policy instead")
		}
		reg := &workload.Registry{Source: req.Registry.Source}
		var err error
		if req.Registry.TDXCSV != "" {
			if reg.TDX, err = workload.ParseTDX(strings.NewReader(req.Registry.TDXCSV)); err != nil {
				return nil, fmt.Errorf("registry %s: %w", reg.Source, err)
			}
		}
		if req.Registry.SEVJSON != "" {
			if reg.SNP, err = workload.ParseSNP([]byte(req.Registry.SEVJSON)); err != nil {
				return nil, fmt.Errorf("registry %s: %w", reg.Source, err)
			}
		}
		o.Workload = &verify.WorkloadCheck{Registry: reg, Workload: workload.Workload{Compose: []byte(*req.Compose)}}
	}
	if !o.Offline {
		o.Collateral = p.source(strings.TrimSuffix(req.CollateralBase, "/"))
	}
	if req.Bundle != nil {
		if req.Quote != "" || req.Message != "" || req.Signature != "" {
			return nil, errors.New("give a bundle, or a quote, message and signature, not both")
		}
		b, err := bundle.Decode(req.Bundle)
		if err != nil {
			return nil, err
		}
		if req.PublicKey != "" {
			o.PublicKeyPEM = []byte(req.PublicKey)
		}
		return verify.VerifyBundle(ctx, b, o)
	}
	if req.Quote == "" || req.Signature == "" {
		return nil, errors.New("give a bundle, or a quote, a message and a signature")
	}
	o.Format = req.SignatureFormat
	if req.PublicKey != "" {
		o.PublicKeyPEM = []byte(req.PublicKey)
	}
	msg, err := decode("message", req.Message, req.MessageEncoding)
	if err != nil {
		return nil, err
	}
	var sig []byte
	s := strings.TrimSpace(req.Signature)
	if o.Format == verify.FormatEthPersonalSign || o.Format == verify.FormatEthRaw {
		sig, err = hex.DecodeString(strings.TrimPrefix(s, "0x"))
	} else {
		sig, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("signature: base64 for der signatures, 0x-hex for the Ethereum formats")
	}
	return verify.Verify(ctx, []byte(req.Quote), msg, sig, o)
}

func decode(name, s, enc string) ([]byte, error) {
	switch enc {
	case "", "utf8":
		return []byte(s), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s is not standard base64", name)
		}
		return b, nil
	case "hex":
		b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
		if err != nil {
			return nil, fmt.Errorf("%s is not hex", name)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s encoding %q: use utf8, base64 or hex", name, enc)
}

func main() {
	p := &page{collateral: map[string]*verify.CollateralSource{}, cache: verify.NewVerdictCache(64)}
	verifyFn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		in := ""
		if len(args) > 0 {
			in = args[0].String()
		}
		// Verification may fetch collateral, which blocks: it runs in its
		// own goroutine and answers through a Promise.
		handler := js.FuncOf(func(_ js.Value, pargs []js.Value) any {
			resolve := pargs[0]
			go func() {
				start := time.Now()
				res, err := p.run(context.Background(), in)
				out := response{Result: res, Elapsed: float64(time.Since(start).Microseconds()) / 1000}
				if err != nil {
					out.Error = err.Error()
				}
				// The CLI's and the service's encoding of a result.
				b, err := jsonv1.Marshal(out)
				if err != nil {
					b, _ = jsonv1.Marshal(response{Error: err.Error()})
				}
				resolve.Invoke(string(b))
			}()
			return nil
		})
		defer handler.Release()
		return js.Global().Get("Promise").New(handler)
	})
	js.Global().Set("teesignVerify", verifyFn)
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("teesign-ready"))
	select {}
}
