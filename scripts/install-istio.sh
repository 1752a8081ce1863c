#!/usr/bin/env bash
# Builds Istio's pilot-agent (always) and, with SEXTANT_WITH_ISTIOD=1,
# pilot-discovery and istioctl (only for side-by-side benchmarks), under a
# versioned directory in $SEXTANT_CACHE/go, linked into $SEXTANT_CACHE/bin.
set -euo pipefail
LOG_TAG=install-istio
. "$(dirname "$0")/lib-tools.sh"

# Istio tags (1.30.3) are not semver, so the module proxy serves Istio only as
# pseudo-versions. This one is the release-1.30 branch at 9739e10eb9d7
# (2026-08-26, after the 1.30.3 tag).
ISTIO_VERSION=${ISTIO_VERSION:-v0.0.0-20260826214018-9739e10eb9d7}
ISTIO_LABEL=${ISTIO_LABEL:-1.30-9739e10eb9d7}

install_agent() {
  local d=$SEXTANT_CACHE/go/istio-$ISTIO_LABEL/agent
  if ! is_installed "$d" pilot-agent; then
    go_wrapper_build "$d" istio.io/istio "$ISTIO_VERSION" -- istio.io/istio/pilot/cmd/pilot-agent
  fi
  link_tool pilot-agent "$d/bin/pilot-agent"
}

install_istiod() {
  local d=$SEXTANT_CACHE/go/istio-$ISTIO_LABEL/istiod
  if ! is_installed "$d" pilot-discovery istioctl; then
    go_wrapper_build "$d" istio.io/istio "$ISTIO_VERSION" -- \
      istio.io/istio/pilot/cmd/pilot-discovery istio.io/istio/istioctl/cmd/istioctl
  fi
  link_tool pilot-discovery "$d/bin/pilot-discovery"
  link_tool istioctl "$d/bin/istioctl"
}

with_lock go-istio-agent install_agent
if [[ ${SEXTANT_WITH_ISTIOD:-0} == 1 ]]; then
  with_lock go-istio-istiod install_istiod
else
  log "pilot-discovery and istioctl skipped (set SEXTANT_WITH_ISTIOD=1 to build them)"
fi
