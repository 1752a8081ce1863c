# Sextant. The two set-up commands are `make run` and `make test`; everything
# they need is installed by the targets below, into node_modules/ and into
# $(SEXTANT_CACHE) (built binaries, by version, outside the clone).
SHELL := /bin/bash
export SEXTANT_CACHE ?= $(HOME)/.cache/sextant
NODE_MODULES_STAMP := node_modules/.package-lock.json

.PHONY: all deps gen re2 build crds run test test-unit test-e2e bench tools tools-envoy tools-k8s tools-istio tools-mosn tools-node cluster-up cluster-down clean

all: build

$(NODE_MODULES_STAMP): package.json package-lock.json $(wildcard libs/*/package.json apps/*/package.json e2e/package.json bench/package.json)
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_MODULES_STAMP)

gen: deps
	node libs/envoy/scripts/gen.mjs

# The RE2 addon libs/api uses to check regexes as Envoy does (cached by version; first build takes minutes).
re2: deps
	scripts/build-re2.sh

build: gen re2
	npx tsc -b tsconfig.json

run: build
	node apps/sextant/bin/sextant.js discovery --config-dir examples/bookinfo --ca-dir $(SEXTANT_CACHE)/run-ca

# Regenerates crds/ from the zod schemas in libs/api (a unit test fails when crds/ is stale).
crds: build
	node libs/api/scripts/gen-crds.mjs

# Real components the tests run against, cached by version under $(SEXTANT_CACHE).
tools: tools-envoy tools-k8s tools-istio tools-mosn tools-node
tools-envoy:
	scripts/install-envoy.sh
tools-k8s:
	scripts/install-k8s.sh
tools-istio:
	scripts/install-istio.sh
tools-mosn:
	scripts/install-mosn.sh
tools-node:
	scripts/install-node.sh

cluster-up: tools-k8s
	scripts/cluster.sh up
cluster-down:
	scripts/cluster.sh down

test: build tools
	scripts/test.sh

test-unit: build
	scripts/test.sh unit

test-e2e: build tools
	scripts/test.sh e2e

# `make bench BENCH=istiod` (or ca, webhook, abuse) runs one section; reports go to bench/results/.
# The istiod section needs `make tools` (cluster, pilot-discovery); ISTIOD_BENCH_* pick its sizes (docs/scale.md).
bench: build tools
	node bench/dist/main.js

clean:
	rm -rf libs/*/dist libs/api/build apps/*/dist e2e/dist bench/dist libs/envoy/src/gen libs/envoy/build
