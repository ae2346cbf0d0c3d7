#!/usr/bin/env bash
# Times each host-local verb on a real test bed (as root):
#   a kubeadm control plane on h1, h2 and h3 control-plane hosts without etcd.
# join h2, join h3, leave h3, join h3 again, status --local, and a
# first-bootstrap init on a bare host with a standalone kubelet.
# Usage: hack/bench-hostlocal.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
go build -o /tmp/kubectl-etcd-bench-testbed ./cmd/testbed
tb() { /tmp/kubectl-etcd-bench-testbed --name benchhl "$@"; }
trap 'tb down >/dev/null 2>&1 || true' EXIT
tb up --subnet 10.99.7 --shape init,control-plane-no-etcd,control-plane-no-etcd,bare >/tmp/bench-hostlocal.log 2>&1 \
  || { tail -30 /tmp/bench-hostlocal.log; exit 1; }
ep=--endpoints=https://10.99.7.11:2379
timed() { # LABEL HOST ARGS...
  local label="$1" host="$2"; shift 2
  local s; s=$(date +%s%N)
  tb exec "$host" -- kubectl-etcd "$@" >>/tmp/bench-hostlocal.log 2>&1 || { echo "$label failed"; tail -20 /tmp/bench-hostlocal.log; exit 1; }
  local ms=$(( ($(date +%s%N) - s) / 1000000 ))
  printf '  %-40s %6d ms\n' "$label" "$ms"
}
echo "host-local verbs on a 3-host kubeadm bed ($rounds rounds):"
timed "join h2 (1 -> 2 members)" h2 join "$ep"
timed "join h3 (2 -> 3 members)" h3 join "$ep"
timed "join h3 again (no-op)" h3 join "$ep"
timed "status --local" h3 status --local
for r in $(seq 1 "$rounds"); do
  timed "round $r: leave h3 (3 -> 2)" h3 leave
  timed "round $r: join h3 (2 -> 3)" h3 join "$ep"
done
tb standalone-kubelet h4
timed "init on a bare host (new cluster)" h4 init --node-name h4 --advertise-address 10.99.7.14
echo "(join and leave include restarting the host's kube-apiserver, which waits ~30 s for kubelet's"
echo " grace period: kube-apiserver does not finish its graceful shutdown while watches are open)"
