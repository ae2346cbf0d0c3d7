#!/usr/bin/env bash
# Measures the test bed: time to bring up a bed of N control-plane hosts
# (binaries and images already built), its memory, and teardown time.
# Usage: hack/bench-bed.sh [HOSTS]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
hosts="${1:-3}"
go build -o /tmp/kubectl-etcd-bench-testbed ./cmd/testbed
tb=(/tmp/kubectl-etcd-bench-testbed --name bench)
"${tb[@]}" up --subnet 10.99.8 --hosts 1 >/dev/null 2>&1 && "${tb[@]}" down >/dev/null 2>&1 # warm: builds and images
start=$(date +%s%N)
"${tb[@]}" up --subnet 10.99.8 --hosts "$hosts" >/tmp/bench-bed.log 2>&1 || { tail -30 /tmp/bench-bed.log; exit 1; }
up=$(( ($(date +%s%N) - start) / 1000000 ))
sleep 20 # let the control plane settle before measuring memory
mem=$("${tb[@]}" status | sed -n 's/.*memory \([0-9]*\) MiB.*/\1/p')
start=$(date +%s%N)
"${tb[@]}" down >/dev/null 2>&1
down=$(( ($(date +%s%N) - start) / 1000000 ))
grep -E "booted|init done|joined" /tmp/bench-bed.log | sed 's/^/  /'
echo "bed of $hosts hosts: up $((up / 1000)).$(((up % 1000) / 100)) s, memory $mem MiB (PSS, 20 s after up), down $((down / 1000)).$(((down % 1000) / 100)) s"
