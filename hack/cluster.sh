#!/usr/bin/env bash
# The local platform: a real single-node Kubernetes (etcd, kube-apiserver, controller-manager,
# scheduler, kubelet on containerd + runc + CNI bridge, kube-proxy) plus an S3 server (versitygw)
# and a MongoDB wire-protocol server (FerretDB), and Kueue (its manager on the host, see
# start_kueue). No Docker engine or registry is needed.
#
#   hack/cluster.sh up       start everything (idempotent: running parts are kept)
#   hack/cluster.sh down     stop everything and remove all state (.local/cluster)
#   hack/cluster.sh status   what runs, where, and the kubeconfig path
#   hack/cluster.sh running  exit 0 when the cluster is up
#   hack/cluster.sh kueue-up start Kueue on a cluster brought up before it was part of `up`
#   hack/cluster.sh restart-apiserver   stop and restart kube-apiserver (fault tests)
#   hack/cluster.sh stop-apiserver      stop kube-apiserver only (outage tests: start it again
#   hack/cluster.sh start-apiserver     with start-apiserver, in a finally, within seconds)
#
# All state lives in .local/cluster: certificates, data, logs (logs/*.log), pid files, kubeconfig,
# and env (endpoints and generated credentials). Pods reach host services through the bridge
# address $HOST_IP; the host reaches everything on 127.0.0.1 or $HOST_IP.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/bin
state=$repo/.local/cluster
pki=$state/pki
logs=$state/logs
pids=$state/pids

NODE=vidpipe-node
BRIDGE=vidpipe0
HOST_IP=10.88.0.1
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.0.0.0/24
API_PORT=6443
ETCD_PORT=12379
S3_PORT=9000
MONGO_PORT=27017
S3_BUCKET=vidpipe-media
NAMESPACE=vidpipe-jobs
# Kueue's manager on the host: its webhooks (admission and CRD conversion) on loopback, its health
# probe next to them; metrics are off (nothing scrapes them here).
KUEUE_WEBHOOK=127.0.0.1:9643
KUEUE_HEALTH=127.0.0.1:9644
KUEUE_METRICS_CERTS=/etc/kueue/metrics/certs
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy s3 mongo kueue)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pid_alive() { [ -f "$pids/$1.pid" ] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }

start() {  # name argv... ; runs in the background with its own log and pid file
  local name=$1; shift
  if pid_alive "$name"; then return 0; fi
  setsid "$@" >>"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$pids/$name.pid"
}

