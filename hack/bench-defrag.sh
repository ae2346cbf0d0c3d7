#!/usr/bin/env bash
# Times `kubectl etcd defrag h2` against what an operator would type instead,
# `kubectl -n kube-system exec etcd-h2 -- etcdctl ... defrag`, on the same
# member of one 3-host bed (as root), one run each: before each run h2's
# database is grown to about 1 GiB of mostly free pages (1 MB values written,
# deleted, compacted). The plugin's overhead (its status reads before and
# after, and the quorum check) must stay within 1.2x of etcd's own call.
# Writes docs/bench/defrag.json.
# Usage: [ROUNDS=N] hack/bench-defrag.sh [MB [LIVE_MB]]   (default 1 round, 1000 MB, 0 live;
# takes the bed lock, waits for it)
# LIVE_MB: that many MB of 1 MB values stay (not deleted), so each defrag has
# live data to copy, as a real member has; the result then goes to
# docs/bench/defrag-live<LIVE_MB>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=/var/tmp/kubectl-etcd-bed.lock
if [[ "${BENCH_DEFRAG_LOCKED:-}" != 1 ]]; then
  # One bed at a time on the machine. -o: the bed's long-lived processes must
  # not inherit (and keep) the lock; flock itself holds it until we exit.
  echo "taking the bed lock $lock (waits while another bed is up)"
  exec env BENCH_DEFRAG_LOCKED=1 flock -o "$lock" "$0" "$@"
fi
mb="${1:-1000}"
live="${2:-0}"
name=benchdefrag
net=10.99.42
log=/tmp/bench-defrag.log
out=docs/bench/defrag.json
if [[ "$live" != 0 ]]; then out=docs/bench/defrag-live$live.json; fi
limit=1.2
: >"$log"

go build -o /tmp/kubectl-etcd-bench-defrag-testbed ./cmd/testbed
tb() { /tmp/kubectl-etcd-bench-defrag-testbed --name "$name" "$@"; }
trap 'tb down >>"$log" 2>&1 || echo "teardown failed, see $log"' EXIT
now() { date +%s%N; }
secs() { awk -v n="$1" 'BEGIN { printf "%.3f", n / 1e9 }'; } # NS -> s.mmm
die() { echo "FAILED: $*" >&2; tail -40 "$log" >&2; exit 1; }

