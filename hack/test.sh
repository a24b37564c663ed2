#!/usr/bin/env bash
# The whole test suite after lint: unit tests first (fast feedback, no servers), then everything
# else against the real local cluster. A cluster that was already up (make up) is left running;
# one started here is stopped again, pass or fail.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
py=.venv/bin/python
$py -m pytest -p no:cacheprovider -m unit "$@"
if ! hack/cluster.sh running; then
  trap 'hack/cluster.sh down' EXIT
  hack/cluster.sh up
fi
hack/images.sh load
$py -m pytest -p no:cacheprovider -m "not unit" "$@"
