#!/usr/bin/env bash
# Builds Istio's pilot-agent, pilot-discovery and istioctl of the pinned commit
# under a versioned directory in $SEXTANT_CACHE/go, linked into
# $SEXTANT_CACHE/bin. istiod is the reference the parity suite and the
# side-by-side benchmark compare against, so it is built by default;
# SEXTANT_WITH_ISTIOD=0 skips it (make run does not need it).
set -euo pipefail
LOG_TAG=install-istio
SCRIPTS_DIR=$(cd "$(dirname "$0")" && pwd)
. "$SCRIPTS_DIR/lib-tools.sh"

# Istio tags (1.30.3) are not semver, so the module proxy serves Istio only as
# pseudo-versions, and the proxy this project can reach holds the complete
# dependency set for one of them: master at b01690e6db7d (2026-04-23), after
# the 1.30 branch cut and before 1.31.0-alpha.0. The release-1.30 and
# release-1.31 commits it lists need istio.io/api and go-control-plane
# versions it does not serve.
ISTIO_VERSION=${ISTIO_VERSION:-v0.0.0-20260423205519-b01690e6db7d}
ISTIO_LABEL=${ISTIO_LABEL:-master-20260423-b01690e6db7d}
# What Istio's own build stamps into a dev build of that commit (VERSION file
# 1.31, plus -dev), so `pilot-agent version` and the ISTIO_VERSION node
# metadata the agent sends are not "unknown".
ISTIO_BUILD_VERSION=${ISTIO_BUILD_VERSION:-1.31-dev}
ISTIO_GIT_REVISION=${ISTIO_GIT_REVISION:-b01690e6db7d311c144a1dc68d29e30fa490add8}
export GO_EXTRA_LDFLAGS="-X istio.io/istio/pkg/version.buildVersion=$ISTIO_BUILD_VERSION -X istio.io/istio/pkg/version.buildGitRevision=$ISTIO_GIT_REVISION -X istio.io/istio/pkg/version.buildStatus=Clean -X istio.io/istio/pkg/version.buildTag=$ISTIO_BUILD_VERSION"

# pilot-agent renders Envoy's bootstrap from Istio's template, which the proxyv2
# image ships at /var/lib/istio/envoy/envoy_bootstrap_tmpl.json. Keep the
# template of the same module version next to the binary, as that image does.
install_bootstrap_template() {
  local d=$1 tmpl=$1/share/envoy_bootstrap_tmpl.json dir
  [[ -f $tmpl ]] && return 0
  dir=$(go mod download -json "istio.io/istio@$ISTIO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -n $dir && -f $dir/tools/packaging/common/envoy_bootstrap.json ]] || die "Istio's envoy_bootstrap.json not found in istio.io/istio@$ISTIO_VERSION"
  mkdir -p "$d/share"
  cp "$dir/tools/packaging/common/envoy_bootstrap.json" "$tmpl.tmp.$$" && mv "$tmpl.tmp.$$" "$tmpl"
  log "bootstrap template: $tmpl"
}

install_agent() {
  local d=$SEXTANT_CACHE/go/istio-$ISTIO_LABEL/agent
  if ! is_installed "$d" pilot-agent; then
    go_wrapper_build "$d" istio.io/istio "$ISTIO_VERSION" -- istio.io/istio/pilot/cmd/pilot-agent
  fi
  install_bootstrap_template "$d"
  link_tool pilot-agent "$d/bin/pilot-agent"
}

# Next to pilot-discovery, from the same module version: Istio's own CRDs (the
# parity suite installs them, not Sextant's crds/) and the protobuf descriptors
# istiod is compiled with (scripts/xds-descriptors), which the parity suite and
# `sextant compare` decode xDS with.
install_istiod_share() {
  local d=$1 crds=$1/share/istio-crds.yaml desc=$1/share/xds-descriptors.binpb dir w
  [[ -f $crds && -f $desc ]] && return 0
  go_env
  dir=$(go mod download -json "istio.io/istio@$ISTIO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -n $dir && -f $dir/manifests/charts/base/files/crd-all.gen.yaml ]] || die "Istio's crd-all.gen.yaml not found in istio.io/istio@$ISTIO_VERSION"
  mkdir -p "$d/share"
  cp "$dir/manifests/charts/base/files/crd-all.gen.yaml" "$crds.tmp.$$" && chmod 644 "$crds.tmp.$$" && mv "$crds.tmp.$$" "$crds"
  w=$(mktemp -d "$d/share/.descriptors.XXXXXX")
  (
    set -e
    cd "$w"
    go mod init sextant.local/xds-descriptors >/dev/null 2>&1
    go mod edit -go="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/')"
    go mod edit -require="istio.io/istio@$ISTIO_VERSION"
    cp "$dir/go.sum" go.sum && chmod u+w go.sum
    cp "$SCRIPTS_DIR/xds-descriptors/main.go" main.go
    go build -trimpath -o xds-descriptors .
    ./xds-descriptors "$desc.tmp"
  ) || { rm -rf "$w"; die "building the xDS descriptor set failed"; }
  mv "$desc.tmp" "$desc"
  rm -rf "$w"
  log "istio CRDs and xDS descriptors: $d/share"
}

install_istiod() {
  local d=$SEXTANT_CACHE/go/istio-$ISTIO_LABEL/istiod
  if ! is_installed "$d" pilot-discovery istioctl; then
    go_wrapper_build "$d" istio.io/istio "$ISTIO_VERSION" -- \
      istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/istioctl/cmd/istioctl
  fi
  install_istiod_share "$d"
  link_tool pilot-discovery "$d/bin/pilot-discovery"
  link_tool istioctl "$d/bin/istioctl"
}

# The Istio module itself stays in the Go module cache: e2e/src/metrics-dashboard.test.ts
# reads Istio's control-plane dashboard and metric definitions from it, offline.
keep_istio_module() {
  go_env
  go mod download "istio.io/istio@$ISTIO_VERSION" || die "could not download istio.io/istio@$ISTIO_VERSION"
}

with_lock go-istio-agent install_agent
with_lock go-istio-module keep_istio_module
if [[ ${SEXTANT_WITH_ISTIOD:-1} == 1 ]]; then
  with_lock go-istio-istiod install_istiod
else
  log "pilot-discovery and istioctl skipped (SEXTANT_WITH_ISTIOD=0)"
fi
