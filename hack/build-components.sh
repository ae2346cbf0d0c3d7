#!/usr/bin/env bash
# Builds, once per version, the real binaries the test bed runs, from Go
# modules (no binary downloads are possible or wanted):
#   kube: kubeadm kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl
#   etcd: etcd etcdctl etcdutl
#   etcd36: the same of etcd's previous minor (the bed's upgrade story)
#   krew: krew validate-krew-manifest (for make krew-check; not part of "all")
# All static (CGO_ENABLED=0) so they run in FROM-scratch images, and stamped
# with their real version. Results are cached outside the work tree, keyed by
# the build module's go.sum, so a fresh clone on the same machine reuses them;
# a missing cache only costs time.
#
# Usage: hack/build-components.sh kube|etcd|etcd36|krew|all
# Prints the directory holding the binaries of each group built.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KETCD_CACHE:-/var/cache/kubectl-etcd}"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"

mkdir -p "$cache"
# One build of a group at a time per cache: a second caller waits, then finds
# it done. One lock per group, so that the unit tests' etcd is not held up by
# a build of the Kubernetes components running alongside them (make test).
lock() { exec 9>"$cache/.build-$1.lock"; flock 9; }

key() { cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-12; }

build_kube() {
  lock kube
  local mod="$root/hack/build/kube"
  local ver; ver="$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  local out="$cache/bin/kube-$ver-$(key "$mod")"
  if [[ ! -f "$out/.complete" ]]; then
    local major minor; major="$(cut -d. -f1 <<<"${ver#v}")"; minor="$(cut -d. -f2 <<<"$ver")"
    local ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$ver -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
      ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    echo "build-components: building Kubernetes $ver components into $out (about 6-8 min cold)" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    (cd "$mod" && go build -ldflags "$ld" -o "$out.tmp/" \
      k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
    echo "$ver" >"$out.tmp/.complete"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  echo "$out"
}

build_etcd() {
  local group="${1:-etcd}"
  lock "$group"
  local mod="$root/hack/build/$group"
  local ver; ver="$(cd "$mod" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
  local out="$cache/bin/etcd-$ver-$(key "$mod")"
  if [[ ! -f "$out/.complete" ]]; then
    echo "build-components: building etcd $ver into $out (about 1 min cold)" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    # etcd stamps its version from go.etcd.io/etcd/api/v3/version itself.
    (cd "$mod" && go build -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3 \
      && go build -ldflags "-s -w" -o "$out.tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3 \
      && go build -ldflags "-s -w" -o "$out.tmp/etcdutl" go.etcd.io/etcd/etcdutl/v3)
    echo "$ver" >"$out.tmp/.complete"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  echo "$out"
}

build_krew() {
  lock krew
  local mod="$root/hack/build/krew"
  local ver; ver="$(cd "$mod" && go list -m -f '{{.Version}}' sigs.k8s.io/krew)"
  local out="$cache/bin/krew-$ver-$(key "$mod")"
  if [[ ! -f "$out/.complete" ]]; then
    echo "build-components: building krew $ver into $out (about 1 min cold)" >&2
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    # Stamped like krew's own release so it never takes itself for a dev build.
    (cd "$mod" && go build -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=$ver" -o "$out.tmp/" \
      sigs.k8s.io/krew/cmd/krew sigs.k8s.io/krew/cmd/validate-krew-manifest)
    echo "$ver" >"$out.tmp/.complete"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  echo "$out"
}

case "${1:-all}" in
  kube) build_kube ;;
  etcd) build_etcd ;;
  etcd36) build_etcd etcd36 ;;
  krew) build_krew ;;
  all) build_etcd; build_etcd etcd36; build_kube ;;
  *) echo "usage: $0 kube|etcd|etcd36|krew|all" >&2; exit 2 ;;
esac
