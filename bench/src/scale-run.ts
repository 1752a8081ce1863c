/** Runs only the scale benchmark and prints its JSON (for quick before/after comparisons). */
import { runScaleBench } from './scale.js';

const r = await runScaleBench();
process.stdout.write(JSON.stringify({ ...r, markdown: undefined }, null, 2) + '\n' + r.markdown);
