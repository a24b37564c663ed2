#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries from the Go module proxy (no prebuilt download is reachable
# here) and caches them by version, so only the first run on a machine pays the build.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p; s/^\tk8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/gotools/kubernetes/go.mod" | head -1)
cache=${VIDPIPE_CACHE:-$HOME/.cache/vidpipe}
out="$cache/kubernetes/$version"
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for c in "${cmds[@]}"; do [ -x "$out/$c" ] || missing+=("$c"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
cd "$here/gotools/kubernetes"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
for c in "${missing[@]}"; do
  echo "building $c $version (cold builds take tens of minutes on 2 cores)..." >&2
  CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$out/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv "$out/$c.tmp" "$out/$c"
done
echo "$out"
