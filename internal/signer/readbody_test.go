package signer

import (
	"bytes"
	"io"
	"testing"
)

// readSizes records how much room each Read was given.
type readSizes struct {
	r     io.Reader
	sizes []int
}

func (s *readSizes) Read(p []byte) (int, error) {
	s.sizes = append(s.sizes, len(p))
	return s.r.Read(p)
}

// A bulk body is read in slices of at most bulkSlice bytes (other requests
// get the processor between them); a small one fills its buffer as it grows.
func TestBulkBodyIsReadInSlices(t *testing.T) {
	data := bytes.Repeat([]byte("a"), 5*bulkSlice+7)
	for _, bulk := range []bool{true, false} {
		r := &readSizes{r: bytes.NewReader(data)}
		got, err := readBody(r, make([]byte, 0, 4096), int64(len(data)), bulk)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("bulk %v: read %d bytes, %v", bulk, len(got), err)
		}
		largest := 0
		for _, n := range r.sizes {
			largest = max(largest, n)
		}
		if bulk && largest > bulkSlice || !bulk && largest <= bulkSlice {
			t.Errorf("bulk %v: reads of up to %d bytes", bulk, largest)
		}
	}
	if _, err := readBody(bytes.NewReader(data), nil, int64(len(data))-1, true); err != errTooLarge {
		t.Errorf("one byte over the limit: %v", err)
	}
}
