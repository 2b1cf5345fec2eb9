#!/usr/bin/env bash
# README command 1: install, build, bring up a 3-host lab on this machine, show its status.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/install-deps.sh
echo "== building (debug; first build takes a few minutes)"
swift build --product vigild
swift build --product vigil
swift build --product vigil-watchdog
echo "== guest image"
guest/build.sh
bin=$(swift build --show-bin-path)
echo "== lab: 3 hosts"
"$bin/vigil" lab down --name demo >/dev/null 2>&1 || true
"$bin/vigil" lab up --nodes 3
# The agents elect a leader within a moment of starting; show status once they have.
for i in $(seq 1 50); do "$bin/vigil" status --json 2>/dev/null | grep -q '"leader" *:' && break; sleep 0.2; done
echo "== vigil status"
"$bin/vigil" status
echo
echo "== a VM: create, start, and ask its guest over the client network from another host"
"$bin/vigil" vm create demo1 --memory 256M --disk 64M --start
"$bin/vigil" vm list
addr=$("$bin/vigil" vm show demo1 --json | sed -n 's/.*"address" *: *"\([0-9.]*\)".*/\1/p' | head -1)
owner=$("$bin/vigil" vm show demo1 --json | sed -n 's/.*"node" *: *"\(n[0-9]*\)".*/\1/p' | head -1)
other=n1; [ "$owner" = n1 ] && other=n2
for i in $(seq 1 60); do
  if out=$(ip netns exec "demo-$other" curl -s -m 2 "http://$addr/"); then echo "guest at $addr (on $owner) answers $other: $out"; break; fi
  sleep 1
done
echo
echo "== vigil events"
"$bin/vigil" events --limit 12
echo
echo "demo ready in $(( $(date +%s) - start )) s. Try: $bin/vigil status | $bin/vigil lab cut n1 cluster1 | $bin/vigil lab down"
