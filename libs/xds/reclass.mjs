import { readFileSync, readdirSync } from 'node:fs';
import { classify, formatReport, loadExpectedDifferences } from '/work/wt/parity/libs/xds/dist/compare/index.js';
const dir = '/tmp/parity-dump';
const results = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => { const d = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')); return { proxy: f.slice(0, -5), nodeId: d.node.id, differences: d.differences }; });
const r = classify(results, loadExpectedDifferences('/work/wt/parity/e2e/parity/expected-differences.yaml'));
console.log(formatReport(r, { showExpected: process.argv[2] === 'all', examples: 2, valueWidth: 400 }));
