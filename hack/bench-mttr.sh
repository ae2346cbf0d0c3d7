#!/usr/bin/env bash
# MTTR after quorum loss, on one real 3-host kubeadm bed, in one run:
# from "2 of 3 hosts powered off" to "3 healthy voters with the latest write",
#   (1) with kubectl-etcd: recover --yes on h1, then join on h2 and h3;
#   (2) with kubectl-etcd's one command from the workstation, over SSH:
#       `kubectl etcd recover --ssh --yes` from the machine's root namespace
#       (surveys every host, recovers on h1, joins h2 and h3 as each comes
#       back); h2 and h3 are powered on when it says it waits for them;
#   (3) with etcd's documented manual procedure, scripted: etcd restarted once
#       with --force-new-cluster by hand (manifest edited), then on each
#       returning host: member add, stale data moved away, wait until started,
#       and kubeadm's manifest left as it was.
# The DB is first filled to >= 256 MiB with large values. RUNS rounds (default
# 3), each the tool, the SSH command, then the manual procedure; medians and every run go to
# docs/bench/mttr.json with the commit they ran on.
# Run as root, under the bed lock: flock -o /var/tmp/kubectl-etcd-bed.lock hack/bench-mttr.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FILL_MIB="${FILL_MIB:-280}"
RUNS="${RUNS:-3}"
OUT="${OUT:-docs/bench/mttr.json}"
commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- cmd pkg hack || echo -dirty)"
go build -o /tmp/kubectl-etcd-bench-testbed ./cmd/testbed
go build -o /tmp/kubectl-etcd-bench-plugin ./cmd/kubectl-etcd
tb() { /tmp/kubectl-etcd-bench-testbed --name benchmttr "$@"; }
log=/tmp/bench-mttr.log
: >"$log"
# On the way out, keep each host's etcd and kubelet view for a post-mortem.
postmortem() {
  for h in h1 h2 h3; do
    tb exec $h -- sh -c 'tail -n 60 /var/log/pods/kube-system_etcd-*/etcd/*.log; crictl ps -a 2>/dev/null | head -20' >"/tmp/bench-mttr-$h.log" 2>&1 || true
  done
  [[ -n "${KEEP_BED:-}" ]] || tb down >>"$log" 2>&1 || true
}
trap postmortem EXIT
tb up --subnet 10.99.34 --hosts 3 >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
E="etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key"
EC="$E --command-timeout=5s"
ex() { tb exec "$@" >>"$log" 2>&1; }
# ext: ex, each output line stamped with the seconds since the command began,
# so the log shows where a verb spends its time before its first step too.
ext() {
  local s=${EPOCHREALTIME/./} rc d
  tb exec "$@" 2>&1 | while IFS= read -r l; do
    d=$(( (${EPOCHREALTIME/./} - s) / 100000 )); printf '%4d.%ds %s\n' $((d / 10)) $((d % 10)) "$l"
  done >>"$log"
  rc=${PIPESTATUS[0]}
  return "$rc"
}
now() { date +%s%N; }
ms() { echo $(( ($(now) - $1) / 1000000 )); }

echo "filling etcd with ~${FILL_MIB} MiB of 1 MiB values ..."
tb exec h1 -- sh -c "head -c 786432 /dev/urandom | base64 -w0 > /var/lib/bench-value && for i in \$(seq 1 $FILL_MIB); do $EC put /bench/fill/\$i < /var/lib/bench-value >/dev/null || exit 1; done" >>"$log" 2>&1
size=$(tb exec h1 -- sh -c "$E endpoint status -w json" | sed -n 's/.*"dbSize":\([0-9]*\).*/\1/p')
echo "DB size: $(( size / 1048576 )) MiB"

