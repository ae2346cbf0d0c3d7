#!/usr/bin/env bash
# Times `kubectl etcd scale --replicas 3` (1 -> 3 stacked members) against the
# same change done by hand with etcdctl, kubeadm and sed inside the hosts, on
# one bed in one run (as root):
#   a kubeadm control plane on h1 (etcd there only), h2 and h3 control-plane
#   hosts without an etcd member (the `make demo` shape).
# Both paths end in the same state: 3 healthy voters, and every host's
# kube-apiserver reading its local member and ready.
#   1. tool, fresh bed: scale --replicas 3 right after the bed came up (h2's and
#      h3's apiservers still point at a local etcd that is not there yet).
#   then ROUNDS times:
#   2. scale --replicas 1 (untimed; h2, h3 leave: apiservers to h1, data aside)
#   3. by hand: learner add, certs, data dir, manifest, promote, apiserver, for h2 then h3
#   4. scale --replicas 1 again, then the tool from the same start as by hand
# Usage: hack/bench-scale.sh [ROUNDS]   (default 1; takes the bed lock, waits for it)
set -euo pipefail
cd "$(dirname "$0")/.."
lock=/var/tmp/kubectl-etcd-bed.lock
if [[ "${BENCH_SCALE_LOCKED:-}" != 1 ]]; then
  # One bed at a time on the machine. -o: the bed's long-lived processes must
  # not inherit (and keep) the lock; flock itself holds it until we exit.
  echo "taking the bed lock $lock (waits while another bed is up)"
  exec env BENCH_SCALE_LOCKED=1 flock -o "$lock" "$0" "$@"
fi
rounds="${1:-1}"
OUT="${OUT:-docs/bench/scale.json}"
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd pkg hack || echo -dirty)"
name=benchscale
net=10.99.40
log=/tmp/bench-scale.log
: >"$log"

go build -o /tmp/kubectl-etcd-bench-scale-testbed ./cmd/testbed
tb() { /tmp/kubectl-etcd-bench-scale-testbed --name "$name" "$@"; }
trap 'tb down >>"$log" 2>&1 || echo "teardown failed, see $log"' EXIT
now() { date +%s%N; }
secs() { printf '%d.%d' $(($1 / 1000000000)) $((($1 % 1000000000) / 100000000)); } # NS -> s.d
die() { echo "FAILED: $*" >&2; tail -40 "$log" >&2; exit 1; }

echo "bed $name up ($net.0/24, init,control-plane-no-etcd,control-plane-no-etcd); log: $log"
tb up --subnet "$net" --shape init,control-plane-no-etcd,control-plane-no-etcd >>"$log" 2>&1 || die "bed up"
beddir=/var/tmp/kubectl-etcd-testbed/$name
kubectl_etcd=("$beddir/bin/kubectl-etcd" --kubeconfig "$beddir/kubeconfig")
ip() { echo "$net.1${1#h}"; } # h2 -> 10.99.40.12

# hx HOST SCRIPT: run a bash script inside a host (its PATH has etcdctl,
# kubeadm, kubectl; KUBECONFIG is its admin.conf). etcdctl talks to the local
# member with the host's healthcheck client certificate, as kubeadm's probes do.
etcdenv='export ETCDCTL_ENDPOINTS=https://127.0.0.1:2379 ETCDCTL_CACERT=/etc/kubernetes/pki/etcd/ca.crt \
  ETCDCTL_CERT=/etc/kubernetes/pki/etcd/healthcheck-client.crt ETCDCTL_KEY=/etc/kubernetes/pki/etcd/healthcheck-client.key'
hx() { local h="$1"; shift; tb exec "$h" -- bash -c "set -euo pipefail; $etcdenv; $1"; }

# ---- end-state checks (untimed) -------------------------------------------

