#!/usr/bin/env bash
# make test's middle part: the unit tests, with the test bed's prerequisites
# (apt packages, etcd and the Kubernetes components built from Go modules, the
# images) prepared meanwhile at the lowest CPU priority (hack/idle.sh).
#
# Why in parallel: on a cold machine the components take about 14 min to build
# on two cores, and the unit tests spend minutes waiting on the real etcd
# servers they start, with a core idle. At the lowest priority the build only
# takes what the tests leave, so their timing is what it would be without it;
# it gets all of the CPU once they end. On a warm machine both are quick.
# The e2e tests' own preparation then finds everything built.
#
# Usage: hack/unit-with-prepare.sh MAKE   (from the Makefile's test target)
set -uo pipefail
make="${1:?usage: $0 MAKE}"
cd "$(dirname "$0")/.."
mkdir -p dist
log=dist/prepare.log
start=$SECONDS

# Built first, in the foreground: go run would otherwise compile it at nice 19.
go build -o dist/testbed ./cmd/testbed || exit 1
hack/idle.sh "$log" dist/testbed prepare &
prep=$!
trap 'kill -- -"$prep" 2>/dev/null' EXIT
echo "test: the test bed's prerequisites are prepared in the background at nice 19 (log: $log)"

"$make" --no-print-directory unit
unit=$?

echo "test: unit tests ended (exit $unit) after $((SECONDS - start)) s; waiting for the background preparation"
wait "$prep"
p=$?
trap - EXIT
cat "$log"
echo "test: preparation done $((SECONDS - start)) s after the unit tests started"
if [[ $unit != 0 || $p != 0 ]]; then
  echo "test: FAILED (unit exit $unit, prepare exit $p)"
  exit 1
fi
