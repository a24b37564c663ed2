#!/usr/bin/env bash
# The whole test suite after lint: unit tests first (fast feedback, no servers), then everything
# else against the real local cluster. A cluster that was already up (make up) is left running;
# one started here is stopped again, pass or fail.
#
# The cluster tests spend much of their time waiting (Pods starting, processes restarting), so
# they run in two lanes at once (VIDPIPE_TEST_LANES=1: one after the other). The lanes split by
# directory and every test is in exactly one: the second lane is everything the first is not.
# Tests marked `disruptive` stop something the whole cluster shares (the API server), so they
# run last, alone.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
py=.venv/bin/python
pytest=("$py" -m pytest -p no:cacheprovider)
"${pytest[@]}" -m unit "$@"
if ! hack/cluster.sh running; then
  trap 'hack/cluster.sh down' EXIT
  hack/cluster.sh up
fi
hack/images.sh load

# The operator's tests alone take about as long as all the others (CI, 2026-11-30).
first_lane=(tests/e2e tests/integration/api tests/integration/processor tests/integration/dispatcher
  tests/integration/repo tests/security)
not_first=()
for dir in "${first_lane[@]}"; do not_first+=("--ignore=$dir"); done
selected=(-m "not unit and not disruptive" --durations=15)
if [[ ${VIDPIPE_TEST_LANES:-2} == 1 ]]; then
  "${pytest[@]}" "${selected[@]}" "$@"
else
  logs=$(mktemp -d)
  "${pytest[@]}" "${selected[@]}" "${first_lane[@]}" "$@" >"$logs/lane1.log" 2>&1 &
  lane1=$!
  "${pytest[@]}" "${selected[@]}" tests "${not_first[@]}" "$@" >"$logs/lane2.log" 2>&1 &
  lane2=$!
  status=0
  # 5: no test selected in that lane (a filter in "$@"), which is no failure.
  wait "$lane1" || { code=$?; [[ $code == 5 ]] || status=1; }
  wait "$lane2" || { code=$?; [[ $code == 5 ]] || status=1; }
  for lane in lane1 lane2; do
    echo "=================================== $lane ==================================="
    cat "$logs/$lane.log"
  done
  rm -rf "$logs"
  [[ $status == 0 ]] || exit 1
fi
"${pytest[@]}" -m disruptive "$@" || [[ $? == 5 ]]  # 5: a filter in "$@" left none
