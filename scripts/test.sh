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
# The unit tier on the other Node.js lines Sextant must run on (scripts/install-node.sh: `make tools`), first, so
# that the closing summary stays the main run's; a failure there fails the whole run.
others=0
if [[ $tier == all || $tier == unit ]]; then
  unit=()
  for f in "${files[@]}"; do [[ $f == e2e/* ]] || unit+=("$f"); done
  for major in 22 24; do
    bin=${SEXTANT_CACHE:-$HOME/.cache/sextant}/bin/node$major
    if [[ ! -x $bin ]]; then
      # Under CI a missing runtime is a failure where the installer has one (Linux x64), never a skip.
      if [[ ${CI:-} == true && $(uname -s) == Linux && $(uname -m) == x86_64 ]]; then echo "Node $major is not installed at $bin; run make tools" >&2; exit 1; fi
      echo "# Node $major not installed ($bin; make tools-node): its unit run is skipped" >&2
      continue
    fi
    echo "# the unit tier on Node $("$bin" --version)"
    if "$bin" --test --test-reporter=dot --test-concurrency="${TEST_CONCURRENCY:-2}" "${unit[@]}"; then echo "# the unit tier passed on Node $("$bin" --version) (${#unit[@]} files)"
    else echo "# the unit tier FAILED on Node $("$bin" --version)"; others=1; fi
  done
fi
status=0
node --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-2}" "${files[@]}" || status=$?
if [[ $others -ne 0 && $status -eq 0 ]]; then echo "# the unit tier failed on another Node.js line (above)"; status=1; fi
exit $status
