#!/usr/bin/env bash
# A local Kubernetes control plane on loopback, for e2e tests and by hand:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok
# (fake nodes; pods become Running with IPs without containers).
#
#   scripts/cluster.sh up [DIR]                 start (or reuse a healthy one); last stdout line: kubeconfig path
#   scripts/cluster.sh down [DIR]               stop everything started from DIR and remove its data
#   scripts/cluster.sh restart-apiserver [DIR]  kill and restart only kube-apiserver, wait until ready
#   scripts/cluster.sh status [DIR]             exit 0 when every component is running and healthy
#
# DIR defaults to ${SEXTANT_CLUSTER_DIR:-$SEXTANT_CACHE/cluster}. It holds
# pki/, kubeconfig, ports.env, pids/<name>.pid, logs/<name>.log, args/<name>.args
# and data/ (etcd). Binaries come from $SEXTANT_CACHE/bin (`make tools`).
# Environment: SEXTANT_KWOK_NODES (default 1) fake nodes; SEXTANT_POD_CIDR
# (default 198.18.0.1/15, the RFC 2544 benchmarking range: EndpointSlices
# reject loopback addresses, so pod IPs cannot be 127.x); SEXTANT_CLUSTER_TIMEOUT
# (default 120) seconds for each wait; SEXTANT_STOP_GRACE (default 3) seconds
# between SIGTERM and SIGKILL; SEXTANT_CLUSTER_OWNER_PID: when set, a watchdog
# runs `down` as soon as that process is gone (so a test runner killed by a
# signal leaves nothing behind).
#
# Nothing listens on pod IPs: tests must never send traffic to them. As a
# safety net, when run as root `up` adds an `unreachable` route for the default
# pod range, so a stray connection fails at once and no packet leaves the
# machine (SEXTANT_NO_POD_ROUTE=1 skips it).
set -euo pipefail
LOG_TAG=cluster
. "$(dirname "$0")/lib-tools.sh"

cmd=${1:-}
DIR=$(realpath -m -- "${2:-${SEXTANT_CLUSTER_DIR:-$SEXTANT_CACHE/cluster}}")
TIMEOUT=${SEXTANT_CLUSTER_TIMEOUT:-120}
NODES=${SEXTANT_KWOK_NODES:-1}
DEFAULT_POD_CIDR=198.18.0.1/15
POD_CIDR=${SEXTANT_POD_CIDR:-$DEFAULT_POD_CIDR}
SERVICE_CIDR=10.96.0.0/16
ISSUER=https://kubernetes.default.svc.cluster.local
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
KUBECTL=${KUBECTL:-kubectl}

usage() { sed -n '2,18p' "$0" >&2; exit 2; }

bin_of() {
  local p=$SEXTANT_BIN/$1
  [[ -x $p ]] || die "$1 is not installed at $p; run \`make tools\` (scripts/install-k8s.sh)"
  printf '%s\n' "$p"
}

# --- processes ---------------------------------------------------------------

pid_of() { cat "$DIR/pids/$1.pid" 2>/dev/null || true; }

# running PID: the process exists and is not a zombie (an exited child that
# nobody reaped yet counts as gone).
running() {
  local st
  st=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $st && $st != Z && $st != X ]]
}

# alive NAME: the recorded pid runs and is the process we started (its command
# line names our DIR), so a recycled pid is never mistaken for ours.
alive() {
  local pid; pid=$(pid_of "$1")
  [[ -n $pid ]] && running "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/"
}

# start NAME: run the binary with the arguments in args/NAME.args (one a line),
# detached in its own session, logging to logs/NAME.log.
start() {
  local name=$1 exe args=()
  exe=$(bin_of "$name")
  mapfile -t args <"$DIR/args/$name.args"
  log "starting $name (log: $DIR/logs/$name.log)"
  setsid "$exe" "${args[@]}" </dev/null >>"$DIR/logs/$name.log" 2>&1 &
  local pid=$! i
  echo "$pid" >"$DIR/pids/$name.pid"
  # Until the forked shell has exec'd, its command line is this script's, and
  # alive() would take it for a recycled pid: on a loaded machine a component
  # was reported dead before it started. Wait for the exec (at most 5 s).
  for ((i = 0; i < 100; i++)); do
    running "$pid" || break
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$DIR/" && break
    sleep 0.05
  done
}

