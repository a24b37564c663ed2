#!/usr/bin/env bash
# The local platform on top of the local cluster: the chart installed with the locally built
# images, a first API key, and the API forwarded to http://127.0.0.1:8000.
#   hack/platform.sh up     install or upgrade (idempotent), then print what to do next
#   hack/platform.sh down   uninstall the release (the cluster stays; `make down` removes it)
# VIDPIPE_RELEASE, VIDPIPE_NAMESPACE and VIDPIPE_API_PORT choose another release and port.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
state=$repo/.local/cluster
bin=$repo/bin
RELEASE=${VIDPIPE_RELEASE:-vidpipe}
NAMESPACE=${VIDPIPE_NAMESPACE:-vidpipe}
PORT=${VIDPIPE_API_PORT:-8000}
export KUBECONFIG=$state/kubeconfig

log() { printf '[platform] %s\n' "$*" >&2; }
kubectl() { "$bin/kubectl" "$@"; }
helm() { "$bin/helm" "$@"; }

secrets() {  # namespace: the Secrets the chart expects, from the cluster's generated env
  # shellcheck disable=SC1091
  set -a; . "$state/env"; set +a
  kubectl get namespace "$1" >/dev/null 2>&1 || kubectl create namespace "$1" >/dev/null
  kubectl -n "$1" create secret generic vidpipe-s3 \
    --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$1" create secret generic vidpipe-mongo --from-literal=url="$VIDPIPE_MONGO_URL" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

install() {  # release namespace [extra helm args...]
  local release=$1 namespace=$2; shift 2
  # shellcheck disable=SC1091
  set -a; . "$state/env"; set +a
  secrets "$namespace"
  "$repo/hack/images.sh" load  # the images of the current sources (cached, imported once)
  # The CRD lives in the chart's crds/ folder, which Helm never upgrades: apply it ourselves so
  # a changed schema reaches an existing cluster too.
  kubectl apply --server-side --force-conflicts -f "$repo/crds/" >/dev/null
  helm upgrade --install "$release" "$repo/deploy/helm/vidpipe" --namespace "$namespace" \
    --set image.tag="$("$repo/hack/images.sh" tag)" --set image.pullPolicy=Never \
    --set s3.endpoint="$VIDPIPE_S3_ENDPOINT_URL" --set s3.bucket="$VIDPIPE_S3_BUCKET" \
    --set api.replicas=1 --set api.pdb.enabled=false \
    --wait --timeout 5m "$@" >/dev/null || { diagnose "$namespace"; return 1; }
}

diagnose() {  # namespace: why an install did not become ready
  log "install failed; Pods in $1:"
  kubectl -n "$1" get pods -o wide >&2 || true
  for pod in $(kubectl -n "$1" get pods -o name 2>/dev/null); do
    log "--- $pod"
    kubectl -n "$1" logs "$pod" --all-containers --tail 20 >&2 2>&1 || true
    kubectl -n "$1" describe "$pod" 2>/dev/null | sed -n '/^Events:/,$p' | tail -8 >&2 || true
  done
}

forward_pidfile() { echo "$state/pids/port-forward-$PORT.pid"; }

stop_forward() {
  local pidfile; pidfile=$(forward_pidfile)
  # The supervisor leads its own process group: TERM to the group stops it and its kubectl.
  if [ -f "$pidfile" ]; then kill -TERM -- "-$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
}

supervise_forward() {
  # kubectl port-forward follows one Pod and exits when that Pod goes (a restart, an OOM kill, a
  # rollout): start it again, so 127.0.0.1:$PORT reaches whichever API Pod is current.
  local child=""
  trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 0' TERM INT
  while true; do
    "$bin/kubectl" -n "$NAMESPACE" port-forward --address 127.0.0.1 "svc/$RELEASE-api" \
      "$PORT:80" >>"$state/logs/port-forward.log" 2>&1 </dev/null &
    child=$!
    wait "$child" || true
    sleep 1
  done
}

port_forward() {
  stop_forward
  VIDPIPE_RELEASE=$RELEASE VIDPIPE_NAMESPACE=$NAMESPACE VIDPIPE_API_PORT=$PORT \
    setsid "$0" forward >/dev/null 2>&1 </dev/null &
  echo $! >"$(forward_pidfile)"
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "the API did not answer on 127.0.0.1:$PORT; see $state/logs/port-forward.log"
  exit 1
}

api_key() {
  local file=$state/api-key
  if [ ! -s "$file" ]; then
    umask 077
    kubectl -n "$NAMESPACE" exec "deploy/$RELEASE-api" -- \
      python3 -m vidpipe_api.cli create-key --owner demo >"$file"
    umask 022
  fi
  cat "$file"
}

sample() {
  local file=$repo/.local/sample.mp4
  [ -s "$file" ] || ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30:duration=10 \
    -f lavfi -i sine=frequency=440:duration=10 -c:v libx264 -pix_fmt yuv420p -c:a aac \
    -shortest -y "$file"
  echo "$file"
}

up() {
  local t0=$SECONDS
  log "installing chart $RELEASE into namespace $NAMESPACE"
  install "$RELEASE" "$NAMESPACE"
  port_forward
  local key file
  key=$(api_key)
  file=$(sample)
  log "ready in $((SECONDS - t0))s"
  cat <<EOF

vidpipe is up: API on http://127.0.0.1:$PORT (docs: http://127.0.0.1:$PORT/docs)
Your API key (also in .local/cluster/api-key): $key

  export KUBECONFIG=$state/kubeconfig PATH=$bin:\$PATH
  curl -H "Authorization: Bearer \$(cat .local/cluster/api-key)" -F file=@$file http://127.0.0.1:$PORT/v1/videos
  kubectl -n $NAMESPACE get vj -w
  curl -H "Authorization: Bearer \$(cat .local/cluster/api-key)" http://127.0.0.1:$PORT/v1/jobs

EOF
}

down() {
  stop_forward
  if [ -f "$KUBECONFIG" ]; then helm uninstall "$RELEASE" -n "$NAMESPACE" --wait >/dev/null 2>&1 || true; fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  forward) supervise_forward ;;
  install) shift; install "$@" ;;
  *) echo "usage: $0 up|down|install RELEASE NAMESPACE [helm args]" >&2; exit 2 ;;
esac
