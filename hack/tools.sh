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
KWOK_VERSION=v0.8.0
KUEUE_VERSION=v0.19.2
FERRETDB_VERSION=$(cd "$repo/hack/gotools/ferretdb" && go list -m -f '{{.Version}}' github.com/FerretDB/FerretDB)

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

# KWOK (fake nodes and Pods) only for the operator scale bench: `hack/tools.sh kwok`. Not part of
# `make tools`, so `make test` never pays for a build it does not use.
if [ "${1:-}" = kwok ]; then
  build_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  exit 0
fi

# Kueue (sigs.k8s.io/kueue): the manager binary, plus its CRDs and webhook manifests from the same
# module (hack/cluster.sh applies them), cached together under one version. Its go.mod has no
# replace lines, so `go install` builds it; the version ldflag makes the binary report its release.
# The copy is made under a temporary name and renamed last: an interrupted build leaves nothing a
# later run could mistake for a finished one.
build_kueue() {
  local out="$cache/tools/kueue-$KUEUE_VERSION"
  if [ ! -x "$out/kueue" ]; then
    echo "go: building kueue $KUEUE_VERSION (first run on this machine only)" >&2
    local tmp; tmp=$(mktemp -d)
    GOBIN="$tmp/bin" go install \
      -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" \
      "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION"
    local src; src=$(go env GOMODCACHE)/sigs.k8s.io/kueue@$KUEUE_VERSION
    mkdir -p "$tmp/out/config"
    mv "$tmp/bin/kueue" "$tmp/out/kueue"
    cp -r "$src/config/components/crd/bases" "$tmp/out/config/crd"
    cp "$src/config/components/webhook/manifests.yaml" "$tmp/out/config/webhooks.yaml"
    cp "$src/config/components/rbac/role.yaml" "$tmp/out/config/role.yaml"
    cp "$src/config/components/rbac/manager_secrets_role.yaml" "$tmp/out/config/secrets_role.yaml"
    chmod -R u+w "$tmp/out"
    # It runs and has the flags hack/cluster.sh uses (--help exits 2, as Go's flag package does).
    local help; help=$("$tmp/out/kueue" --help 2>&1 || true)
    grep -q -- -feature-gates <<<"$help"
    rm -rf "$out"; mv "$tmp/out" "$out"; rm -rf "$tmp"
  fi
  ln -sfn "$out/kueue" "$repo/bin/kueue"
  ln -sfn "$out/config" "$repo/bin/kueue-config"
}
if [ "${1:-}" = kueue ]; then
  build_kueue
  exit 0
fi

# PostgreSQL under the scale bench's FerretDB (bench/postgres.py runs its own private server from
# these binaries; no service is used): Debian's package, installed once. Not built through Go.
if [ "${1:-}" = postgres ]; then
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      echo "PostgreSQL is missing: install Debian's postgresql package (as root: apt-get install postgresql)" >&2
      exit 1
    fi
    echo "apt: installing postgresql (first run on this machine only)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
  fi
  exit 0
fi

build_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
build_kueue
build_install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw

# FerretDB's own command (its SCRAM flags are not in the embeddable package). Upstream's build
# generates build/version/version.txt, which the module zip lacks and without which the command
# panics at start-up: build from a copy of the module (checked against our go.sum) with that
# file written. The cache key includes the pin, so a changed pin never reuses an older binary.
ferret_mod=$repo/hack/gotools/ferretdb
ferret_key=$(cat "$ferret_mod/go.mod" "$ferret_mod/go.sum" "$0" | sha256sum | cut -c1-12)
out="$cache/tools/ferretdb-$FERRETDB_VERSION-$ferret_key"
if [ ! -x "$out" ]; then
  echo "go: building ferretdb $FERRETDB_VERSION (first run on this machine only)" >&2
  (cd "$ferret_mod" && go mod download github.com/FerretDB/FerretDB)
  src=$(cd "$ferret_mod" && go list -m -f '{{.Dir}}' github.com/FerretDB/FerretDB)
  tmp=$(mktemp -d)
  cp -r "$src" "$tmp/ferretdb" && chmod -R u+w "$tmp/ferretdb"
  echo "$FERRETDB_VERSION" >"$tmp/ferretdb/build/version/version.txt"
  (cd "$tmp/ferretdb" && go build -o "$out.tmp" ./cmd/ferretdb)
  rm -rf "$tmp"
  # What we rely on must be in what was built: the version check passes, SCRAM flags exist.
  built_version=$("$out.tmp" --version)
  built_help=$("$out.tmp" --help)
  grep -qx "version: $FERRETDB_VERSION" <<<"$built_version"
  grep -q -- --test-enable-new-auth <<<"$built_help"
  mv "$out.tmp" "$out"
fi
ln -sfn "$out" "$repo/bin/ferretdb"

k8s=$("$repo/hack/build-k8s.sh")
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  ln -sfn "$k8s/$c" "$repo/bin/$c"
done