# stop NAME...: SIGTERM each running component, give them $GRACE seconds
# together, then SIGKILL what is left. Nothing here needs a graceful shutdown
# (kube-apiserver can linger for many seconds after it stopped listening).
GRACE=${SEXTANT_STOP_GRACE:-3}
stop() {
  local name pid pids=() i left
  for name in "$@"; do
    if alive "$name"; then
      pid=$(pid_of "$name"); pids+=("$pid")
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < GRACE * 10; i++)); do
    left=0
    for pid in "${pids[@]}"; do running "$pid" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if running "$pid"; then log "pid $pid did not exit in ${GRACE}s; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
    running "$pid" && die "pid $pid is still running after SIGKILL"
  done
  for name in "$@"; do rm -f "$DIR/pids/$name.pid"; done
}

# wait_for WHAT CMD...: retry CMD until it succeeds, within $TIMEOUT seconds;
# fail early when a component it depends on ($WAIT_ALIVE) died.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT)) delay=0.1 c
  while ! "$@" >/dev/null 2>&1; do
    for c in ${WAIT_ALIVE:-}; do
      alive "$c" || { tail -n 30 "$DIR/logs/$c.log" >&2 || true; die "$c exited while waiting for $what (log: $DIR/logs/$c.log)"; }
    done
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep "$delay"
    delay=$(awk -v d="$delay" 'BEGIN { d *= 1.5; if (d > 1) d = 1; print d }')
  done
}

# --- health checks -----------------------------------------------------------