echo "bed $name up ($net.0/24, 3 hosts with members); log: $log"
tb up --subnet "$net" --hosts 3 >>"$log" 2>&1 || die "bed up"
beddir=/var/tmp/kubectl-etcd-testbed/$name
plugin=("$beddir/bin/kubectl-etcd" --kubeconfig "$beddir/kubeconfig")
certs="--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
# A long command timeout: compacting away 1 GB takes longer than etcdctl's 5 s default.
etcdctl="etcdctl $certs --endpoints=https://127.0.0.1:2379 --command-timeout=5m"
manual=("$beddir/bin/kubectl" --kubeconfig "$beddir/kubeconfig" -n kube-system exec etcd-h2 --
  etcdctl $certs --endpoints=https://127.0.0.1:2379 --command-timeout=10m defrag)

# h2's database file size in bytes, as etcd reports it.
dbsize() {
  tb exec h2 -- sh -c "$etcdctl endpoint status -w json" | grep -o '"dbSize":[0-9]*' | cut -d: -f2
}

# grow: MB values of 1 MB written (a put that fails is tried up to 30 times,
# 2 s apart: writing a GB through three members on 2 cores sometimes times
# requests out or drops keepalives for a while), deleted and compacted away, so every
# member's file holds about that much free space for a defrag to give back.
grow() {
  tb exec h1 -- sh -c "head -c 1000000 /dev/zero | tr '\\0' x >/tmp/bench.value
    put() { for try in \$(seq 30); do $etcdctl put \$1 </tmp/bench.value >/dev/null && return 0; sleep 2; done; return 1; }
    i=0; while [ \$i -lt $mb ]; do put /bench/\$i || exit 1; i=\$((i+1)); done
    $etcdctl del --prefix /bench/ >/dev/null
    rev=\$($etcdctl endpoint status -w json | grep -o '\"revision\":[0-9]*' | head -1 | cut -d: -f2)
    $etcdctl compact \$rev --physical >/dev/null" >>"$log" 2>&1 || die "growing the database"
}

# live: values that stay, written once, copied by every defrag.
keep_live() {
  [[ "$live" == 0 ]] && return 0
  tb exec h1 -- sh -c "head -c 1000000 /dev/zero | tr '\\0' y >/tmp/bench.live
    i=0; while [ \$i -lt $live ]; do $etcdctl put /bench-live/\$i </tmp/bench.live >/dev/null || exit 1; i=\$((i+1)); done" >>"$log" 2>&1 || die "writing the live data"
}

# Until all three members and the etcd pods are ready.
for _ in $(seq 120); do
  if s=$("${plugin[@]}" status 2>>"$log") && [[ $(grep -c '^h[123] .* healthy ' <<<"$s") == 3 ]]; then
    break
  fi
  sleep 1
done
[[ $(grep -c '^h[123] .* healthy ' <<<"$s") == 3 ]] || die "status never showed 3 healthy members"

# settled: until h2 has applied the compaction itself (its space in use is
# back under the live data plus 50 MB): `compact --physical` waits for the
# member it asked (h1) only, and a defrag that starts while h2 still
# compacts waits for it, which would time h2's compaction, not the defrag.
settled() {
  local inuse limit=$(((live + 50) * 1000000))
  for _ in $(seq 120); do
    inuse=$(tb exec h2 -- sh -c "$etcdctl endpoint status -w json" | grep -o '"dbSizeInUse":[0-9]*' | cut -d: -f2)
    [[ -n "$inuse" && "$inuse" -lt "$limit" ]] && return 0
    sleep 1
  done
  die "h2 never applied the compaction (in use: ${inuse:-?} bytes)"
}

# quiet: every member has applied the compaction and the machine has
# written back what the grow left dirty (a GB per member), so the timed
# defrag's fsync does not queue behind that writeback: it varied the
# defrag itself by half a second from run to run.
quiet() {
  settled
  sync
  sleep 2
}

run() { # LABEL CMD...: grow, then time CMD; prints "ns before after"
  local s e before after
  grow
  quiet
  before=$(dbsize)
  s=$(now)
  "${@:2}" >>"$log" 2>&1 || die "$1"
  e=$(now)
  after=$(dbsize)
  echo "$((e - s)) $before $after"
}
keep_live
# ROUNDS (env, default 1) pairs of runs, alternating; the ratio is of the
# medians, since one defrag's time varies by a second or more from run to
# run on a loaded 2-core machine.
rounds="${ROUNDS:-1}"
Es=() Ps=()
# The two alternate which goes first from round to round: a defrag's time
# depends on what the grow before it left (the file's layout, the page
# cache), and the second run of a round grows a file the first one just
# defragmented.
# A run whose command fails (kubectl exec's stream times out under the
# grow's load now and then: "next reader: ... i/o timeout") is grown and
# tried once more, saying so; a second failure ends the benchmark.
run_etcdctl() {
  echo "round $r/$rounds: growing h2's database to about $mb MB of free pages ($live MB live), then: kubectl exec etcdctl defrag"
  E=""
  for try in 1 2; do
    read -r E eb ea < <(run etcdctl "${manual[@]}") || true
    [[ -n "${E:-}" ]] && break
    echo "  the etcdctl run failed (see $log); growing again and trying once more"
  done
  [[ -n "${E:-}" ]] || die "the etcdctl run"
  echo "  etcdctl defrag: $(secs "$E") s ($((eb >> 20)) MiB -> $((ea >> 20)) MiB)"
}
run_plugin() {
  echo "round $r/$rounds: growing h2's database to about $mb MB of free pages ($live MB live), then: kubectl etcd defrag h2"
  P=""
  for try in 1 2; do
    read -r P pb pa < <(run plugin "${plugin[@]}" defrag h2) || true
    [[ -n "${P:-}" ]] && break
    echo "  the plugin run failed (see $log); growing again and trying once more"
  done
  [[ -n "${P:-}" ]] || die "the plugin run"
  echo "  kubectl etcd defrag h2: $(secs "$P") s ($((pb >> 20)) MiB -> $((pa >> 20)) MiB)"
}
for r in $(seq "$rounds"); do
  if ((r % 2)); then run_etcdctl; run_plugin; else run_plugin; run_etcdctl; fi
  Es+=("$E") Ps+=("$P")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
list() { local out="" x; for x in "$@"; do out+="${out:+, }$(secs "$x")"; done; echo "$out"; }
E=$(median "${Es[@]}") P=$(median "${Ps[@]}")

ratio=$(awk -v p="$P" -v e="$E" 'BEGIN { printf "%.2f", p / e }')
commit=$(git rev-parse --short HEAD)
cat >"$out" <<EOF
{
  "commit": "$commit",
  "member": "h2",
  "grownMB": $mb,
  "liveMB": $live,
  "rounds": $rounds,
  "etcdctlSeconds": $(secs "$E"),
  "etcdctlRuns": [$(list "${Es[@]}")],
  "etcdctlDBBytes": {"before": $eb, "after": $ea, "run": "last"},
  "pluginSeconds": $(secs "$P"),
  "pluginRuns": [$(list "${Ps[@]}")],
  "pluginDBBytes": {"before": $pb, "after": $pa, "run": "last"},
  "ratio": $ratio,
  "limit": $limit,
  "loadAverage": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "cores": $(nproc)
}
EOF
echo "wrote $out: plugin/etcdctl = $ratio (limit $limit)"
awk -v r="$ratio" -v l="$limit" 'BEGIN { exit !(r <= l) }' || die "the plugin took $ratio x etcdctl's time (limit $limit)"
