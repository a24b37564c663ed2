#!/usr/bin/env bash
# Installs what the platform and its tests need on a Debian 12 machine: Debian packages, then a
# Python virtualenv pinned by requirements/constraints.txt. Idempotent and quiet when up to date.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
packages=(containerd runc containernetworking-plugins buildah debootstrap ffmpeg iptables
  conntrack socat etcd-server busybox-static mount openssl iproute2 procps psmisc curl ca-certificates python3-venv
  chromium nodejs)  # chromium: the console's browser tests (Playwright drives it, no download)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm vendors hls.js for the console (hack/ui.sh): part of some Node.js builds, Debian's own
# package where it is not.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "apt: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's containerd package may start its own daemon; ours runs separately on its own socket.
venv="$repo/.venv"
stamp="$venv/.requirements.sha"
want=$(cat "$repo"/requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "python: creating $venv (pinned requirements)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$repo/requirements/dev.txt" -c "$repo/requirements/constraints.txt"
  echo "$want" > "$stamp"
fi
