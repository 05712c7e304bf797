package testutil

import (
	"bytes"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var bundleSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	return jsonschema.NewCompiler().Compile(filepath.Join(RepoRoot(), "docs", "bundle.schema.json"))
})

// CheckBundleSchema fails t unless data is valid under the bundle's JSON
// Schema, docs/bundle.schema.json.
func CheckBundleSchema(t testing.TB, data []byte) {
	t.Helper()
	s, err := bundleSchema()
	if err != nil {
		t.Fatalf("docs/bundle.schema.json: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("bundle is not JSON: %v", err)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("bundle does not match docs/bundle.schema.json: %v\n%s", err, data)
	}
}
