package keys_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/teesign/teesign/internal/keys"
)

// The web3.js accounts.sign documentation example.
func TestEthPersonalSignKnownAnswer(t *testing.T) {
	k, err := keys.NewSecp256k1FromScalar(unhex(t, "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
	if err != nil {
		t.Fatal(err)
	}
	h := keys.EthPersonalHash([]byte("Some data"))
	if got := hex.EncodeToString(h); got != "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655" {
		t.Fatalf("hash %s", got)
	}
	sig, err := k.SignEth(h)
	if err != nil {
		t.Fatal(err)
	}
	want := "b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c"
	if got := hex.EncodeToString(sig); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	addr, err := k.Public().EthAddress()
	if err != nil || addr != "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23" {
		t.Fatalf("address %s %v", addr, err)
	}
	rd := k.Public().ReportData()
	if keys.EIP55(keys.Keccak256(rd[:])[12:]) != addr {
		t.Fatal("keccak256(report_data) is not the address")
	}
	pub, err := keys.RecoverEth(h, sig)
	if err != nil || !pub.Equal(k.Public()) {
		t.Fatalf("recover: %v", err)
	}
}

func TestEthRandomRoundTrips(t *testing.T) {
	k, _ := keys.Generate(keys.Secp256k1)
	for i := 0; i < 200; i++ {
		digest := make([]byte, 32)
		rand.Read(digest)
		sig, err := k.SignEth(digest)
		if err != nil {
			t.Fatal(err)
		}
		if v := sig[64]; v != 27 && v != 28 {
			t.Fatalf("v = %d", v)
		}
		if sig[32] >= 0x80 {
			t.Fatal("high S")
		}
		pub, err := keys.RecoverEth(digest, sig)
		if err != nil || !pub.Equal(k.Public()) {
			t.Fatalf("recover: %v", err)
		}
		sig[10] ^= 1
		if pub, err := keys.RecoverEth(digest, sig); err == nil && pub.Equal(k.Public()) {
			t.Fatal("tampered signature recovers the signer")
		}
	}
	e, _ := keys.Generate(keys.Ed25519)
	if _, err := e.SignEth(make([]byte, 32)); err == nil {
		t.Fatal("ed25519 key made an Ethereum signature")
	}
}
