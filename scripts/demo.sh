#!/usr/bin/env bash
# README command 1: install, build, bring up a 3-host lab on this machine, show its status.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/install-deps.sh
echo "== building (debug; first build takes a few minutes)"
swift build --product vigild
swift build --product vigil
echo "== guest image"
guest/build.sh
bin=$(swift build --show-bin-path)
echo "== lab: 3 hosts"
"$bin/vigil" lab down --name demo >/dev/null 2>&1 || true
"$bin/vigil" lab up --nodes 3
echo "== vigil status"
"$bin/vigil" status
echo
echo "== vigil events"
"$bin/vigil" events --limit 10
echo
echo "demo ready in $(( $(date +%s) - start )) s. Try: $bin/vigil status | $bin/vigil lab cut n1 cluster1 | $bin/vigil lab down"
