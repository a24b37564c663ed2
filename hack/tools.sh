#!/usr/bin/env bash
# Builds the pinned Go tools through the Go module proxy (no prebuilt download is reachable here),
# caches them under ~/.cache/vidpipe keyed by version, and links them into ./bin.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${VIDPIPE_CACHE:-$HOME/.cache/vidpipe}
mkdir -p "$cache/tools" "$repo/bin"
export CGO_ENABLED=0 GOFLAGS=-trimpath

HELM_VERSION=v3.19.5
VERSITYGW_VERSION=v1.8.0
FERRETDB_VERSION=$(sed -n 's/.*github.com\/FerretDB\/FerretDB \(v[0-9.]*\)$/\1/p' "$repo/hack/gotools/ferretdb/go.mod" | head -1)

build_install() {  # name version package
  local out="$cache/tools/$1-$2"
  if [ ! -x "$out" ]; then
    echo "go: building $1 $2 (first run on this machine only)" >&2
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp" go install "$3@$2"
    mv "$tmp/$(basename "$3")" "$out"; rm -rf "$tmp"
  fi
  ln -sfn "$out" "$repo/bin/$1"
}

build_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
build_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw

out="$cache/tools/ferretdb-$FERRETDB_VERSION"
if [ ! -x "$out" ]; then
  echo "go: building ferretdb $FERRETDB_VERSION (first run on this machine only)" >&2
  (cd "$repo/hack/gotools/ferretdb" && go build -o "$out.tmp" . && mv "$out.tmp" "$out")
fi
ln -sfn "$out" "$repo/bin/ferretdb"

k8s=$("$repo/hack/build-k8s.sh")
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sfn "$k8s/$c" "$repo/bin/$c"
done
