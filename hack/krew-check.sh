#!/usr/bin/env bash
# Checks the release artifacts of `make dist` with krew's own code, offline:
#   1. validate-krew-manifest (krew's structural checks, selectors, overlap);
#   2. `krew install --manifest --archive` of every platform's archive
#      (KREW_OS/KREW_ARCH), which verifies the sha256, extracts, applies
#      `files`, links `bin` and must leave the LICENSE in the install dir;
#   3. the installed linux/amd64 (native) kubectl-etcd prints VERSION;
#   4. failure paths: a wrong sha256 and a tampered archive make krew refuse,
#      installing nothing; a manifest without sha256 fails validation.
# Usage: hack/krew-check.sh VERSION [DIST_DIR]   (after make dist VERSION=...)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${1:?usage: $0 VERSION [DIST_DIR]}"
dist="$(cd "${2:-$root/dist}" && pwd)"
tools="$("$root/hack/build-components.sh" krew)"
krew="$tools/krew" validate="$tools/validate-krew-manifest"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "krew-check: FAIL: $*" >&2; exit 1; }
# krew must not reach the network (no upgrade check) and the validator needs
# the file named after the plugin, as in krew-index (plugins/etcd.yaml).
export KREW_NO_UPGRADE_CHECK=1
manifest="$work/etcd.yaml"
cp "$dist/plugins.yaml" "$manifest"
start=$SECONDS

"$validate" -manifest "$manifest" -skip-install 2>"$work/validate.log" \
  || { cat "$work/validate.log" >&2; fail "validate-krew-manifest rejected dist/plugins.yaml"; }
grep -q "structural validation OK" "$work/validate.log" || fail "validator did not report structural validation OK"
echo "krew-check: validate-krew-manifest: OK"

# install ROOT OS ARCH MANIFEST ARCHIVE: krew install, offline, into ROOT.
install() {
  KREW_ROOT="$1" KREW_OS="$2" KREW_ARCH="$3" "$krew" install --manifest="$4" --archive="$5" >"$1.log" 2>&1
}

for plat in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
  os="${plat%/*}" arch="${plat#*/}"
  r="$work/root-${os}-${arch}"
  archive="$dist/kubectl-etcd_${version}_${os}_${arch}.tar.gz"
  [[ -f "$archive" ]] || fail "no archive $archive (run make dist VERSION=$version)"
  install "$r" "$os" "$arch" "$manifest" "$archive" || { cat "$r.log" >&2; fail "krew install of $plat"; }
  bin=kubectl-etcd; [[ "$os" == windows ]] && bin=kubectl-etcd.exe
  # kubectl finds plugin "etcd" as kubectl-etcd on PATH: krew's bin link.
  [[ -L "$r/bin/$bin" ]] || fail "$plat: krew made no $r/bin/$bin"
  [[ -f "$r/store/etcd/$version/$bin" && -f "$r/store/etcd/$version/LICENSE" ]] \
    || fail "$plat: installed store lacks $bin or LICENSE: $(ls "$r/store/etcd/$version" 2>&1)"
  [[ -f "$r/receipts/etcd.yaml" ]] || fail "$plat: no install receipt"
  echo "krew-check: krew install $plat: OK"
done

# The native one must run and say which version it is, with no cluster.
out="$(KUBECONFIG=/dev/null "$work/root-linux-amd64/bin/kubectl-etcd" version --client)" \
  || fail "installed kubectl-etcd version --client failed: $out"
grep -q "$version" <<<"$out" || fail "installed kubectl-etcd version --client printed no $version: $out"
echo "krew-check: installed kubectl-etcd version --client: $(head -1 <<<"$out")"

# Failure paths. A sha256 that is not the archive's: krew refuses, installs nothing.
archive="$dist/kubectl-etcd_${version}_linux_amd64.tar.gz"
good="$(sha256sum "$archive" | cut -d' ' -f1)"
bad="$(printf '%064d' 0)"
mkdir "$work/badsha" && sed "s/'$good'/'$bad'/" "$manifest" >"$work/badsha/etcd.yaml"
grep -q "'$bad'" "$work/badsha/etcd.yaml" || fail "could not plant a wrong sha256 (no '$good' in the manifest)"
r="$work/root-badsha"
if install "$r" linux amd64 "$work/badsha/etcd.yaml" "$archive"; then
  fail "krew installed with a wrong sha256"
fi
grep -q "checksum does not match" "$r.log" || { cat "$r.log" >&2; fail "wrong sha256: krew failed, but not on the checksum"; }
[[ ! -e "$r/bin/kubectl-etcd" && ! -e "$r/receipts/etcd.yaml" && ! -e "$r/store/etcd" ]] \
  || fail "wrong sha256: krew failed but left an install behind"
echo "krew-check: wrong sha256 refused: $(grep -o 'checksum does not match.*' "$r.log" | head -1 | cut -c1-90)"

# A tampered archive (one byte appended) under the right manifest: refused too.
cp "$archive" "$work/tampered.tar.gz" && printf 'x' >>"$work/tampered.tar.gz"
r="$work/root-tampered"
if install "$r" linux amd64 "$manifest" "$work/tampered.tar.gz"; then
  fail "krew installed a tampered archive"
fi
grep -q "checksum does not match" "$r.log" || { cat "$r.log" >&2; fail "tampered archive: krew failed, but not on the checksum"; }
[[ ! -e "$r/bin/kubectl-etcd" ]] || fail "tampered archive: krew failed but linked a binary"
echo "krew-check: tampered archive refused: OK"

# The validator must really validate: a manifest without sha256 fails.
mkdir "$work/nosha" && grep -v "sha256: '$good'" "$manifest" >"$work/nosha/etcd.yaml"
if "$validate" -manifest "$work/nosha/etcd.yaml" -skip-install 2>"$work/nosha.log"; then
  fail "validate-krew-manifest accepted a platform without sha256"
fi
grep -q "sha256" "$work/nosha.log" || { cat "$work/nosha.log" >&2; fail "manifest without sha256: validator failed, but not on the sha256"; }
echo "krew-check: manifest without sha256 rejected: OK"
echo "krew-check: all OK ($((SECONDS - start)) s)"