wait_until() {  # description timeout command...
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out waiting for $what; last log lines:"
      tail -n 25 "$logs"/*.log 2>/dev/null | tail -n 60 >&2
      exit 1
    fi
    sleep 0.5
  done
}

kubectl() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

# --- certificates ---------------------------------------------------------------------------

cert() {  # name subject [san]
  local name=$1 subj=$2 san=${3:-}
  [ -f "$pki/$name.crt" ] && return 0
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  local ext; ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$ext" "$pki/$name.csr"
}

kubeconfig() {  # file user cert-name server
  local file=$1 user=$2 name=$3 server=$4
  [ -f "$file" ] && return 0
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vidpipe
  cluster:
    certificate-authority: $pki/ca.crt
    server: $server
users:
- name: $user
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: vidpipe
  context: {cluster: vidpipe, user: $user}
current-context: vidpipe
EOF
  chmod 600 "$file"
}

make_pki() {
  mkdir -p "$pki" && chmod 700 "$pki"
  if [ ! -f "$pki/ca.crt" ]; then
    openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=vidpipe-local-ca" -days 365 \
      -out "$pki/ca.crt" 2>/dev/null
  fi
  local svc_ip=${SERVICE_CIDR%.*}.1
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$HOST_IP,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=vidpipe-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert node "/O=system:nodes/CN=system:node:$NODE" "IP:$HOST_IP,IP:127.0.0.1,DNS:$NODE"
  # Kueue: its client identity (bound to its ClusterRole by hack/kueue_manifests.py) and the
  # serving certificate of its webhooks, which kube-apiserver calls on loopback.
  cert kueue-manager "/CN=kueue-manager"
  cert kueue-webhook "/CN=kueue-webhook" "IP:127.0.0.1"
  if [ ! -f "$pki/sa.key" ]; then
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
  local server=https://127.0.0.1:$API_PORT
  kubeconfig "$state/kubeconfig" vidpipe-admin admin "$server"
  kubeconfig "$state/controller-manager.kubeconfig" controller-manager controller-manager "$server"
  kubeconfig "$state/scheduler.kubeconfig" scheduler scheduler "$server"
  kubeconfig "$state/kube-proxy.kubeconfig" kube-proxy kube-proxy "$server"
  kubeconfig "$state/node.kubeconfig" node node "$server"
  kubeconfig "$state/kueue.kubeconfig" kueue-manager kueue-manager "$server"
}

# --- host networking ------------------------------------------------------------------------

network_up() {
  # Another bridge on the pod network (podman's and buildah's default CNI network is also
  # 10.88.0.0/16; any `podman run` or `buildah run` without host networking creates
  # cni-podman0) puts a second route to the Pods first and the host loses them.
  local other
  while read -r _ other _; do
    [ "$other" = "$BRIDGE" ] && continue
    if [ "$other" = cni-podman0 ]; then
      ip link show cni-podman0 >/dev/null 2>&1 || continue  # one line per address
      echo "[cluster] removing podman's bridge cni-podman0: it claims the pod network $POD_CIDR" >&2
      ip link delete cni-podman0
    else
      echo "[cluster] $other holds an address in the pod network $POD_CIDR; remove it first" >&2
      return 1
    fi
  done < <(ip -o -4 addr show to "$POD_CIDR")
  # The bridge exists before any Pod so that the API server, S3 and MongoDB can listen on its
  # address; the CNI bridge plugin adopts it (same name, gateway address already set).
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -q "inet $HOST_IP/" || ip addr add "$HOST_IP/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  mkdir -p "$state/cni/net.d"
  cat >"$state/cni/net.d/10-vidpipe.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vidpipe",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$state/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_IP", "rangeStart": "10.88.1.0"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

network_down() {
  ip link del "$BRIDGE" 2>/dev/null || true
  # kube-proxy's chains are ours alone; remove them so no rule outlives the cluster.
  if [ -x "$bin/kube-proxy" ]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
}

# --- components -----------------------------------------------------------------------------

start_etcd() {
  start etcd etcd --name vidpipe --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
    --initial-cluster vidpipe=http://127.0.0.1:12380 --log-level warn
  wait_until etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --advertise-address "$HOST_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-preferred-address-types InternalIP \
    --allow-privileged=true --profiling=false --event-ttl 2h
  wait_until kube-apiserver 90 kubectl get --raw /readyz
}

start_controllers() {
  # Client rate limits above the upstream defaults (qps 20/burst 30, 5 Job syncs at once): with
  # them the Job controller creates ~3 Pods a second, so a burst of VideoJobs (the tests, the
  # 10,000-VideoJob scale bench) waits on the controller manager, not on the operator.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kube-api-qps 200 --kube-api-burst 400 --concurrent-job-syncs 20 \
    --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials=true --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 10257 --profiling=false
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259 --profiling=false
}

start_containerd() {
  mkdir -p "$state/containerd"
  cat >"$state/containerd/config.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
[grpc]
  address = "$state/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  # No registry is reachable: the sandbox image is our own, imported before the kubelet starts.
  sandbox_image = "localhost/pause:3.10"
  # Sandboxes ask for oom_score_adj -998, which these machines refuse even to root (no
  # CAP_SYS_RESOURCE): clamp requests to containerd's own score instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroups are v1 (hybrid) here: the kubelet uses the cgroupfs driver, so must runc.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
  start containerd containerd --config "$state/containerd/config.toml"
  wait_until containerd 30 ctr -a "$state/containerd/containerd.sock" version
}

start_kubelet() {
  mkdir -p "$state/kubelet"
  cat >"$state/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
# cgroups are v1 (hybrid) on these machines; containerd uses cgroupfs too.
cgroupDriver: cgroupfs
failSwapOn: false
# Images cannot be pulled again (no registry): never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
clusterDomain: cluster.local
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
serializeImagePulls: false
tlsCertFile: $pki/node.crt
tlsPrivateKeyFile: $pki/node.key
resolvConf: /etc/resolv.conf
EOF
  start kubelet "$bin/kubelet" --config "$state/kubelet/config.yaml" \
    --kubeconfig "$state/node.kubeconfig" --hostname-override "$NODE" --node-ip "$HOST_IP" \
    --root-dir "$state/kubelet/root"
}

start_kube_proxy() {
  cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack sysctls alone: a VM may refuse them and we need no tuning.
conntrack: {maxPerCore: 0}
EOF
  start kube-proxy "$bin/kube-proxy" --config "$state/kube-proxy.yaml"
}

start_services() {
  # Credentials are generated once per cluster and kept in env (mode 600). Hex secrets need no
  # escaping in a URL or a shell file.
  if [ ! -f "$state/env" ]; then
    local mongo_user mongo_password
    mongo_user=vidpipe-$(openssl rand -hex 4)
    mongo_password=$(openssl rand -hex 24)
    umask 077
    cat >"$state/env" <<EOF
VIDPIPE_S3_ENDPOINT_URL=http://$HOST_IP:$S3_PORT
VIDPIPE_S3_BUCKET=$S3_BUCKET
AWS_ACCESS_KEY_ID=vidpipe-$(openssl rand -hex 6)
AWS_SECRET_ACCESS_KEY=$(openssl rand -hex 24)
AWS_REGION=us-east-1
VIDPIPE_MONGO_USERNAME=$mongo_user
VIDPIPE_MONGO_PASSWORD=$mongo_password
VIDPIPE_MONGO_URL=mongodb://$mongo_user:$mongo_password@$HOST_IP:$MONGO_PORT/
VIDPIPE_JOBS_NAMESPACE=$NAMESPACE
KUBECONFIG=$state/kubeconfig
EOF
    umask 022
  fi
  # shellcheck disable=SC1091
  set -a; . "$state/env"; set +a
  [ -n "${VIDPIPE_MONGO_PASSWORD:-}" ] ||
    die "$state/env predates MongoDB authentication: run 'hack/cluster.sh down' first"
  mkdir -p "$state/s3" "$state/mongo"
  # MongoDB: FerretDB on SQLite with SCRAM authentication (its "new auth", independent of the
  # backend). Every command but the handshake ones (hello, ping, saslStart...) needs an
  # authenticated connection; the user is created at the first start (when the admin database
  # does not exist yet) from the generated credentials in env.
  local mongo_flags=(--handler sqlite --sqlite-url "file:$state/mongo/"
    --listen-addr "$HOST_IP:$MONGO_PORT" --state-dir - --debug-addr - --telemetry disable
    --log-level warn --test-enable-new-auth
    --setup-database admin --setup-username "$VIDPIPE_MONGO_USERNAME")
  ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
    start s3 "$bin/versitygw" --port "127.0.0.1:$S3_PORT" --port "$HOST_IP:$S3_PORT" posix "$state/s3"
  # The password reaches FerretDB through its environment, never argv (any local user can read
  # argv in /proc).
  local -x FERRETDB_SETUP_PASSWORD=$VIDPIPE_MONGO_PASSWORD
  start mongo "$bin/ferretdb" run "${mongo_flags[@]}"
  wait_until "S3 server" 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$S3_PORT"
  # An authenticated ping with the same user and password: the listener is up, the user exists.
  wait_until "MongoDB server" 30 "$bin/ferretdb" ping "${mongo_flags[@]}" --setup-timeout 5s
  # A bucket is a directory in versitygw's posix backend.
  mkdir -p "$state/s3/$S3_BUCKET"
}

bootstrap_objects() {
  kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE" >/dev/null
  # Credentials for Pods, from the same generated env.
  # shellcheck disable=SC1091
  set -a; . "$state/env"; set +a
  kubectl -n "$NAMESPACE" create secret generic vidpipe-s3 \
    --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
    --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

# --- Kueue ------------------------------------------------------------------------------------
# Why on the host and not as a Deployment: kube-apiserver runs on this host, so a webhook URL on
# loopback reaches the manager with no Service, no kube-proxy rule and no cluster DNS (none here),
# and the manager needs no image of its own (no registry; every image is built and imported by
# hack/images.sh). Its manifests come from the module it was built from (hack/tools.sh kueue),
# rewritten for that address by hack/kueue_manifests.py; its certificates from our CA.

kueue_manifests() {  # crds|webhooks
  "$repo/.venv/bin/python" "$repo/hack/kueue_manifests.py" "$1" "$bin/kueue-config" \
    "$pki/ca.crt" "$KUEUE_WEBHOOK"
}

kueue_crds_established() {
  local crd
  for crd in workloads clusterqueues localqueues resourceflavors workloadpriorityclasses; do
    [ "$(kubectl get crd "$crd.kueue.x-k8s.io" \
      -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ] || return 1
  done
}

kueue_ready() { curl -fsS "http://$KUEUE_HEALTH/readyz"; }

start_kueue() {
  local dir=$state/kueue
  mkdir -p "$dir/certs"
  cp "$pki/kueue-webhook.crt" "$dir/certs/tls.crt"
  cp "$pki/kueue-webhook.key" "$dir/certs/tls.key"
  cat >"$dir/config.yaml" <<EOF
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health: {healthProbeBindAddress: "$KUEUE_HEALTH"}
metrics: {bindAddress: "0"}
webhook: {host: "${KUEUE_WEBHOOK%:*}", port: ${KUEUE_WEBHOOK##*:}, certDir: "$dir/certs"}
# One manager: nothing to elect. Certificates are ours (make_pki), not Kueue's Secret.
leaderElection: {leaderElect: false}
internalCertManagement: {enable: false}
# Only Jobs that carry the queue-name label are Kueue's; everything else runs as before.
manageJobsWithoutQueueName: false
integrations: {frameworks: ["batch/job"]}
# Admission Fair Sharing: a ClusterQueue with admissionScope UsageBasedAdmissionFairSharing
# admits first from the LocalQueue (tenant) with the least recent usage. Sampled every second so
# a burst of short jobs is already ordered by it; usage halves every 10 minutes.
admissionFairSharing: {usageHalfLifeTime: 10m, usageSamplingInterval: 1s}
clientConnection: {qps: 100, burst: 200}
EOF
  kubectl get namespace kueue-system >/dev/null 2>&1 || kubectl create namespace kueue-system >/dev/null
  # Server-side apply: the Workload CRD is larger than client-side apply's annotation allows.
  kueue_manifests crds | kubectl apply --server-side --force-conflicts -f - >/dev/null
  wait_until "Kueue's CRDs" 60 kueue_crds_established
  # The visibility API (VisibilityOnDemand) is an aggregated API server, which this
  # kube-apiserver is not configured to front (no --requestheader-* / proxy client flags):
  # queue positions come from the Workload list instead (docs/queueing.md).
  # Kueue (v0.17 to v0.19) reads a metrics certificate from a fixed path whenever it does not manage its own
  # certificates, metrics server or not: it runs in a mount namespace of its own where that path
  # shows our certificate directory. The host keeps only the empty mount point (removed by down).
  mkdir -p "$KUEUE_METRICS_CERTS"
  start kueue unshare --mount --propagation private \
    sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' kueue-mount "$dir/certs" \
    "$KUEUE_METRICS_CERTS" "$bin/kueue" --config "$dir/config.yaml" \
    --kubeconfig "$state/kueue.kubeconfig" --feature-gates VisibilityOnDemand=false
  wait_until "Kueue manager" 90 kueue_ready
  kueue_manifests webhooks | kubectl apply --server-side --force-conflicts -f - >/dev/null
  # The local platform's queue: one flavour (the one node), CPU and memory quota for its jobs.
  kubectl apply --server-side --force-conflicts -f "$repo/hack/kueue/queues.yaml" >/dev/null
}

node_ready() {
  [ "$(kubectl get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

default_sa() { kubectl -n default get serviceaccount default; }

up() {
  [ "$(id -u)" = 0 ] || die "run as root (containerd, kubelet and the bridge need it)"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl versitygw ferretdb kueue; do
    [ -x "$bin/$b" ] || die "$bin/$b is missing: run 'make tools'"
  done
  mkdir -p "$state" "$logs" "$pids"
  local t0=$SECONDS
  make_pki
  network_up
  start_services
  start_etcd
  start_apiserver
  start_controllers
  start_containerd
  log "importing images into containerd"
  "$repo/hack/images.sh" load
  start_kubelet
  start_kube_proxy
  wait_until "node $NODE Ready" 120 node_ready
  wait_until "service-account controller" 60 default_sa
  bootstrap_objects
  start_kueue
  log "up in $((SECONDS - t0))s; KUBECONFIG=$state/kubeconfig"
}

down() {
  # Kubelet first so it stops no longer-wanted Pods; then tear the runtime down under it.
  local name forward
  for forward in "$pids"/port-forward*.pid; do  # hack/platform.sh's supervised forwards
    if [ -e "$forward" ]; then stop "$(basename "$forward" .pid)"; fi
  done
  for name in kueue kube-proxy kubelet; do stop "$name"; done
  if [ -S "$state/containerd/containerd.sock" ] && pid_alive containerd; then
    local sock=$state/containerd/containerd.sock
    for t in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
  fi
  for name in containerd kube-scheduler kube-controller-manager kube-apiserver etcd mongo s3; do
    stop "$name"
  done
  # Shims outlive containerd by design; ours are the ones bound to our state directory.
  pkill -9 -f "containerd-shim-runc-v2 .*-address $state/containerd" 2>/dev/null || true
  if [ -d "$state" ]; then
    # Kubelet leaves volume mounts (tmpfs, emptyDir) behind when stopped: unmount before rm.
    grep -o " $state[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  network_down
  rmdir "$KUEUE_METRICS_CERTS" "${KUEUE_METRICS_CERTS%/*}" /etc/kueue 2>/dev/null || true
  rm -rf "$state"
  local left; left=$(leftovers)
  [ -z "$left" ] || die "processes left behind: $left"
  log "down"
}

stop() {
  local name=$1 pid
  [ -f "$pids/$name.pid" ] || return 0
  pid=$(cat "$pids/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pids/$name.pid"
}

leftovers() {
  # Any process still running one of our binaries or pointing at our state directory.
  pgrep -af "$state|$bin/" 2>/dev/null | grep -v -e "pgrep" -e "cluster.sh" | cut -c1-120 | tr '\n' ';' || true
}

status() {
  if [ ! -d "$state" ]; then echo "local cluster: not running (make cluster-up)"; return 0; fi
  echo "local cluster state: $state"
  for name in "${COMPONENTS[@]}"; do
    if pid_alive "$name"; then printf '  %-24s running (pid %s)\n' "$name" "$(cat "$pids/$name.pid")"
    else printf '  %-24s stopped\n' "$name"; fi
  done
  echo "  kube-apiserver          https://127.0.0.1:$API_PORT (Pods: https://$HOST_IP:$API_PORT)"
  echo "  S3 (versitygw)          http://127.0.0.1:$S3_PORT and http://$HOST_IP:$S3_PORT, bucket $S3_BUCKET"
  echo "  MongoDB (FerretDB)      mongodb://$HOST_IP:$MONGO_PORT/ (SCRAM; user and URL in env)"
  echo "  Kueue                   webhooks https://$KUEUE_WEBHOOK, ClusterQueue vidpipe (hack/kueue/queues.yaml)"
  echo "  credentials             $state/env"
  echo "  logs                    $logs/"
  echo
  echo "export KUBECONFIG=$state/kubeconfig"
  if pid_alive kube-apiserver; then kubectl get nodes -o wide 2>/dev/null || true; fi
}

running() { pid_alive kube-apiserver && pid_alive kubelet; }

restart_apiserver() {
  # For fault tests: the API server goes away and comes back while everything else keeps running.
  stop kube-apiserver
  start_apiserver
}

kueue_up() {
  # Kueue alone, on a cluster already up (started before Kueue was part of `up`): the missing
  # certificates and kubeconfig are made, the rest of the PKI is kept.
  running || die "the cluster is not running: hack/cluster.sh up"
  [ -x "$bin/kueue" ] || die "$bin/kueue is missing: run 'hack/tools.sh kueue'"
  make_pki
  start_kueue
}

case ${1:-} in
  up) up ;;
  kueue-up) kueue_up ;;
  running) running ;;
  restart-apiserver) restart_apiserver ;;
  stop-apiserver) stop kube-apiserver ;;
  start-apiserver) start_apiserver ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status|running|kueue-up|restart-apiserver|stop-apiserver|start-apiserver" >&2; exit 2 ;;
esac
