#!/usr/bin/env bash
# make test's last part: the end-to-end tests, with the release archives of
# `make dist` compiled meanwhile at the lowest CPU priority, then krew-check
# on them.
#
# Why in parallel: on a cold machine the six cross-compiled archives take about
# 23 min of CPU, and the e2e tests spend most of their time waiting on kubelet
# and etcd, with a core or so idle. At the lowest priority the compiler only
# gets what the beds leave, so the beds' timing is what it would be without
# it. On a warm machine `make dist` takes a minute.
#
# hack/idle.sh says how "lowest priority" is obtained, and why it takes two
# settings.
#
# Usage: hack/e2e-with-dist.sh MAKE VERSION   (from the Makefile's test target)
set -uo pipefail
make="${1:?usage: $0 MAKE VERSION}" version="${2:?usage: $0 MAKE VERSION}"
cd "$(dirname "$0")/.."
mkdir -p dist
log=dist/make-dist.log
start=$SECONDS

hack/idle.sh "$log" "$make" --no-print-directory dist VERSION="$version" &
dist=$!
trap 'kill -- -"$dist" 2>/dev/null' EXIT
echo "test: make dist runs in the background at nice 19 (log: $log)"

"$make" --no-print-directory e2e
e2e=$?

echo "test: waiting for the background make dist ($((SECONDS - start)) s since the e2e tests started)"
wait "$dist"
d=$?
trap - EXIT
cat "$log"
k=1
if [[ $d == 0 ]]; then
  hack/krew-check.sh "$version" dist
  k=$?
fi
if [[ $e2e != 0 || $d != 0 || $k != 0 ]]; then
  echo "test: FAILED (e2e exit $e2e, make dist exit $d, krew-check exit $k)"
  exit 1
fi
