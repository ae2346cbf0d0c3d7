#!/bin/bash
# PID 1 of one test-bed host. Started by the test bed as
#   nsenter --net=/run/netns/<host> unshare --mount --uts --pid --fork --mount-proc \
#           --propagation private --kill-child=SIGKILL bash hostinit.sh <hostname> <state-dir> <bin-dir>
# It gives the host its own filesystem view (overlays on /etc, /var/lib, /var/log, /home,
# tmpfs /run, ext4 bind mounts where containerd and etcd need a real disk), then
# plays systemd: keeps containerd and sshd running, and runs kubelet the way kubelet.service
# with kubeadm's 10-kubeadm.conf drop-in does. Killing this process (or the
# unshare parent) is a power cut: the kernel kills everything in the PID namespace.
set -euo pipefail
host="$1" state="$2" bindir="$3"
export PATH="$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
hostname "$host"

for d in etc var/lib var/log home; do
  mkdir -p "$state/overlay/$d/upper" "$state/overlay/$d/work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$state/overlay/$d/upper,workdir=$state/overlay/$d/work" "/$d"
done
mount -t tmpfs -o mode=0755 tmpfs /run
# containerd's overlay snapshotter and etcd want a real filesystem, not an overlay.
for d in etc/kubernetes var/lib/kubelet var/lib/containerd var/lib/etcd; do
  mkdir -p "$state/disk/$d" "/$d"
  mount --bind "$state/disk/$d" "/$d"
done
# kubelet writes these machine-wide sysctls unless they already hold its values:
# show it private files that do, so the real machine is never changed.
for f in vm/overcommit_memory kernel/panic kernel/panic_on_oops; do
  mount --bind "$state/sysctl/${f//\//.}" "/proc/sys/$f"
done

# The host's systemctl is the stand-in (systemctl.sh) for every caller, also
# one that does not have $bindir on its PATH: a host pod's process that
# chroots into /host (a detached restore restarts kubelet from there) would
# otherwise run the machine's real systemctl, which cannot reach this host's
# "systemd". The bind mount stays inside this host's mount namespace. (A
# machine without /usr/bin/systemctl has nothing such a caller could run.)
if [[ -e /usr/bin/systemctl ]]; then mount --bind "$bindir/systemctl" /usr/bin/systemctl; fi

mkdir -p /run/testbed /var/log/testbed
echo $$ >/run/testbed/init.pid

# supervise NAME CONDITION-FILE CMD...: restart CMD whenever it exits, as systemd's
# Restart=always does, while CONDITION-FILE exists and NAME is not stopped.
supervise() {
  local name="$1" cond="$2"; shift 2
  while [[ ! -e /run/testbed/shutdown ]]; do
    if [[ ( -z "$cond" || -e "$cond" ) && ! -e "/run/testbed/$name.stopped" ]]; then
      "$@" >>"/var/log/testbed/$name.log" 2>&1 &
      echo $! >"/run/testbed/$name.pid"
      wait $! || true
      rm -f "/run/testbed/$name.pid"
    fi
    # Restart=always after a crash (about 1 s here), but at once for
    # `systemctl start/restart`, which asks for it with NAME.start-now.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [[ -e "/run/testbed/$name.start-now" ]] && break
      sleep 0.1
    done
    rm -f "/run/testbed/$name.start-now"
  done
}

run_kubelet() {
  # Mirrors kubelet.service + 10-kubeadm.conf: flags from kubeadm-flags.env and
  # /etc/default/kubelet are re-read on every start, like EnvironmentFile=.
  local KUBELET_KUBEADM_ARGS="" KUBELET_EXTRA_ARGS=""
  [[ -f /var/lib/kubelet/kubeadm-flags.env ]] && . /var/lib/kubelet/kubeadm-flags.env
  [[ -f /etc/default/kubelet ]] && . /etc/default/kubelet
  if [[ -f /etc/testbed/kubelet-standalone ]]; then
    # A kubelet without a cluster: it runs the static pods of its manifests
    # dir only (first bootstrap of etcd, before any apiserver exists).
    # shellcheck disable=SC2086
    exec kubelet --config=/var/lib/kubelet/config.yaml $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
  fi
  # shellcheck disable=SC2086
  exec kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
    --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \
    $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
}
export -f run_kubelet

supervise containerd "" containerd --config /etc/containerd/config.toml &
supervise kubelet /var/lib/kubelet/config.yaml bash -c run_kubelet &
# The host's own sshd (the bed writes its config, host key and users before
# the first boot); sshd wants an absolute path and its privsep dir.
if [[ -f /etc/testbed/sshd_config ]]; then
  mkdir -p -m 0755 /run/sshd
  supervise sshd "" /usr/sbin/sshd -D -e -f /etc/testbed/sshd_config &
fi
touch /run/testbed/booted
# PID 1 must reap orphans; `wait` does that for the children we know, and the
# loop keeps bash collecting any others.
while true; do wait -n 2>/dev/null || sleep 1; done
