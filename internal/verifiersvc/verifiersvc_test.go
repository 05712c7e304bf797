package verifiersvc_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/teesign/teesign/internal/keys"
	"github.com/teesign/teesign/internal/testutil"
	"github.com/teesign/teesign/internal/verifiersvc"
)

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %s", data)
	}
	return resp.StatusCode, m
}

func TestVerifyAndQuoteParse(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	q := strings.TrimSpace(string(testutil.SampleFile(t, "quote.txt")))
	k, err := keys.ParsePrivateKeyPEM(testutil.SampleFile(t, "private_key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(k.Sign([]byte("hello")))
	body, _ := json.Marshal(map[string]any{"quote": q, "message": "hello", "signature": sig, "key_type": "ed25519"})
	code, m := post(t, ts.URL+"/verify", string(body))
	if code != 200 || m["valid"] != true {
		t.Fatalf("%d %v", code, m)
	}
	body, _ = json.Marshal(map[string]any{"quote": q, "message": "hellO", "signature": sig, "key_type": "ed25519"})
	if code, m = post(t, ts.URL+"/verify", string(body)); code != 200 || m["valid"] != false {
		t.Fatalf("other message: %d %v", code, m)
	}
	code, m = post(t, ts.URL+"/dcap-tools/quote-parse", `{"quote":"`+q+`"}`)
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	parsed := m["quote"].(map[string]any)
	for k, v := range map[string]string{
		"tcb_svn": "07010300000000000000000000000000", "version": "0004", "tee_type": "00000081",
		"mr_td": "1e305ac8284517f73ada985bfc9fded48b23ed091ba8149678bb10207fb470c7903d7a8ddffa5a7be2a60e349bb75b6e",
		"rtmr3": "aff11dd6163203574cdf6841166e6d769e27897fc55ec63c87a8f4ae200781e7dc434318114fcabda19ce1af2ef0741a",
	} {
		if parsed[k] != v {
			t.Errorf("%s = %v, want %s", k, parsed[k], v)
		}
	}
	for _, f := range []string{"version", "tee_type", "tcb_svn", "mr_seam", "mr_signer_seam", "td_attributes", "xfam", "mr_td", "mr_config_id", "mr_owner", "mr_config", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "report_data"} {
		if _, ok := parsed[f].(string); !ok {
			t.Errorf("quote-parse lacks %s", f)
		}
	}
}

func TestBadRequests(t *testing.T) {
	ts := httptest.NewServer(&verifiersvc.Handler{Offline: true})
	defer ts.Close()
	for body, code := range map[string]int{
		`{"quote":"00"`:            400,
		`{"quote":"00","extra":1}`: 400,
		`{"quote":"00"} {}`:        400,
		`{"quote":"zz"}`:           400,
		`{"quote":"` + strings.Repeat("a", 300<<10) + `"}`: 413,
	} {
		got, m := post(t, ts.URL+"/dcap-tools/quote-parse", body)
		if got != code || m["error"] == nil {
			t.Errorf("%.40s: %d %v, want %d", body, got, m, code)
		}
	}
	resp, _ := http.Get(ts.URL + "/verify")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /verify: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if code, _ := post(t, ts.URL+"/nope", "{}"); code != 404 {
		t.Fatalf("unknown path: %d", code)
	}
}

func FuzzHandler(f *testing.F) {
	q, _ := os.ReadFile(filepath.Join(testutil.SampleDir(), "quote.txt"))
	f.Add("/dcap-tools/quote-parse", `{"quote":"`+strings.TrimSpace(string(q))+`"}`)
	f.Add("/verify", `{"quote":"00","message":"m","signature":"AA==","key_type":"ed25519","policy":{"tdx":{"mr_td":["aa"]}}}`)
	h := &verifiersvc.Handler{Offline: true}
	f.Fuzz(func(t *testing.T, path, body string) {
		if path != "/verify" {
			path = "/dcap-tools/quote-parse"
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader(body)))
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 413 {
			t.Fatalf("status %d", rec.Code)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("response is not JSON: %q", rec.Body.String())
		}
	})
}
