#!/bin/bash
# A stand-in for systemctl inside a test-bed host, driving hostinit.sh's
# supervisor. kubeadm calls `systemctl stop/start/restart/daemon-reload kubelet`
# and asks `status/is-active/is-enabled`; this answers like systemd would.
set -uo pipefail
cmd="${1:-}"; shift || true
svc="${1:-kubelet}"; svc="${svc%.service}"
pidf="/run/testbed/$svc.pid"
alive() { [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
stop() {
  touch "/run/testbed/$svc.stopped"
  if alive; then
    local pid; pid="$(cat "$pidf")"; kill "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  return 0
}
# start_wait: like systemd's start job for a Type=simple unit (kubelet.service),
# return once the supervisor has started a new main process (not the one in
# $1), or fail as systemd does when the job fails.
start_wait() {
  rm -f "/run/testbed/$svc.stopped"
  touch "/run/testbed/$svc.start-now"
  # Before kubeadm wrote its config, kubelet.service would only crash-loop;
  # the supervisor starts it once the file is there.
  [[ "$svc" != kubelet || -e /var/lib/kubelet/config.yaml ]] || return 0
  for _ in $(seq 1 100); do
    if alive && [[ "$(cat "$pidf")" != "${1:-}" ]]; then return 0; fi
    sleep 0.1
  done
  echo "Job for $svc.service failed: it did not start within 10s (see /var/log/testbed/$svc.log)." >&2
  return 1
}
case "$svc" in kubelet|containerd) ;; *) [[ "$cmd" == daemon-reload ]] || { echo "Unit $svc.service could not be found." >&2; exit 4; } ;; esac
case "$cmd" in
  daemon-reload|enable|disable|mask|unmask|reset-failed) exit 0 ;;
  stop) stop ;;
  start) if alive; then exit 0; fi; start_wait "" || exit 1 ;;
  restart|try-restart|reload-or-restart) old="$(cat "$pidf" 2>/dev/null || true)"; stop; start_wait "$old" || exit 1 ;;
  is-enabled) echo enabled ;;
  is-active) if alive || [[ ! -e "/run/testbed/$svc.stopped" ]]; then echo active; else echo inactive; exit 3; fi ;;
  status)
    echo "* $svc.service - $svc (test-bed supervisor)"
    echo "     Loaded: loaded (/etc/systemd/system/$svc.service; enabled)"
    if alive; then echo "     Active: active (running) pid $(cat "$pidf")"; else echo "     Active: inactive (dead)"; exit 3; fi ;;
  *) echo "systemctl (test bed): unsupported command: $cmd" >&2; exit 1 ;;
esac
