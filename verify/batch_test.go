package verify_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/teesign/teesign/validate"
	"github.com/teesign/teesign/verify"
)

// One quote, many messages: each result shares the quote's checks and has
// its own signature check.
func TestVerifyBatch(t *testing.T) {
	q, k := sample(t)
	items := []verify.Signed{
		{Message: []byte("a"), Signature: k.Sign([]byte("a"))},
		{Message: []byte("b"), Signature: k.Sign([]byte("x"))},
		{Message: []byte("c"), Signature: k.Sign([]byte("c"))},
	}
	rs, err := verify.VerifyBatch(context.Background(), q, items, verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || !rs[0].Valid || rs[1].Valid || !rs[2].Valid || byName(rs[1], "signature").Status != "fail" || byName(rs[1], "cert_chain").Status != "pass" {
		t.Fatalf("%+v", rs)
	}
	// An unpinned workload fails every item.
	rs, _ = verify.VerifyBatch(context.Background(), q, items[:1], verify.Options{KeyType: "ed25519", Offline: true})
	if rs[0].Valid {
		t.Fatal("unpinned workload passed in a batch")
	}
	// An unreadable quote: every item reports it, with no duplicate check.
	rs, _ = verify.VerifyBatch(context.Background(), []byte("zz"), items[:2], verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true})
	if len(rs[1].Checks) != 6 || rs[1].Valid {
		t.Fatalf("unreadable quote: %+v", rs[1].Checks)
	}
}

func benchItems(b *testing.B, n int) ([]byte, []verify.Signed) {
	q, k := sample(b)
	items := make([]verify.Signed, n)
	for i := range items {
		m := []byte(fmt.Sprintf("message %d", i))
		items[i] = verify.Signed{Message: m, Signature: k.Sign(m)}
	}
	return q, items
}

// BenchmarkVerifyBatch64 verifies 64 messages of one quote; compare with
// BenchmarkSignatures64, the same 64 signature verifications alone.
func BenchmarkVerifyBatch64(b *testing.B) {
	q, items := benchItems(b, 64)
	pol := &validate.Policy{}
	for b.Loop() {
		if _, err := verify.VerifyBatch(context.Background(), q, items, verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true, Policy: pol}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignatures64(b *testing.B) {
	_, items := benchItems(b, 64)
	_, k := sample(b)
	pub := k.Public()
	for b.Loop() {
		for _, it := range items {
			if err := pub.Verify(it.Message, it.Signature); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkVerifyOne is a single full verification, for comparison.
func BenchmarkVerifyOne(b *testing.B) {
	q, items := benchItems(b, 1)
	for b.Loop() {
		if _, err := verify.Verify(context.Background(), q, items[0].Message, items[0].Signature, verify.Options{KeyType: "ed25519", Offline: true, AnyWorkload: true}); err != nil {
			b.Fatal(err)
		}
	}
}
