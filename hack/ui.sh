#!/usr/bin/env bash
# Vendors the console's one third-party file, hls.js, at build time (never at run time): the
# pinned release from the npm registry through npm itself, checked against its pinned
# integrity, cached under ~/.cache/vidpipe/npm and copied into the API package, where the API
# image's COPY picks it up. The copy is not committed (.gitignore); its licence is recorded in
# api/vidpipe_api/console/THIRD_PARTY.md and shipped beside it.
#   hack/ui.sh        vendor (idempotent; quiet when up to date)
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
HLS_VERSION=1.7.4
# `npm view hls.js@1.7.4 dist.integrity`: a changed tarball fails here, not in a browser.
HLS_INTEGRITY=sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==
cache=${VIDPIPE_CACHE:-$HOME/.cache/vidpipe}/npm
vendor=$repo/api/vidpipe_api/console/vendor
tarball=$cache/hls.js-$HLS_VERSION.tgz

integrity_of() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

if [ -f "$vendor/hls.min.js" ] && [ "$(cat "$vendor/.version" 2>/dev/null)" = "$HLS_INTEGRITY" ]; then
  exit 0
fi
mkdir -p "$cache" "$vendor"
if [ ! -f "$tarball" ] || [ "$(integrity_of "$tarball")" != "$HLS_INTEGRITY" ]; then
  command -v npm >/dev/null || { echo "ui: npm is missing (hack/deps.sh installs it)" >&2; exit 1; }
  echo "ui: fetching hls.js $HLS_VERSION through npm" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "hls.js@$HLS_VERSION" >/dev/null)
  got=$(integrity_of "$tmp/hls.js-$HLS_VERSION.tgz")
  if [ "$got" != "$HLS_INTEGRITY" ]; then
    echo "ui: hls.js $HLS_VERSION integrity mismatch: $got" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mv "$tmp/hls.js-$HLS_VERSION.tgz" "$tarball"
  rm -rf "$tmp"
fi
tar -xzf "$tarball" -C "$vendor" --strip-components=2 package/dist/hls.min.js
tar -xzf "$tarball" -C "$vendor" --strip-components=1 package/LICENSE
mv "$vendor/LICENSE" "$vendor/hls.js.LICENSE"
echo "$HLS_INTEGRITY" >"$vendor/.version"
