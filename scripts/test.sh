#!/usr/bin/env bash
# Runs every test tier under Node's built-in runner, in one invocation so that
# its summary is the closing line. `scripts/test.sh unit|e2e` runs one tier.
set -euo pipefail
cd "$(dirname "$0")/.."
tier=${1:-all}
files=()
if [[ $tier == all || $tier == unit ]]; then
  while IFS= read -r f; do files+=("$f"); done < <(find libs/*/dist apps/*/dist bench/dist -name '*.test.js' 2>/dev/null | sort)
fi
if [[ $tier == all || $tier == e2e ]]; then
  while IFS= read -r f; do files+=("$f"); done < <(find e2e/dist -name '*.test.js' 2>/dev/null | sort)
fi
if [[ ${#files[@]} -eq 0 ]]; then echo "no test files found (did the build run?)" >&2; exit 1; fi
# The other Node.js lines Sextant must run on (scripts/install-node.sh: `make tools`), first, so that the closing
# summary stays the main run's: Node 22 runs the unit tier; Node 24, the line the bench runs the daemon on and the
# image is built on, runs every tier selected (the e2e tests start the daemon with the Node running them). A failure
# there fails the whole run.
others=0
unit=()
for f in "${files[@]}"; do [[ $f == e2e/* ]] || unit+=("$f"); done
for major in 22 24; do
  if [[ $major == 24 ]]; then
    sel=("${files[@]}")
    if [[ $tier == all ]]; then what="every tier"; else what="the $tier tier"; fi
  else
    sel=("${unit[@]}")
    what="the unit tier"
  fi
  [[ ${#sel[@]} -gt 0 ]] || continue
  bin=${SEXTANT_CACHE:-$HOME/.cache/sextant}/bin/node$major
  if [[ ! -x $bin ]]; then
    # Under CI a missing runtime is a failure where the installer has one (Linux x64), never a skip.
    if [[ ${CI:-} == true && $(uname -s) == Linux && $(uname -m) == x86_64 ]]; then echo "Node $major is not installed at $bin; run make tools" >&2; exit 1; fi
    echo "# Node $major not installed ($bin; make tools-node): its run is skipped" >&2
    continue
  fi
  version=$("$bin" --version)
  echo "# $what on Node $version"
  if "$bin" --test --test-reporter=dot --test-concurrency="${TEST_CONCURRENCY:-2}" "${sel[@]}"; then echo "# $what passed on Node $version (${#sel[@]} files)"
  else echo "# $what FAILED on Node $version"; others=1; fi
done
status=0
node --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-2}" "${files[@]}" || status=$?
if [[ $others -ne 0 && $status -eq 0 ]]; then echo "# a run on another Node.js line failed (above)"; status=1; fi
exit $status
