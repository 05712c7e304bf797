#!/usr/bin/env python3
"""BASELINE, for benchmarks only: the signing server as the reference
document's stack would write it, Python `cryptography` behind Python's
standard HTTP server. Made fair: HTTP/1.1 keep-alive, TCP_NODELAY, no
per-request logging, keys parsed once at start, a listen backlog that
takes every connection at once.

    python3 bench/baseline/server.py --port 49200
"""
import argparse
import base64
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

KEYS = {
    "secp256k1": ec.generate_private_key(ec.SECP256K1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}


def sign(key_type, payload):
    key = KEYS[key_type]
    if key_type == "ed25519":
        return key.sign(payload)
    return key.sign(payload, ec.ECDSA(hashes.SHA256()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > 1 << 20:
            return self.reply(413, {"error": "too large"})
        try:
            req = json.loads(self.rfile.read(length))
            key_type = req.get("key_type", "secp256k1")
            if key_type not in KEYS:
                return self.reply(400, {"error": "invalid key type"})
            if self.path == "/sign":
                sig = sign(key_type, req["payload"].encode())
                return self.reply(200, {"signature": base64.b64encode(sig).decode(), "key_type": key_type})
            if self.path == "/sign/batch":
                sigs = [base64.b64encode(sign(key_type, p.encode())).decode() for p in req["payloads"]]
                return self.reply(200, {"signatures": sigs, "key_type": key_type})
            return self.reply(404, {"error": "not found"})
        except (ValueError, KeyError, AttributeError):
            return self.reply(400, {"error": "bad request"})


class Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: the load tool's 16
    # connections would wait a second for SYN retries. Any deployment
    # raises it; so does this baseline.
    request_queue_size = 128
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=49200)
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"baseline listening on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
