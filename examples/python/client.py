#!/usr/bin/env python3
"""Sign through teesign's signing server and verify the signature with the
quote and public key files a compose file mounts.

Uses only `cryptography` and `requests`. It checks that the quote's
report_data binds the public key and that the signature verifies with it.
The quote's hardware chain is checked by `teesign verify` or by a teesign
verifier service: pass --verifier URL to have it check the whole chain too,
with --policy FILE (JSON, as `teesign policy from-quote --json` writes it)
pinning the workload; a verifier never says valid for an unpinned one.
"""
import argparse
import base64
import binascii
import json
import struct
import sys

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def read_quote(path):
    """Return the raw quote from a teesign attestation file (hex or base64)."""
    text = "".join(open(path).read().split())
    try:
        return binascii.unhexlify(text)
    except binascii.Error:
        return base64.b64decode(text, validate=True)


def report_data(quote):
    """report_data of a TDX v4 quote or a SEV-SNP report."""
    version, _, tee_type = struct.unpack_from("<HHI", quote, 0)
    if version in (4, 5) and tee_type == 0x81:
        off = 0x238 if version == 4 else 0x238 + 2 + 4  # v5 has a body descriptor
        return quote[off:off + 64]
    if len(quote) == 1184:
        return quote[0x50:0x90]
    raise ValueError("not a TDX quote or SEV-SNP report")


def raw_public_key(pub):
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) + bytes(32)
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point[1:]  # X‖Y


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--server", default="http://172.17.0.1:49153")
    ap.add_argument("--key-type", default="ed25519", choices=["ed25519", "secp256k1"])
    ap.add_argument("--quote", required=True, help="docker_attestation_<alg>.txt")
    ap.add_argument("--pubkey", required=True, help="docker_public_key_<alg>.pem")
    ap.add_argument("--message", default="My Secret Message")
    ap.add_argument("--verifier", help="teesign verifier service base URL for the full check")
    ap.add_argument("--policy", help="policy JSON pinning the workload, for --verifier")
    args = ap.parse_args()

    resp = requests.post(args.server + "/sign", json={"key_type": args.key_type, "payload": args.message}, timeout=5)
    resp.raise_for_status()
    signature = resp.json()["signature"]
    print("signature:", signature)

    pub = serialization.load_pem_public_key(open(args.pubkey, "rb").read())
    quote = read_quote(args.quote)
    if report_data(quote) != raw_public_key(pub):
        sys.exit("FAILED: the quote does not bind this public key")
    print("key binding: the quote's report_data binds", args.pubkey)

    sig = base64.b64decode(signature)
    if args.key_type == "ed25519":
        pub.verify(sig, args.message.encode())
    else:
        pub.verify(sig, args.message.encode(), ec.ECDSA(hashes.SHA256()))
    print("signature: valid")

    if args.verifier:
        body = {"quote": open(args.quote).read(), "message": args.message, "signature": signature, "key_type": args.key_type}
        if args.policy:
            body["policy"] = json.load(open(args.policy))
        result = requests.post(args.verifier + "/verify", json=body, timeout=30).json()
        for check in result["checks"]:
            print(f"verifier: {check['name']}: {check['status']} {check.get('reason', '')}".rstrip())
        if not result["valid"]:
            sys.exit("FAILED: the verifier rejected it")
    print("OK")


if __name__ == "__main__":
    main()
