#!/usr/bin/env bash
# Runs every ```sh block of examples/README.md, in order, exactly as written,
# from the repository root; stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
script=$(awk '/^```sh$/{on=1; next} /^```$/{on=0} on' examples/README.md)
cleanup() { jobs -p | xargs -r kill 2>/dev/null || true; rm -rf examples/crypto /tmp/teesign-example-state /tmp/teesign-unit; }
trap cleanup EXIT
set -x
eval "$script"
