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
case "$svc" in kubelet|containerd) ;; *) [[ "$cmd" == daemon-reload ]] || { echo "Unit $svc.service could not be found." >&2; exit 4; } ;; esac
case "$cmd" in
  daemon-reload|enable|disable|mask|unmask|reset-failed) exit 0 ;;
  stop) stop ;;
  start) rm -f "/run/testbed/$svc.stopped" ;;
  restart|try-restart|reload-or-restart) stop; rm -f "/run/testbed/$svc.stopped" ;;
  is-enabled) echo enabled ;;
  is-active) if alive || [[ ! -e "/run/testbed/$svc.stopped" ]]; then echo active; else echo inactive; exit 3; fi ;;
  status)
    echo "* $svc.service - $svc (test-bed supervisor)"
    echo "     Loaded: loaded (/etc/systemd/system/$svc.service; enabled)"
    if alive; then echo "     Active: active (running) pid $(cat "$pidf")"; else echo "     Active: inactive (dead)"; exit 3; fi ;;
  *) echo "systemctl (test bed): unsupported command: $cmd" >&2; exit 1 ;;
esac
