#!/usr/bin/env bash
# Builds the Kubernetes pieces the e2e tests run (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok, helm) with Go from the module proxy, each under
# a versioned directory in $SEXTANT_CACHE/go, linked into $SEXTANT_CACHE/bin.
# Idempotent: with everything cached it only checks the links.
set -euo pipefail
LOG_TAG=install-k8s
. "$(dirname "$0")/lib-tools.sh"

# kubectl on the machine is v1.32; v1.33 is within kubectl's one-minor skew.
KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.33.13}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}

install_kubernetes() {
  local d=$SEXTANT_CACHE/go/kubernetes-$KUBERNETES_VERSION
  if ! is_installed "$d" kube-apiserver kube-controller-manager kube-scheduler; then
    go_wrapper_build "$d" k8s.io/kubernetes "$KUBERNETES_VERSION" --replace-staging -- \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler
  fi
  link_tool kube-apiserver "$d/bin/kube-apiserver"
  link_tool kube-controller-manager "$d/bin/kube-controller-manager"
  link_tool kube-scheduler "$d/bin/kube-scheduler"
}

install_etcd() {
  # The etcd server's main package is the root of go.etcd.io/etcd/server/v3; its
  # go.mod replaces sibling modules by local path, so it needs a wrapper module.
  local d=$SEXTANT_CACHE/go/etcd-$ETCD_VERSION
  if ! is_installed "$d" etcd; then
    go_wrapper_build "$d" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" -- go.etcd.io/etcd/server/v3=etcd
  fi
  link_tool etcd "$d/bin/etcd"
}

# The standalone kwok binary needs its Stage objects in a config file (kwokctl
# embeds defaults; kwok does not). Install the module's own default stages of
# the same version beside the binary: node initialize and heartbeat-with-lease,
# pod ready, complete and delete. scripts/cluster.sh concatenates them.
kwok_stages() {
  local tmp=$1 dir f
  dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  mkdir -p "$tmp/stages"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f $dir/kustomize/stage/$f ]] || die "kwok stage $f not found in $dir"
    cp "$dir/kustomize/stage/$f" "$tmp/stages/"
  done
  chmod -R u+w "$tmp/stages"
}

install_kwok() {
  local d=$SEXTANT_CACHE/go/kwok-$KWOK_VERSION
  if ! is_installed "$d" kwok stages/pod-ready.yaml; then
    WRAPPER_POST_BUILD=kwok_stages go_wrapper_build "$d" sigs.k8s.io/kwok "$KWOK_VERSION" -- sigs.k8s.io/kwok/cmd/kwok
  fi
  link_tool kwok "$d/bin/kwok"
}

install_helm() {
  local d=$SEXTANT_CACHE/go/helm-$HELM_VERSION
  if ! is_installed "$d" helm; then
    go_wrapper_build "$d" helm.sh/helm/v3 "$HELM_VERSION" -- helm.sh/helm/v3/cmd/helm
  fi
  link_tool helm "$d/bin/helm"
}

only=${1:-all}
for t in etcd kubernetes kwok helm; do
  if [[ $only == all || $only == "$t" ]]; then with_lock "go-$t" "install_$t"; fi
done
