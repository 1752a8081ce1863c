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
exec node --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-2}" "${files[@]}"