# Every real control-plane host runs pods with a projected service-account
# token (kube-proxy, a CNI agent, any DaemonSet): kubelet treats their volumes
# differently after a restart than the static pods' hostPaths, and a recovery
# restarts kubelet. WORKLOAD=0 leaves them out (the bed alone has none).
workload="${WORKLOAD:-1}"
if [[ "$workload" == 1 ]]; then
  tb exec h1 -- sh -c 'cat > /tmp/bench-agent.yaml <<Y
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bench-node-agent, namespace: default}
spec:
  selector: {matchLabels: {app: bench-node-agent}}
  template:
    metadata: {labels: {app: bench-node-agent}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers:
      - {name: agent, image: localhost/testbed/toolbox:1, imagePullPolicy: Never, command: [sleep, "86400"]}
Y
kubectl apply -f /tmp/bench-agent.yaml' >>"$log" 2>&1
  for i in $(seq 1 120); do
    [[ "$(tb exec h1 -- kubectl get pods -l app=bench-node-agent --no-headers 2>/dev/null | grep -c Running)" == 3 ]] && break
    sleep 1
  done
  echo "a DaemonSet pod with a service-account token runs on each host"
fi

healthy3() { # 3 voting members, all healthy, and the latest write readable on every member
  local n ok got i h
  local key="$1" val="$2"
  for i in $(seq 1 600); do
    if tb exec h1 -- sh -c "$EC member list -w json" 2>/dev/null | grep -o '"isLearner":true' >/dev/null; then sleep 1; continue; fi
    n=$(tb exec h1 -- sh -c "$EC member list" 2>/dev/null | grep -cw started || true)
    ok=0
    for h in h1 h2 h3; do
      got=$(tb exec $h -- sh -c "$EC get --print-value-only $key" 2>/dev/null || true)
      [[ "$got" == "$val" ]] && ok=$((ok+1))
    done
    [[ "$n" == 3 && "$ok" == 3 ]] && return 0
    sleep 1
  done
  echo "never reached 3 healthy voters with $key=$val"; return 1
}

apisready() { # every host's kube-apiserver answers /readyz
  local ok i h
  for i in $(seq 1 600); do
    ok=0
    for h in h1 h2 h3; do
      tb exec $h -- kubectl --server=https://127.0.0.1:6443 --request-timeout=3s get --raw=/readyz >/dev/null 2>&1 && ok=$((ok+1))
    done
    [[ "$ok" == 3 ]] && return 0
    sleep 1
  done
  echo "the apiservers never all became ready"; return 1
}

breakquorum() { # LABEL: write the latest key, power off h2 and h3
  ex h1 -- sh -c "$EC put /bench/latest $1"
  tb power-off h2 >>"$log" 2>&1; tb power-off h3 >>"$log" 2>&1
}

secs() { printf '%d.%d' $(($1 / 1000)) $(( ($1 % 1000) / 100 )); } # ms -> s.d

# tool_run N: recover on h1, power h2/h3 on, join on each, until 3 healthy voters.
tool_run() {
  local n="$1" t0 t1
  breakquorum "tool-$n"
  t0=$(now)
  echo "== $(date +%T.%N) run $n, tool: recover on h1" >>"$log"
  ext h1 -- kubectl-etcd recover --yes
  t_rec=$(ms "$t0")
  tb power-on h2 >>"$log" 2>&1 & tb power-on h3 >>"$log" 2>&1; wait
  joins=()
  for h in h2 h3; do
    t1=$(now)
    echo "== $(date +%T.%N) run $n, tool: join on $h" >>"$log"
    ext $h -- kubectl-etcd join --endpoints=https://10.99.34.11:2379
    joins+=("$(secs "$(ms "$t1")")")
  done
  healthy3 /bench/latest "tool-$n"
  t_tool=$(ms "$t0")
  apisready
  t_api=$(ms "$t0")
  echo "run $n kubectl-etcd: 3 healthy voters with the latest write after $(secs "$t_tool") s (recover on h1: $(secs "$t_rec") s; joins ${joins[*]} s); all 3 apiservers ready after $(secs "$t_api") s"
}

# ssh_run N: one command from the workstation over SSH, until 3 healthy voters.
ssh_run() {
  local n="$1" t0 pid i out=/tmp/bench-mttr-ssh.out
  # The bed's addresses have no route from the machine's namespace: its
  # relay is the proxy command, as a bastion's would be.
  local ssh_dir=/var/tmp/kubectl-etcd-testbed/benchmttr/ssh
  breakquorum "ssh-$n"
  t0=$(now)
  echo "== $(date +%T.%N) run $n, ssh: kubectl etcd recover --ssh --yes" >>"$log"
  /tmp/kubectl-etcd-bench-plugin recover --ssh --yes --ssh-user root --ssh-key "$ssh_dir/id_ed25519" \
    --ssh-known-hosts "$ssh_dir/known_hosts" --hosts h1=10.99.34.11,h2=10.99.34.12,h3=10.99.34.13 \
    --ssh-proxy-command "/var/tmp/kubectl-etcd-testbed/benchmttr/bin/testbed --name benchmttr --root /var/tmp/kubectl-etcd-testbed dial %h %p" \
    --wait-for-hosts 5m >"$out" 2>&1 &
  pid=$!
  # Power h2 and h3 on once it waits for them, as the operator would.
  for i in $(seq 1 1200); do
    grep -q '^Waiting up to' "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  t_sshrec=$(ms "$t0")
  local p2 p3
  tb power-on h2 >>"$log" 2>&1 & p2=$!
  tb power-on h3 >>"$log" 2>&1 & p3=$!
  wait "$p2" "$p3"
  wait_ok=0
  wait "$pid" && wait_ok=1
  cat "$out" >>"$log"
  [[ "$wait_ok" == 1 ]] || { echo "recover --ssh failed:"; tail -30 "$out"; return 1; }
  healthy3 /bench/latest "ssh-$n"
  t_ssh=$(ms "$t0")
  apisready
  t_sshapi=$(ms "$t0")
  echo "run $n kubectl etcd recover --ssh: 3 healthy voters with the latest write after $(secs "$t_ssh") s (recovered, waiting for h2 and h3, after $(secs "$t_sshrec") s); all 3 apiservers ready after $(secs "$t_sshapi") s"
}

# manual_run N: etcd's op-guide: --force-new-cluster, then member add one by one.
manual_run() {
  local n="$1" t0
  breakquorum "manual-$n"
  t0=$(now)
  echo "== $(date +%T.%N) run $n, manual procedure" >>"$log"
  M=/etc/kubernetes/manifests/etcd.yaml
  ex h1 -- sh -c "mv $M /etc/kubernetes/etcd.yaml.manual && while pgrep -x etcd >/dev/null; do sleep 0.5; done && cp -a /var/lib/etcd/member /var/lib/etcd-backup-\$(date +%s)"
  ex h1 -- sh -c "sed 's|    - --data-dir=/var/lib/etcd|    - --data-dir=/var/lib/etcd\n    - --force-new-cluster|' /etc/kubernetes/etcd.yaml.manual > /etc/kubernetes/etcd.yaml.fnc && mv /etc/kubernetes/etcd.yaml.fnc $M"
  ex h1 -- sh -c "until $EC endpoint health >/dev/null 2>&1; do sleep 1; done"
  ex h1 -- sh -c "cp /etc/kubernetes/etcd.yaml.manual /etc/kubernetes/etcd.yaml.back && mv /etc/kubernetes/etcd.yaml.back $M && sleep 5 && until $EC endpoint health >/dev/null 2>&1; do sleep 1; done"
  m_rec=$(ms "$t0")
  tb power-on h2 >>"$log" 2>&1 & tb power-on h3 >>"$log" 2>&1; wait
  for h in h2 h3; do
    ip=10.99.34.1${h#h}
    # etcd refuses a voter add until every voter has been connected for 5 s
    # ("unhealthy cluster" right after the previous host started): retry, as
    # an operator would.
    for try in $(seq 1 60); do ex h1 -- sh -c "$EC member add $h --peer-urls=https://$ip:2380" && break; sleep 1; done
    # The stale member crash-loops (removed: 410); move its data away between restarts.
    ex $h -- sh -c "mv /var/lib/etcd/member /var/lib/etcd/.stale-\$(date +%s) 2>/dev/null; until $EC endpoint health >/dev/null 2>&1; do sleep 1; done"
  done
  healthy3 /bench/latest "manual-$n"
  t_man=$(ms "$t0")
  apisready
  m_api=$(ms "$t0")
  echo "run $n manual procedure: 3 healthy voters with the latest write after $(secs "$t_man") s (force-new-cluster on h1: $(secs "$m_rec") s); all 3 apiservers ready after $(secs "$m_api") s"
}

runs_json=()
for n in $(seq 1 "$RUNS"); do
  tool_run "$n"
  ssh_run "$n"
  manual_run "$n"
  runs_json+=("{\"toolSeconds\": $(secs "$t_tool"), \"sshSeconds\": $(secs "$t_ssh"), \"manualSeconds\": $(secs "$t_man"), \"sshRecoveredSeconds\": $(secs "$t_sshrec"), \"sshAPIServersReadySeconds\": $(secs "$t_sshapi"), \"recoverSeconds\": $(secs "$t_rec"), \"joinSeconds\": [$(IFS=,; echo "${joins[*]}")], \"toolAPIServersReadySeconds\": $(secs "$t_api"), \"manualForceNewClusterSeconds\": $(secs "$m_rec"), \"manualAPIServersReadySeconds\": $(secs "$m_api")}")
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
field() { printf '%s\n' "${runs_json[@]}" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" | median; }
mt=$(field toolSeconds); mm=$(field manualSeconds); mr=$(field recoverSeconds); msh=$(field sshSeconds)
mj=$(printf '%s\n' "${runs_json[@]}" | sed -n 's/.*"joinSeconds": \[\([0-9.,]*\)\].*/\1/p' | tr , '\n' | median)
ratio=$(awk -v a="$mt" -v b="$mm" 'BEGIN {printf "%.2f", a/b}')
sshratio=$(awk -v a="$msh" -v b="$mt" 'BEGIN {printf "%.2f", a/b}')
mkdir -p "$(dirname "$OUT")"
{
  echo "{"
  echo "  \"commit\": \"$commit\","
  echo "  \"dbMiB\": $(( size / 1048576 )),"
  echo "  \"daemonSetPodPerHost\": $([[ "$workload" == 1 ]] && echo true || echo false),"
  echo "  \"sshTarget\": \"sshSeconds within 10% of toolSeconds (the host-local path's machine time): sshVsTool <= 1.10\","
  echo "  \"median\": {\"toolSeconds\": $mt, \"sshSeconds\": $msh, \"sshVsTool\": $sshratio, \"manualSeconds\": $mm, \"ratio\": $ratio, \"recoverSeconds\": $mr, \"joinSeconds\": $mj},"
  echo "  \"runs\": ["
  for i in "${!runs_json[@]}"; do
    sep=,; [[ $i == $(( ${#runs_json[@]} - 1 )) ]] && sep=
    echo "    ${runs_json[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} >"$OUT"
echo "medians over $RUNS runs (DB $(( size / 1048576 )) MiB, commit $commit): tool $mt s, ssh $msh s (x$sshratio of tool), manual $mm s, ratio $ratio; recover $mr s, join $mj s -> $OUT"
