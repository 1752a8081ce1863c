#!/usr/bin/env bash
# Builds MOSN (the sidecar of SOFAMesh) under a versioned directory in
# $SEXTANT_CACHE/go, linked as $SEXTANT_CACHE/bin/mosn. The e2e tests run it
# against Sextant as an Istio xDS client.
#
# v1.6.1 is the newest v1.x the module proxy serves. MOSN's own main package
# (cmd/mosn/main) imports the seata transaction filter, whose dependency
# vimagination.zapto.org/byteio the proxy refuses; so the wrapper module gets a
# copy of that main package, taken from the downloaded module at build time,
# minus that one import line, plus MOSN's own replace directives (a dependency's
# replaces do not apply to the module that requires it). Nothing of MOSN is
# kept in this repository.
set -euo pipefail
LOG_TAG=install-mosn
. "$(dirname "$0")/lib-tools.sh"

MOSN_VERSION=${MOSN_VERSION:-v1.6.1}
SEATA_IMPORT='mosn.io/mosn/pkg/filter/stream/seata'

# WRAPPER_PRE_BUILD hook: WRAPPER_DIR MOSN_DIR MOSN_GOMOD.
mosn_wrapper() {
  local src=$1 moddir=$2 gomod=$3 main=$1/cmd/mosn
  [[ -d $moddir/cmd/mosn/main ]] || die "cmd/mosn/main not found in mosn.io/mosn@$MOSN_VERSION"
  mkdir -p "$main"
  cp "$moddir"/cmd/mosn/main/*.go "$main"/
  chmod u+w "$main"/*.go
  rm -f "$main"/*_test.go
  grep -q "\"$SEATA_IMPORT\"" "$main"/*.go || die "the seata import was not found in cmd/mosn/main (MOSN changed; update $0)"
  sed -i "\#\"$SEATA_IMPORT\"#d" "$main"/*.go
  local line n=0
  while read -r line; do
    [[ -n $line ]] || continue
    go mod edit -replace="$line"; n=$((n + 1))
  done < <(sed -n -E 's#^[[:space:]]*(replace[[:space:]]+)?([^[:space:]()]+)([[:space:]]+v[^[:space:]]+)?[[:space:]]+=>[[:space:]]+([^[:space:]]+)[[:space:]]+([^[:space:]]+)[[:space:]]*$#\2=\4@\5#p' "$gomod")
  log "wrapper: cmd/mosn/main without the seata filter, $n replace(s) from MOSN's go.mod"
}

install_mosn() {
  local d=$SEXTANT_CACHE/go/mosn-$MOSN_VERSION
  if ! is_installed "$d" mosn; then
    GO_EXTRA_LDFLAGS="-X main.Version=$MOSN_VERSION" WRAPPER_PRE_BUILD=mosn_wrapper \
      go_wrapper_build "$d" mosn.io/mosn "$MOSN_VERSION" -- ./cmd/mosn=mosn
  fi
  link_tool mosn "$d/bin/mosn"
}

with_lock go-mosn install_mosn
