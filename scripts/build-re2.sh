#!/usr/bin/env bash
# Builds libs/api/build/re2.node: the Node-API addon in libs/api/native that
# lets Sextant check regexes with RE2 itself (compile errors and program size,
# as Envoy does). RE2 and Abseil are compiled from the sources vendored in the
# npm package `re2` and the Node-API headers come from `node-api-headers`; both
# are fetched with `npm pack` (registry only) and checked against the pinned
# integrity below. The addon uses Node-API only, so one build serves every Node
# version >= 20. The result is cached under $SEXTANT_CACHE/re2/<key>, keyed by
# the pinned versions and the addon's sources; a rebuild takes a few minutes.
set -euo pipefail
LOG_TAG=build-re2
. "$(dirname "$0")/lib-tools.sh"
cd "$(dirname "$0")/.."

RE2_NPM_VERSION=1.24.0 # vendors RE2 2025-11-05
RE2_NPM_INTEGRITY=sha512-pBm6cMaOb0Yb0kg0Sfw/k4LwDMkPScb/NVd7GrEllDwfsPZstsZIo93A6Nn0wZuWJw3h57GdzkrOk81EofKY/g==
NAPI_HEADERS_VERSION=1.9.0
NAPI_HEADERS_INTEGRITY=sha512-2oNILP4jXwRB4ywnYKjVk1YyJ96n2D4EOVJO6S3oYZ5PtbJrw3Yt9TpAuX3nBLMuzn74rnfGQrv13pS9vC+YiA==
OUT=libs/api/build/re2.node

key=$( { echo "re2@$RE2_NPM_VERSION node-api-headers@$NAPI_HEADERS_VERSION"; cat libs/api/native/CMakeLists.txt libs/api/native/re2_addon.cc; } | sha256sum | cut -c1-16)
final=$SEXTANT_CACHE/re2/$key

# integrity FILE: npm's sha512-<base64> of a tarball.
integrity() { printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

# fetch NAME VERSION INTEGRITY DIR: npm pack NAME@VERSION into DIR and unpack it there (as DIR/package).
fetch() {
  local name=$1 version=$2 want=$3 dir=$4 tgz got
  tgz=$(cd "$dir" && npm pack "$name@$version" --silent --ignore-scripts | tail -n1)
  got=$(integrity "$dir/$tgz")
  [[ $got == "$want" ]] || die "$name@$version: integrity $got, expected $want"
  mkdir -p "$dir/$name" && tar -xzf "$dir/$tgz" -C "$dir/$name"
}

build() {
  [[ -f $final/re2.node ]] && return 0
  # A new machine may lack the build tools; as root, install them from Debian.
  if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
      log "installing cmake and g++ from Debian"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ >/dev/null
    fi
  fi
  command -v cmake >/dev/null || die "cmake is not on PATH (apt-get install cmake)"
  command -v c++ >/dev/null || die "a C++ compiler is not on PATH (apt-get install g++)"
  local tmp start; tmp=$(new_tmp_dir "$final"); start=$(date +%s)
  log "building the RE2 addon (re2@$RE2_NPM_VERSION sources) in $tmp"
  fetch re2 "$RE2_NPM_VERSION" "$RE2_NPM_INTEGRITY" "$tmp"
  fetch node-api-headers "$NAPI_HEADERS_VERSION" "$NAPI_HEADERS_INTEGRITY" "$tmp"
  if ! { cmake -S libs/api/native -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release \
           -DRE2_SOURCE_DIR="$tmp/re2/package/vendor" -DNODE_API_HEADERS="$tmp/node-api-headers/package/include" &&
         cmake --build "$tmp/build" --target re2_addon -j "$(nproc)"; } >"$tmp/build.log" 2>&1; then
    tail -n 30 "$tmp/build.log" >&2
    die "build failed; full log in $tmp/build.log"
  fi
  cp "$tmp/build/re2.node" "$tmp/re2.node"
  node -e "const r = require(process.argv[1]).check('a+'); if (!(r.programSize > 0)) process.exit(1)" "$tmp/re2.node" ||
    die "the built addon does not load"
  rm -rf "$tmp/build" "$tmp/re2" "$tmp/node-api-headers" "$tmp"/*.tgz
  printf 're2-npm=%s\nnode-api-headers=%s\nbuilt=%s\nseconds=%s\n' "$RE2_NPM_VERSION" "$NAPI_HEADERS_VERSION" \
    "$(date -u +%FT%TZ)" "$(( $(date +%s) - start ))" >"$tmp/INSTALL-INFO"
  commit_dir "$tmp" "$final"
  log "built $final/re2.node ($(( $(date +%s) - start ))s)"
}

with_lock re2 build
mkdir -p "$(dirname "$OUT")"
if ! cmp -s "$final/re2.node" "$OUT"; then
  cp "$final/re2.node" "$OUT.tmp.$$" && mv -f "$OUT.tmp.$$" "$OUT"
  log "installed $OUT"
fi
