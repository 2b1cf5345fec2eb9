#!/usr/bin/env bash
# README command 2: every test. Root/netns tests run when this runs as root; with
# VIGIL_REQUIRE_ALL=1 (CI) a missing capability fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if [ "$(id -u)" = 0 ]; then scripts/install-deps.sh; fi
echo "== building tests"
swift build --build-tests
swift build --product vigild
swift build --product vigil
if [ "$(id -u)" = 0 ]; then guest/build.sh; fi
echo "== running tests"
export VIGIL_BIN_DIR=$(swift build --show-bin-path)
set +e
swift test --skip-build 2>&1 | tee /tmp/vigil-test.log
rc=${PIPESTATUS[0]}
set -e
skipped=$(grep -c "skipped" /tmp/vigil-test.log || true)
echo "== tests finished in $(( $(date +%s) - start )) s (exit $rc; lines mentioning skips: $skipped)"
if [ "${VIGIL_REQUIRE_ALL:-0}" = 1 ] && grep -q "Test .* skipped" /tmp/vigil-test.log; then
  echo "== FAIL: tests were skipped on CI (VIGIL_REQUIRE_ALL=1):"; grep "Test .* skipped" /tmp/vigil-test.log
  exit 1
fi
exit $rc