load_ports() { . "$DIR/ports.env"; }
https_ok() { # URL [curl auth args]: the body is exactly "ok"
  local url=$1; shift
  [[ "$(curl -sS --max-time 5 --cacert "$DIR/pki/ca.crt" "$@" "$url")" == ok ]]
}
admin_ok() { https_ok "$1" --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key"; }
etcd_ok() { curl -sS --max-time 5 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
apiserver_ok() { admin_ok "https://127.0.0.1:$APISERVER_PORT/readyz"; }
kcm_ok() { curl -sS --max-time 5 -k "https://127.0.0.1:$KCM_PORT/healthz" | grep -qx ok; }
scheduler_ok() { curl -sS --max-time 5 -k "https://127.0.0.1:$SCHEDULER_PORT/healthz" | grep -qx ok; }
kwok_ok() { curl -sS --max-time 5 "http://127.0.0.1:$KWOK_PORT/healthz" | grep -qx ok; }
kc() { "$KUBECTL" --kubeconfig "$DIR/kubeconfig" --request-timeout=10s "$@"; }
default_sa_ok() { kc get serviceaccount default -n default -o name; }
nodes_ready() {
  local i
  for ((i = 0; i < NODES; i++)); do
    [[ "$(kc get node "kwok-node-$i" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]] || return 1
  done
}

healthy() {
  [[ -f $DIR/ports.env && -f $DIR/kubeconfig ]] || return 1
  local c
  for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done
  load_ports
  etcd_ok && apiserver_ok && kcm_ok && scheduler_ok && kwok_ok
}

# --- set-up ------------------------------------------------------------------

free_ports() { # N: N distinct free loopback TCP ports
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

gen_pki() {
  local p=$DIR/pki
  mkdir -p "$p"
  log "generating certificates and the service-account key in $p"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=sextant-test-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  # leaf NAME SUBJECT EXTENSIONS
  leaf() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$p/$1.ext"
    openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
      -days 3650 -extfile "$p/$1.ext" -out "$p/$1.crt" 2>/dev/null
    rm -f "$p/$1.csr" "$p/$1.ext"
  }
  leaf apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  leaf admin "/O=system:masters/CN=sextant-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  chmod 600 "$p"/*.key
}

write_kubeconfig() {
  local p=$DIR/pki tmp=$DIR/kubeconfig.tmp
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sextant
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$p/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 "$p/admin.crt")
    client-key-data: $(base64 -w0 "$p/admin.key")
contexts:
- name: sextant
  context: {cluster: sextant, user: admin}
current-context: sextant
EOF
  chmod 600 "$tmp"
  mv "$tmp" "$DIR/kubeconfig"
}

write_args() { # NAME ARG...
  local name=$1; shift
  printf '%s\n' "$@" >"$DIR/args/$name.args"
}

write_all_args() {
  local p=$DIR/pki
  write_args etcd \
    --name=sextant --data-dir="$DIR/data/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="sextant=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --unsafe-no-fsync=true --quota-backend-bytes=2147483648 --log-level=warn
  write_args kube-apiserver \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    --client-ca-file="$p/ca.crt" \
    --service-account-issuer="$ISSUER" --api-audiences="$ISSUER" \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=RBAC --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --enable-priority-and-fairness=false --profiling=false \
    --cert-dir="$DIR/pki/apiserver-generated" --v=1
  write_args kube-controller-manager \
    --kubeconfig="$DIR/kubeconfig" \
    --authentication-kubeconfig="$DIR/kubeconfig" --authorization-kubeconfig="$DIR/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --cert-dir="$DIR/pki/kcm-generated" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
    --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --controllers='*' --profiling=false --v=1
  write_args kube-scheduler \
    --kubeconfig="$DIR/kubeconfig" \
    --authentication-kubeconfig="$DIR/kubeconfig" --authorization-kubeconfig="$DIR/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --cert-dir="$DIR/pki/scheduler-generated" \
    --leader-elect=false --profiling=false --v=1
  write_args kwok \
    --kubeconfig="$DIR/kubeconfig" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --config="$DIR/kwok.yaml" \
    --cidr="$POD_CIDR" --node-ip=127.0.0.1 \
    --node-lease-duration-seconds=40 \
    --server-address="127.0.0.1:$KWOK_PORT"
}

# Make the default pod range unreachable, so nothing sent to a fake pod IP
# leaves the machine.
guard_pod_cidr() {
  [[ $POD_CIDR == "$DEFAULT_POD_CIDR" && ${SEXTANT_NO_POD_ROUTE:-0} != 1 ]] || return 0
  if [[ $(id -u) == 0 ]] && command -v ip >/dev/null; then
    ip route show type unreachable 2>/dev/null | grep -q '^unreachable 198\.18\.0\.0/15' && return 0
    if ip route replace unreachable 198.18.0.0/15 2>/dev/null; then
      log "added route: unreachable 198.18.0.0/15 (fake pod IPs never leave the machine)"
    else
      log "warning: could not add an unreachable route for 198.18.0.0/15"
    fi
  else
    log "warning: not root; traffic to fake pod IPs (198.18.0.0/15) would follow the default route"
  fi
}

# kwok's stages (installed beside the binary by scripts/install-k8s.sh) in one config file.
write_kwok_config() {
  local stages f n=0
  stages=$(dirname "$(readlink -f "$(bin_of kwok)")")/../stages
  : >"$DIR/kwok.yaml"
  for f in "$stages"/*.yaml; do
    [[ -f $f ]] || continue
    { echo '---'; cat "$f"; } >>"$DIR/kwok.yaml"
    n=$((n + 1))
  done
  ((n > 0)) || die "no kwok stages in $stages; run scripts/install-k8s.sh"
}

node_manifest() {
  local i
  for ((i = 0; i < NODES; i++)); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: local-a
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
EOF
  done
}

# --- commands ----------------------------------------------------------------

# A detached watchdog that tears the cluster down once the owner process exits.
start_watchdog() {
  local owner=${SEXTANT_CLUSTER_OWNER_PID:-}
  [[ -n $owner ]] || return 0
  kill -0 "$owner" 2>/dev/null || die "SEXTANT_CLUSTER_OWNER_PID=$owner is not running"
  setsid bash -c 'while kill -0 "$1" 2>/dev/null && [[ -d "$3/pids" ]]; do sleep 1; done; exec bash "$2" down "$3"' \
    cluster-watchdog "$owner" "$(realpath "$0")" "$DIR/" </dev/null >>"$DIR/logs/watchdog.log" 2>&1 &
  echo $! >"$DIR/pids/watchdog.pid"
  log "watchdog (pid $!) stops this cluster when pid $owner exits"
}

cluster_down() {
  # The watchdog goes first, unless it is the one running this.
  if [[ "$(pid_of watchdog)" != "$$" ]]; then stop watchdog; else rm -f "$DIR/pids/watchdog.pid"; fi
  # Clients first, etcd last, so nothing logs a storm of errors while it goes.
  stop kwok kube-scheduler kube-controller-manager
  stop kube-apiserver
  stop etcd
  rm -rf "$DIR/data"
}

cluster_up() {
  mkdir -p "$DIR"
  if healthy; then
    log "cluster in $DIR is already running"
    printf '%s\n' "$DIR/kubeconfig"
    return 0
  fi
  local c
  for c in "${COMPONENTS[@]}"; do bin_of "$c" >/dev/null; done
  command -v "$KUBECTL" >/dev/null || die "kubectl is not on PATH"
  cluster_down
  rm -rf "$DIR/pki" "$DIR/args" "$DIR/pids" "$DIR/kubeconfig" "$DIR/ports.env"
  mkdir -p "$DIR/data" "$DIR/logs" "$DIR/pids" "$DIR/args"
  : >"$DIR/logs/cluster.log"
  # Whatever goes wrong from here on, nothing is left running.
  trap 'rc=$?; if ((rc != 0)); then log "start-up failed; stopping what was started"; cluster_down; fi' EXIT

  local ports; read -r -a ports <<<"$(free_ports 6)"
  cat >"$DIR/ports.env" <<EOF
ETCD_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
APISERVER_PORT=${ports[2]}
KCM_PORT=${ports[3]}
SCHEDULER_PORT=${ports[4]}
KWOK_PORT=${ports[5]}
EOF
  load_ports
  gen_pki
  write_kubeconfig
  write_all_args
  write_kwok_config
  guard_pod_cidr

  local t0=$SECONDS
  start etcd
  WAIT_ALIVE=etcd wait_for "etcd health on :$ETCD_PORT" etcd_ok
  start kube-apiserver
  WAIT_ALIVE="etcd kube-apiserver" wait_for "kube-apiserver /readyz on :$APISERVER_PORT" apiserver_ok
  start kube-controller-manager
  start kube-scheduler
  start kwok
  WAIT_ALIVE="kube-apiserver kube-controller-manager" wait_for "kube-controller-manager /healthz" kcm_ok
  WAIT_ALIVE="kube-apiserver kube-scheduler" wait_for "kube-scheduler /healthz" scheduler_ok
  WAIT_ALIVE="kube-apiserver kwok" wait_for "kwok /healthz" kwok_ok
  log "creating $NODES fake node(s)"
  node_manifest | kc apply -f - >&2
  WAIT_ALIVE="kube-apiserver kwok" wait_for "fake nodes Ready" nodes_ready
  WAIT_ALIVE="kube-apiserver kube-controller-manager" wait_for "ServiceAccount default/default" default_sa_ok
  start_watchdog
  trap - EXIT
  log "cluster up in $((SECONDS - t0))s: https://127.0.0.1:$APISERVER_PORT, kubeconfig $DIR/kubeconfig"
  printf '%s\n' "$DIR/kubeconfig"
}

restart_apiserver() {
  [[ -f $DIR/ports.env ]] || die "no cluster in $DIR"
  load_ports
  alive etcd || die "etcd is not running in $DIR"
  stop kube-apiserver
  start kube-apiserver
  WAIT_ALIVE="etcd kube-apiserver" wait_for "kube-apiserver /readyz on :$APISERVER_PORT" apiserver_ok
  log "kube-apiserver restarted"
}

case $cmd in
  up) cluster_up ;;
  down) cluster_down; log "cluster in $DIR stopped" ;;
  restart-apiserver) restart_apiserver ;;
  status) healthy ;;
  *) usage ;;
esac
