#!/usr/bin/env bash
# Regenerates the k8s.io staging `replace` block of a go.mod that requires
# k8s.io/kubernetes. k8s.io/kubernetes requires its ~33 staging modules at
# v0.0.0 and points them at ./staging with replaces that consumers ignore, so
# every importer must pin each one at the matching v0.X.Y itself.
# The list of staging modules is read from k8s.io/kubernetes's own go.mod
# (fetched through the Go module proxy), never typed by hand.
#
# Usage: hack/update-k8s-replace.sh [DIR_WITH_GO_MOD]   (default: repo root)
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$dir"
kver="$(go list -m -f '{{.Version}}' k8s.io/kubernetes 2>/dev/null || true)"
if [[ -z "$kver" ]]; then
  kver="$(sed -n 's|^[[:space:]]*k8s.io/kubernetes \(v[0-9.]*\).*|\1|p' go.mod | head -1)"
fi
[[ -n "$kver" ]] || { echo "update-k8s-replace: $dir/go.mod does not require k8s.io/kubernetes" >&2; exit 1; }
sver="v0.${kver#v1.}"
gomod="$(go mod download -json "k8s.io/kubernetes@$kver" | sed -n 's|.*"GoMod": "\(.*\)".*|\1|p')"
[[ -f "$gomod" ]] || { echo "update-k8s-replace: cannot read go.mod of k8s.io/kubernetes@$kver" >&2; exit 1; }
mods="$(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*|\1|p' "$gomod" | sort -u)"
[[ -n "$mods" ]] || { echo "update-k8s-replace: no staging modules found in $gomod" >&2; exit 1; }
args=()
for m in $mods; do args+=("-replace=$m=$m@$sver"); done
go mod edit "${args[@]}"
echo "update-k8s-replace: $(wc -w <<<"$mods") staging modules pinned at $sver for k8s.io/kubernetes $kver"
