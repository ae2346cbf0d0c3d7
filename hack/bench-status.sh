#!/usr/bin/env bash
# Times `kubectl etcd status` against what an operator would type for the same
# look, `kubectl -n kube-system exec etcd-h1 -- etcdctl ... endpoint status
# --cluster`, on one 3-host bed (as root): RUNS alternating runs of each, the
# wall time of each process, medians and their ratio (the plugin's must be at
# most 1.5x etcdctl's). Writes docs/bench/status.json.
# Usage: hack/bench-status.sh [RUNS]   (default 10; takes the bed lock, waits for it)
set -euo pipefail
cd "$(dirname "$0")/.."
lock=/var/tmp/kubectl-etcd-bed.lock
if [[ "${BENCH_STATUS_LOCKED:-}" != 1 ]]; then
  # One bed at a time on the machine. -o: the bed's long-lived processes must
  # not inherit (and keep) the lock; flock itself holds it until we exit.
  echo "taking the bed lock $lock (waits while another bed is up)"
  exec env BENCH_STATUS_LOCKED=1 flock -o "$lock" "$0" "$@"
fi
runs="${1:-10}"
name=benchstatus
net=10.99.41
log=/tmp/bench-status.log
out=docs/bench/status.json
limit=1.5
: >"$log"

go build -o /tmp/kubectl-etcd-bench-status-testbed ./cmd/testbed
tb() { /tmp/kubectl-etcd-bench-status-testbed --name "$name" "$@"; }
trap 'tb down >>"$log" 2>&1 || echo "teardown failed, see $log"' EXIT
now() { date +%s%N; }
secs() { awk -v n="$1" 'BEGIN { printf "%.3f", n / 1e9 }'; } # NS -> s.mmm
die() { echo "FAILED: $*" >&2; tail -40 "$log" >&2; exit 1; }

echo "bed $name up ($net.0/24, 3 hosts with members); log: $log"
tb up --subnet "$net" --hosts 3 >>"$log" 2>&1 || die "bed up"
beddir=/var/tmp/kubectl-etcd-testbed/$name
plugin=("$beddir/bin/kubectl-etcd" --kubeconfig "$beddir/kubeconfig")
etcdctl=("$beddir/bin/kubectl" --kubeconfig "$beddir/kubeconfig" -n kube-system exec etcd-h1 --
  etcdctl --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt
  --key=/etc/kubernetes/pki/etcd/healthcheck-client.key --endpoints=https://127.0.0.1:2379 endpoint status --cluster)

# Both must answer, all three members healthy, and the plugin on its fast path
# (a fallback says so on stderr). Until the third member has joined and every
# pod is ready, keep asking.
ready=
for _ in $(seq 120); do
  if s=$("${plugin[@]}" status 2>"$log.err") && [[ ! -s "$log.err" ]] &&
    [[ $(grep -c '^h[123] .* healthy ' <<<"$s") == 3 ]] && [[ $("${etcdctl[@]}" 2>>"$log" | wc -l) == 3 ]]; then
    ready=1
    break
  fi
  sleep 1
done
cat "$log.err" >>"$log"
[[ -n "$ready" ]] || die "status never showed 3 healthy members on its exec path"
echo "$s" >>"$log"

# timed LABEL CMD...: wall time of one run in ns (the command's output to the log).
timed() {
  local s e
  s=$(now)
  "${@:2}" >>"$log" 2>"$log.err" || { cat "$log.err" >>"$log"; die "$1"; }
  e=$(now)
  if [[ "$1" == plugin && -s "$log.err" ]]; then
    cat "$log.err" >>"$log"
    die "status left its exec path: $(head -1 "$log.err")"
  fi
  cat "$log.err" >>"$log"
  echo $((e - s))
}

declare -a P E
echo "$runs alternating runs:"
for i in $(seq 1 "$runs"); do
  P[i]=$(timed plugin "${plugin[@]}" status)
  E[i]=$(timed etcdctl "${etcdctl[@]}")
  printf '  run %2d: kubectl etcd status %s s, kubectl exec etcdctl %s s\n' "$i" "$(secs "${P[i]}")" "$(secs "${E[i]}")"
done
# For the record: the host-pod path status took before (one run).
H=$(timed host-pod "${plugin[@]}" status --via host-pod)

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.0f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
pm=$(median "${P[@]}")
em=$(median "${E[@]}")
ratio=$(awk -v p="$pm" -v e="$em" 'BEGIN { printf "%.2f", p / e }')
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  printf '{\n  "commit": "%s",\n' "$(git rev-parse --short HEAD)"
  printf '  "pluginMedianSeconds": %s,\n  "etcdctlMedianSeconds": %s,\n  "ratio": %s,\n' "$(secs "$pm")" "$(secs "$em")" "$ratio"
  printf '  "hostPodSeconds": %s,\n  "loadAverage": "%s",\n  "cores": %s,\n  "runs": [\n' "$(secs "$H")" "$load" "$(nproc)"
  for i in $(seq 1 "$runs"); do
    sep=,
    [[ $i == "$runs" ]] && sep=
    printf '    {"run": %d, "pluginSeconds": %s, "etcdctlSeconds": %s}%s\n' "$i" "$(secs "${P[i]}")" "$(secs "${E[i]}")" "$sep"
  done
  printf '  ]\n}\n'
} >"$out"

echo
echo "kubectl etcd status (exec path):    median $(secs "$pm") s"
echo "kubectl exec etcd-h1 -- etcdctl ...: median $(secs "$em") s"
echo "ratio: $ratio (limit $limit); host-pod path, one run: $(secs "$H") s; load average $load on $(nproc) cores"
echo "written: $out"
awk -v r="$ratio" -v l="$limit" 'BEGIN { exit !(r <= l) }' || { echo "FAILED: the plugin is more than ${limit}x etcdctl" >&2; exit 1; }
