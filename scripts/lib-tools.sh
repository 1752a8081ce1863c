# Shared helpers for scripts/install-*.sh. Source it; do not run it.
#
# Every tool is installed under a versioned directory in $SEXTANT_CACHE and
# linked as $SEXTANT_CACHE/bin/<name>. A versioned directory exists only once
# its install finished: builds go to a temp dir next to it and are renamed into
# place, so an interrupted build never looks cached.

SEXTANT_CACHE=${SEXTANT_CACHE:-$HOME/.cache/sextant}
export SEXTANT_CACHE
SEXTANT_BIN=$SEXTANT_CACHE/bin

log() { printf '[%s] %s\n' "${LOG_TAG:-tools}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Go settings for every build: never download another toolchain, let wrapper
# modules fill in go.sum, strip paths and symbols.
go_env() {
  export GOTOOLCHAIN=local
  export GOFLAGS="-mod=mod -buildvcs=false"
  export CGO_ENABLED=${CGO_ENABLED:-0}
  command -v go >/dev/null || die "go is not on PATH"
}
# GO_EXTRA_LDFLAGS (e.g. "-X pkg.var=value") is appended to -ldflags.

# link_tool NAME TARGET: point $SEXTANT_CACHE/bin/NAME at TARGET (atomically).
link_tool() {
  local name=$1 target=$2
  mkdir -p "$SEXTANT_BIN"
  if [[ "$(readlink "$SEXTANT_BIN/$name" 2>/dev/null)" == "$target" ]]; then return 0; fi
  ln -sfn "$target" "$SEXTANT_BIN/.$name.tmp.$$"
  mv -Tf "$SEXTANT_BIN/.$name.tmp.$$" "$SEXTANT_BIN/$name"
  log "linked $SEXTANT_BIN/$name -> $target"
}

# with_lock NAME CMD...: run CMD holding an exclusive lock, so two installs of
# the same tool (make -j, two shells) never race on the same directory.
with_lock() {
  local name=$1; shift
  mkdir -p "$SEXTANT_CACHE/.locks"
  (
    flock -w 3600 9 || die "timed out waiting for lock $name"
    "$@"
  ) 9>"$SEXTANT_CACHE/.locks/$name.lock"
}

# new_tmp_dir FINAL: a fresh temp dir beside FINAL (same filesystem, so the
# final rename is atomic). Stale temp dirs from killed runs are removed.
new_tmp_dir() {
  local final=$1 parent
  parent=$(dirname "$final")
  mkdir -p "$parent"
  rm -rf "$final".tmp.* 2>/dev/null || true
  mktemp -d "$final.tmp.XXXXXX"
}

# commit_dir TMP FINAL: move a finished install into place.
commit_dir() {
  local tmp=$1 final=$2
  rm -rf "$final"
  mv -T "$tmp" "$final"
}

# go_wrapper_build FINAL MODULE VERSION [--replace-staging] -- PKG[=NAME]...
# (set WRAPPER_PRE_BUILD=<function> to add packages or replaces to the wrapper
# module, WRAPPER_POST_BUILD=<function> to add files to the install before it is committed)
# Builds each main package PKG of MODULE@VERSION in a generated wrapper module
# (which is how modules with replace directives or local-path replaces get
# built: `go install pkg@version` refuses those). Binaries land in FINAL/bin.
# With --replace-staging, every `k8s.io/* => ./staging/...` replace of the
# upstream go.mod becomes `k8s.io/* => k8s.io/* v0.X.Y` (the tags published for
# Kubernetes vMAJOR.X.Y).
go_wrapper_build() {
  local final=$1 module=$2 version=$3; shift 3
  local staging=0
  if [[ ${1:-} == --replace-staging ]]; then staging=1; shift; fi
  [[ ${1:-} == -- ]] && shift
  go_env
  local tmp start rc; tmp=$(new_tmp_dir "$final"); start=$(date +%s)
  mkdir -p "$tmp/src" "$tmp/bin"
  set +e
  (
    set -e
    cd "$tmp/src"
    go mod init sextant.local/build-tools >/dev/null 2>&1
    # The go directive must be at least the dependency's; use the local toolchain's.
    go mod edit -go="$(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/')"
    go mod edit -require="$module@$version"
    local info gomod moddir
    info=$(go mod download -json "$module@$version") || die "go mod download $module@$version failed: $info"
    gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
    moddir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
    [[ -f $gomod && -d $moddir ]] || die "could not download $module@$version"
    # Start from the module's own go.sum: its dependencies are then verified
    # against the hashes upstream recorded (the checksum database behind this
    # machine's proxy does not know every pseudo-version).
    if [[ -f $moddir/go.sum ]]; then cp "$moddir/go.sum" go.sum; chmod u+w go.sum; fi
    if (( staging )); then
      local staged m minor=${version#v1.}   # v1.33.13 -> 33.13
      staged=$(sed -n -E 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' "$gomod" | sort -u)
      [[ -n $staged ]] || die "no staging replaces found in $gomod"
      for m in $staged; do go mod edit -replace="$m=$m@v0.$minor"; done
      log "wrapper module replaces $(wc -w <<<"$staged") k8s.io staging modules with v0.$minor"
    fi
    # Optional hook: shape the wrapper module before building (it gets the
    # wrapper dir, the module's download dir and its go.mod).
    if [[ -n ${WRAPPER_PRE_BUILD:-} ]]; then "$WRAPPER_PRE_BUILD" "$tmp/src" "$moddir" "$gomod"; fi
    local spec pkg name t0
    for spec in "$@"; do
      pkg=${spec%%=*}; name=${spec#*=}; [[ $name == "$spec" ]] && name=${pkg##*/}
      t0=$(date +%s)
      log "go build $pkg ($module@$version) -> $final/bin/$name (a cold build downloads modules and takes minutes)"
      go build -trimpath -ldflags="-s -w ${GO_EXTRA_LDFLAGS:-}" -o "$tmp/bin/$name" "$pkg"
      log "built $name in $(( $(date +%s) - t0 ))s"
    done
    # Optional hook: copy data files out of the module (it gets TMP and the wrapper dir).
    if [[ -n ${WRAPPER_POST_BUILD:-} ]]; then "$WRAPPER_POST_BUILD" "$tmp" "$tmp/src"; fi
  )
  rc=$?
  set -e
  if (( rc != 0 )); then rm -rf "$tmp"; die "building $module@$version failed (exit $rc)"; fi
  {
    echo "module=$module"
    echo "version=$version"
    echo "go=$(go env GOVERSION)"
    echo "ldflags=-s -w ${GO_EXTRA_LDFLAGS:-}"
    echo "built=$(date -u +%FT%TZ)"
    echo "seconds=$(( $(date +%s) - start ))"
    cp "$tmp/src/go.mod" "$tmp/go.mod.used"
  } >"$tmp/BUILD-INFO"
  rm -rf "$tmp/src"
  commit_dir "$tmp" "$final"
  log "installed $module@$version in $final ($(( $(date +%s) - start ))s)"
}

# is_installed FINAL NAME...: every named binary exists and is executable
# (a NAME with a slash is a file relative to FINAL that must exist).
is_installed() {
  local final=$1; shift
  [[ -f $final/BUILD-INFO ]] || return 1
  local n
  for n in "$@"; do
    if [[ $n == */* ]]; then [[ -e $final/$n ]] || return 1; else [[ -x $final/bin/$n ]] || return 1; fi
  done
}
