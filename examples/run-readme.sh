#!/usr/bin/env bash
# Runs every ```sh block of examples/README.md, in order, exactly as written,
# from the repository root; stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
script=$(awk '/^```sh$/{on=1; next} /^```$/{on=0} on' examples/README.md)
cleanup() { jobs -p | xargs -r kill 2>/dev/null || true; rm -rf examples/crypto /tmp/teesign-example-state /tmp/teesign-unit; }
trap cleanup EXIT
# The examples start their own servers on these ports: anything already
# there would answer in their place.
for port in 49153 8089; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run-readme: 127.0.0.1:$port is already in use; stop what listens there first" >&2
    exit 1
  fi
done
set -x
eval "$script"