# apiservers_ready: wait (up to 3 min each) until every host's kube-apiserver
# answers /readyz with ok. Right after its start it may still refuse
# kubernetes-admin (Forbidden until its RBAC caches have synced): keep asking.
apiservers_ready() {
  for h in h1 h2 h3; do
    hx "$h" 'for i in $(seq 360); do [[ $(kubectl --server=https://127.0.0.1:6443 get --raw=/readyz 2>/dev/null) == ok ]] && exit 0; sleep 0.5; done; exit 1' ||
      die "$h: kube-apiserver not ready within 3 min"
  done
}

# check_three: 3 started voters, all healthy, every apiserver on its local member and ready.
check_three() {
  local list
  list=$(hx h1 'etcdctl member list') || die "member list"
  echo "$list" >>"$log"
  [[ $(grep -c ', started, h[123], .*, false' <<<"$list") == 3 && $(wc -l <<<"$list") == 3 ]] ||
    die "expected 3 started voters h1..h3, got:"$'\n'"$list"
  hx h1 'etcdctl endpoint health --cluster' >>"$log" 2>&1 || die "endpoint health --cluster"
  for h in h1 h2 h3; do
    hx "$h" 'grep -qx -- "    - --etcd-servers=https://127.0.0.1:2379" /etc/kubernetes/manifests/kube-apiserver.yaml &&
      [[ $(kubectl --server=https://127.0.0.1:6443 get --raw=/readyz) == ok ]]' >>"$log" 2>&1 ||
      die "$h: kube-apiserver not on its local member, or not ready"
  done
}

# check_one: only h1 is a member; h2, h3 have no etcd manifest and their
# apiservers read h1's member (not a local one) and are ready. An apiserver may
# still list a member removed after it was pointed away (leave points it at
# the members remaining then): said, not failed.
check_one() {
  local list servers
  list=$(hx h1 'etcdctl member list') || die "member list"
  echo "$list" >>"$log"
  [[ $(wc -l <<<"$list") == 1 && "$list" == *", started, h1, https://$(ip h1):2380,"* ]] ||
    die "expected only h1 as a member, got:"$'\n'"$list"
  for h in h2 h3; do
    servers=$(hx "$h" '! test -e /etc/kubernetes/manifests/etcd.yaml &&
      [[ $(kubectl --server=https://127.0.0.1:6443 get --raw=/readyz) == ok ]] &&
      sed -n "s/^    - --etcd-servers=//p" /etc/kubernetes/manifests/kube-apiserver.yaml' 2>>"$log") ||
      die "$h: etcd manifest left, or kube-apiserver not ready"
    [[ ",$servers," == *",https://$(ip h1):2379,"* && "$servers" != *127.0.0.1* ]] ||
      die "$h: kube-apiserver reads $servers, not h1's member"
    [[ "$servers" == "https://$(ip h1):2379" ]] ||
      echo "  note: after scale --replicas 1, $h's kube-apiserver reads $servers (not only h1's member)"
  done
}

# ---- the tool ---------------------------------------------------------------

declare -A T # results: T[label,total] T[label,h2] T[label,h3]
labels=()

# tool LABEL: time `kubectl etcd scale --replicas 3` until it returns; per host
# from its own "[i/n] add a member on hN ... done in X" lines.
tool() {
  local label="$1" out s e
  out=$(mktemp)
  s=$(now)
  "${kubectl_etcd[@]}" scale --replicas 3 >"$out" 2>&1 || { cat "$out" >>"$log"; die "scale --replicas 3"; }
  e=$(now)
  # On a fresh bed h2's and h3's apiservers already point at 127.0.0.1 and
  # crash-loop (kubelet back-off) until their member is there: join does not
  # restart them, so scale may return before they serve. Time that too.
  apiservers_ready
  T[$label,ready]=$(secs $(($(now) - s)))
  cat "$out" >>"$log"
  T[$label,total]=$(secs $((e - s)))
  for h in h2 h3; do
    # "done in 41.3s" or "done in 1m2.5s" (a Go duration)
    T[$label,$h]=$(awk -v h="$h" '$0 ~ "^\\[[0-9]+/[0-9]+\\] add a member on " h "$" {f=1}
      f && /^      done in / {d=$3; m=0; if (d ~ /ms$/) {sub(/ms$/, "", d); printf "%.1f", d/1000; exit} if (d ~ /m/) {split(d, p, "m"); m=p[1]; d=p[2]} sub(/s$/, "", d); printf "%.1f", m*60+d; exit}' "$out")
  done
  for h in h2 h3; do
    # its join's own step "[i/n] apiserver: ..." then "done in 44.596s" (none on a fresh bed)
    T[$label,api_$h]=$(awk -v h="$h" '$0 ~ "^      " h " \\| \\[[0-9]+/[0-9]+\\] apiserver:" {f=1}
      f && $0 ~ "^      " h " \\|       done in " {d=$5; m=0; if (d ~ /ms$/) {sub(/ms$/, "", d); printf "%.1f", d/1000; exit} if (d ~ /m/) {split(d, p, "m"); m=p[1]; d=p[2]} sub(/s$/, "", d); printf "%.1f", m*60+d; exit}' "$out")
    T[$label,api_$h]=${T[$label,api_$h]:--}
  done
  T[$label,cmds]=1
  rm -f "$out"
  labels+=("$label")
  check_three
  echo "  $label: returned after ${T[$label,total]} s (h2 ${T[$label,h2]} s, h3 ${T[$label,h3]} s), all apiservers ready after ${T[$label,ready]} s"
}

scale_down() {
  "${kubectl_etcd[@]}" scale --replicas 1 >>"$log" 2>&1 || die "scale --replicas 1"
  check_one
}

# ---- by hand ----------------------------------------------------------------

# typed HOST SCRIPT: one command line an operator would type inside a host (a
# wait loop counts as one). Counted in a file: typed often runs in a subshell.
typedlog=/tmp/bench-scale.typed
typed() {
  local s rc=0
  printf '%s# %s\n' "$1" "${2//$'\n'/\\n}" >>"$typedlog"
  printf '[by hand on %s] %s\n' "$1" "$2" >>"$log"
  s=$(now)
  hx "$1" "$2" || rc=$?
  printf '  (%s s, exit %d)\n' "$(secs $(($(now) - s)))" "$rc" >>"$log"
  return $rc
}

# by_hand_join HOST: what kubeadm's etcd-join and the tool's join do, with
# etcdctl, kubeadm and sed, as a runbook says.
by_hand_join() {
  local h="$1" a out id ic manifest old api_start
  a=$(ip "$h")
  # 1. Add the learner (on a current member).
  out=$(typed h1 "etcdctl member add $h --learner --peer-urls=https://$a:2380") || die "member add $h"
  echo "$out" >>"$log"
  id=$(sed -n 's/^Member  *\([0-9a-f]*\) added.*/\1/p' <<<"$out") # "%16x": may start with spaces
  ic=$(sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' <<<"$out")
  [[ -n "$id" && -n "$ic" ]] || die "member add $h: no ID or ETCD_INITIAL_CLUSTER in its output"
  # 2. The etcd certificates: kubeadm's control-plane join made them (its
  #    certs phase runs even with etcd-join skipped); make any that are missing.
  out=$(typed "$h" 'cd /etc/kubernetes/pki/etcd && for f in server peer healthcheck-client; do test -s $f.crt -a -s $f.key || echo $f; done') ||
    die "$h: looking at certificates"
  if [[ -n "$out" ]]; then
    typed "$h" "mkdir -p /etc/kubernetes/kubeadm-etcd && cat >/etc/kubernetes/kubeadm-etcd/certs.yaml <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: $a}
nodeRegistration: {name: $h}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
EOF" || die "$h: kubeadm config for certs"
    for c in $out; do
      typed "$h" "kubeadm init phase certs etcd-$c --config /etc/kubernetes/kubeadm-etcd/certs.yaml" >>"$log" 2>&1 ||
        die "$h: kubeadm init phase certs etcd-$c"
    done
  fi
  # 3. An empty data dir: a member that left keeps its old data here (leave
  #    moved it into a hidden dir of the mount point, which etcd ignores);
  #    anything else is moved aside, never deleted.
  out=$(typed "$h" 'ls -A /var/lib/etcd | grep -v "^\." || true') || die "$h: looking at the data dir"
  if [[ -n "$out" ]]; then
    typed "$h" 'd=/var/lib/etcd/.by-hand-aside-$(date -u +%Y%m%dT%H%M%SZ) && mkdir -m 700 $d && find /var/lib/etcd -mindepth 1 -maxdepth 1 ! -name ".*" -exec mv -t $d {} +' ||
      die "$h: moving the old data aside"
  fi
  # 4. The static pod: h1's kubeadm manifest with this host's name and
  #    addresses, the cluster as member add printed it, and state existing.
  #    Written next to the manifests dir and renamed in (kubelet must never
  #    read half a file).
  manifest=$(typed h1 'cat /etc/kubernetes/manifests/etcd.yaml') || die "reading h1's etcd manifest"
  sed -e "s/$(ip h1 | sed 's/\./\\./g')/$a/g" -e "s/--name=h1\$/--name=$h/" \
    -e "s#--initial-cluster=.*#--initial-cluster=$ic\n    - --initial-cluster-state=existing#" <<<"$manifest" |
    typed "$h" 'cat >/etc/kubernetes/etcd.yaml.new && mv /etc/kubernetes/etcd.yaml.new /etc/kubernetes/manifests/etcd.yaml' ||
    die "$h: writing the etcd manifest"
  # 5. Wait until the learner started (it then has a name in the list).
  typed h1 "until etcdctl member list | grep -q '^$id, started, $h,'; do sleep 0.5; done" >>"$log" 2>&1 || die "$h: learner start"
  # 6. Promote, retried until the learner caught up with the leader.
  typed h1 "until etcdctl member promote $id; do sleep 0.5; done" >>"$log" 2>&1 || die "$h: promote"
  # 7. Point this host's kube-apiserver at its local member: note the running
  #    apiserver, edit --etcd-servers (renamed in), wait until kubelet has
  #    replaced it and the new one is ready.
  old=$(typed "$h" 'pgrep -x kube-apiserver || true')
  api_start=$(now)
  typed "$h" "sed 's#^    - --etcd-servers=.*#    - --etcd-servers=https://127.0.0.1:2379#' /etc/kubernetes/manifests/kube-apiserver.yaml >/etc/kubernetes/kube-apiserver.yaml.new && mv /etc/kubernetes/kube-apiserver.yaml.new /etc/kubernetes/manifests/kube-apiserver.yaml" ||
    die "$h: editing kube-apiserver.yaml"
  typed "$h" "while pgrep -x kube-apiserver | grep -qx '${old:-none}'; do sleep 0.5; done; until [[ \$(kubectl --server=https://127.0.0.1:6443 get --raw=/readyz 2>/dev/null) == ok ]]; do sleep 0.5; done" >>"$log" 2>&1 ||
    die "$h: kube-apiserver ready"
  api_secs=$(secs $(($(now) - api_start)))
}

by_hand() {
  local label="$1" s e hs ncmd
  : >"$typedlog"
  s=$(now)
  for h in h2 h3; do
    hs=$(now)
    by_hand_join "$h"
    T[$label,$h]=$(secs $(($(now) - hs)))
    T[$label,api_$h]=$api_secs
  done
  e=$(now)
  T[$label,total]=$(secs $((e - s)))
  ncmd=$(wc -l <"$typedlog")
  T[$label,cmds]=$ncmd
  labels+=("$label")
  apiservers_ready
  T[$label,ready]=$(secs $(($(now) - s)))
  check_three
  echo "  $label: ${T[$label,total]} s (h2 ${T[$label,h2]} s, h3 ${T[$label,h3]} s), $ncmd commands typed"
}

# ---- the run ----------------------------------------------------------------

echo "1 -> 3 members:"
tool "tool, fresh bed"
for r in $(seq 1 "$rounds"); do
  scale_down
  by_hand "by hand, round $r"
  scale_down
  tool "tool, round $r"
done

echo
printf '%-18s %10s %11s %7s %7s %9s %9s %8s\n' "1 -> 3 members" "returned s" "all ready s" "h2 s" "h3 s" "h2 api s" "h3 api s" "commands"
for l in "${labels[@]}"; do
  printf '%-18s %10s %11s %7s %7s %9s %9s %8s\n' "$l" "${T[$l,total]}" "${T[$l,ready]}" "${T[$l,h2]}" "${T[$l,h3]}" \
    "${T[$l,api_h2]}" "${T[$l,api_h3]}" "${T[$l,cmds]}"
done
echo "(returned: until the command (tool) or the last step (by hand) ended; all ready: until every"
echo " host's kube-apiserver answers /readyz ok. Rounds start from scale --replicas 1: h2's and h3's"
echo " apiservers read h1's member and are restarted onto their local one at the end. On the fresh"
echo " bed they already point at 127.0.0.1 and crash-loop until their member is there, so the tool"
echo " does not restart them and returns before they serve. Commands: lines typed inside the"
echo " hosts, a wait loop counts as one; h2/h3: time per host; api: of which pointing the host's"
echo " kube-apiserver at its local member until the new one is ready, mostly the old one's graceful"
echo " shutdown, which often runs into kubelet's 30 s grace period.)"

# docs/bench/scale.json: the tool and by hand from the same start (the rounds),
# medians over the rounds, with the commit they ran on.
med() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
tool_s=$(for r in $(seq 1 "$rounds"); do echo "${T[tool, round $r,total]}"; done | med)
hand_s=$(for r in $(seq 1 "$rounds"); do echo "${T[by hand, round $r,total]}"; done | med)
tool_ready=$(for r in $(seq 1 "$rounds"); do echo "${T[tool, round $r,ready]}"; done | med)
hand_ready=$(for r in $(seq 1 "$rounds"); do echo "${T[by hand, round $r,ready]}"; done | med)
ratio=$(awk -v a="$tool_s" -v b="$hand_s" 'BEGIN {printf "%.2f", a/b}')
mkdir -p "$(dirname "$OUT")"
{
  echo "{"
  echo "  \"commit\": \"$commit\","
  echo "  \"rounds\": $rounds,"
  echo "  \"toolSeconds\": $tool_s,"
  echo "  \"byHandSeconds\": $hand_s,"
  echo "  \"ratio\": $ratio,"
  echo "  \"toolAllReadySeconds\": $tool_ready,"
  echo "  \"byHandAllReadySeconds\": $hand_ready,"
  echo "  \"perRound\": ["
  for r in $(seq 1 "$rounds"); do
    sep=,; [[ $r == "$rounds" ]] && sep=
    echo "    {\"tool\": {\"total\": ${T[tool, round $r,total]}, \"h2\": ${T[tool, round $r,h2]:-null}, \"h3\": ${T[tool, round $r,h3]:-null}, \"apiH2\": \"${T[tool, round $r,api_h2]}\", \"apiH3\": \"${T[tool, round $r,api_h3]}\"}, \"byHand\": {\"total\": ${T[by hand, round $r,total]}, \"h2\": ${T[by hand, round $r,h2]}, \"h3\": ${T[by hand, round $r,h3]}, \"apiH2\": \"${T[by hand, round $r,api_h2]}\", \"apiH3\": \"${T[by hand, round $r,api_h3]}\"}}$sep"
  done
  echo "  ]"
  echo "}"
} >"$OUT"
echo "median over $rounds round(s) at $commit: tool $tool_s s, by hand $hand_s s, ratio $ratio -> $OUT"
