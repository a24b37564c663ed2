#!/usr/bin/env bash
# Images without a registry: a Debian base made by debootstrap, our Dockerfile built on it with
# buildah, and everything imported into the local containerd's k8s.io namespace. Each image is
# cached as an OCI archive under ~/.cache/vidpipe/images keyed by a hash of its inputs.
#   hack/images.sh build     build (or reuse) every image archive
#   hack/images.sh load      import the archives into the cluster's containerd
#   hack/images.sh tag       the tag of the project images for the current sources
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${VIDPIPE_CACHE:-$HOME/.cache/vidpipe}/images
mkdir -p "$cache"
# One build at a time: two debootstraps or buildah commits racing corrupt each other.
exec 9>"$cache/.lock"
flock 9
state=$repo/.local/cluster
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,ffmpeg,ca-certificates
BASE_IMAGE=localhost/vidpipe-base:$SUITE
PROJECT_IMAGES=(processor api operator dispatcher)

log() { printf '[images] %s\n' "$*" >&2; }

hash_of() { (cd "$repo" && find "$@" -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

commit_archive() {  # container name archive
  buildah commit -q "$1" "$2" >/dev/null
  buildah push -q "$2" "oci-archive:$3.tmp:$2" >/dev/null
  mv "$3.tmp" "$3"
  buildah rm "$1" >/dev/null
}

build_pause() {
  local h; h=$(hash_of hack/images/pause)
  local out=$cache/pause-$h.tar
  if [ ! -f "$out" ]; then
    log "pause: building"
    local tmp; tmp=$(mktemp -d)
    (cd "$repo/hack/images/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/pause" .)
    local c; c=$(buildah from scratch)
    buildah copy -q "$c" "$tmp/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' "$c"
    commit_archive "$c" localhost/pause:3.10 "$out"
    rm -rf "$tmp"
  fi
  echo "$out"
}

build_stub() {
  # A busybox image for operator tests that need a Pod exiting with a chosen code, not ffmpeg.
  # Only Debian's busybox-static works in a FROM scratch image (the busybox package is dynamically
  # linked and cannot start there); hack/deps.sh installs it.
  local busybox=/bin/busybox
  [ -x "$busybox" ] || { log "stub: $busybox is missing (hack/deps.sh installs busybox-static)"; exit 1; }
  local h; h=$( (sha256sum "$busybox"; echo v2) | sha256sum | cut -c1-16)
  local out=$cache/stub-$h.tar
  if [ ! -f "$out" ]; then
    log "stub: building"
    local c; c=$(buildah from scratch)
    buildah copy -q "$c" "$busybox" /bin/busybox >/dev/null
    # Runs the binary inside the empty image: a dynamically linked busybox fails here, not in a test.
    buildah run --isolation chroot "$c" /bin/busybox --install -s /bin
    buildah run --isolation chroot "$c" /bin/sh -c 'exit 0'
    buildah config --cmd '["/bin/sh"]' "$c"
    commit_archive "$c" localhost/vidpipe-stub:latest "$out"
  fi
  echo "$out"
}

build_base() {
  local h; h=$(echo "$SUITE $BASE_PACKAGES v1" | sha256sum | cut -c1-16)
  local out=$cache/base-$h.tar
  if [ ! -f "$out" ]; then
    log "base: debootstrap $SUITE with $BASE_PACKAGES (first run only, a few minutes)"
    local root; root=$(mktemp -d)
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" \
      http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    # Trim what an image never needs.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc \
      "$root"/usr/share/man "$root"/usr/share/locale
    tar -C "$root" -cf "$root.tar" .
    local c; c=$(buildah from scratch)
    buildah add -q "$c" "$root.tar" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$c"
    commit_archive "$c" "$BASE_IMAGE" "$out"
    rm -rf "$root" "$root.tar"
  fi
  echo "$out"
}

ensure_base_in_buildah() {
  buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1 \
    || buildah pull -q "oci-archive:$(build_base)" >/dev/null
}

build_image() {  # name tag dockerfile build-arg inputs... (build-arg: KEY=VALUE or "")
  local name=$1 tag=$2 dockerfile=$3 arg=$4 h; shift 4
  local args=(); [ -z "$arg" ] || args=(--build-arg "$arg")
  h=$(echo "$(hash_of "$dockerfile" "$@") $tag $arg" | sha256sum | cut -c1-16)
  local out=$cache/$name-$h.tar
  if [ ! -f "$out" ]; then
    ensure_base_in_buildah
    log "$name: buildah bud (base $BASE_IMAGE)"
    # The host's CA bundle goes in as a build secret: pip inside the build then trusts whatever
    # TLS-intercepting proxy the host trusts, and the bundle never lands in a layer.
    buildah bud -q --pull=never --network host --layers --build-arg "BASE=$BASE_IMAGE" "${args[@]}" \
      --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt \
      -f "$repo/$dockerfile" -t "localhost/vidpipe-$name:$tag" "$repo" >/dev/null
    buildah push -q "localhost/vidpipe-$name:$tag" "oci-archive:$out.tmp:localhost/vidpipe-$name:$tag" >/dev/null
    mv "$out.tmp" "$out"
    # Keep only the newest archive of each image: old ones are never loaded again.
    find "$cache" -maxdepth 1 -name "$name-*.tar" ! -path "$out" -delete
  fi
  echo "$out"
}

project_tag() {
  # One content-derived tag for the project images: a changed source gives a new tag, so
  # `helm upgrade` rolls the Pods even though nothing is ever pulled.
  if [ -n "${VIDPIPE_IMAGE_TAG:-}" ]; then echo "$VIDPIPE_IMAGE_TAG"; return; fi
  echo "dev-$(hash_of Dockerfile common api operator processor dispatcher requirements | cut -c1-12)"
}

archives() {
  "$repo/hack/ui.sh"  # the console's hls.js, into the API package before its image is hashed
  build_pause
  build_stub
  build_base
  build_image smoke latest hack/images/smoke/Dockerfile "" requirements
  local tag; tag=$(project_tag)
  for n in "${PROJECT_IMAGES[@]}"; do
    # One Dockerfile for all: COMPONENT picks the entrypoint, packages and requirements.
    build_image "$n" "$tag" Dockerfile "COMPONENT=$n" common "$n" requirements
  done
}

load() {
  local sock=$state/containerd/containerd.sock list
  list=$(archives)  # an assignment, so a failed build stops here (set -e)
  local loaded=$state/containerd/loaded-archives
  touch "$loaded"
  for a in $list; do
    grep -qxF "$a" "$loaded" && continue  # this exact archive is already in containerd
    ctr -a "$sock" -n k8s.io images import --snapshotter overlayfs "$a" >/dev/null
    echo "$a" >>"$loaded"
  done
}

case ${1:-build} in
  build) archives ;;
  base) build_base ;;
  pause) build_pause ;;
  load) load ;;
  tag) project_tag ;;
  *) echo "usage: $0 build|base|pause|load|tag" >&2; exit 2 ;;
esac
