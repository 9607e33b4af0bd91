// Runs a k6 script under Node with stubbed k6 modules and prints, as JSON on stdout, what it
// would do: its exported options and the requests, checks, metric samples and sleeps of a few
// iterations of its default function (and setup/teardown/handleSummary when exported).
//
//   K6_CHECK_ENV='{"API_BASE_URL":"http://h/api"}' node k6/check/run.mjs k6/random-question-test.js [ITERATIONS]
//
// K6_CHECK_ENV is the script's __ENV (a JSON object; only what is given, nothing from the
// process environment); K6_CHECK_MODE the stubbed answers (see stubs/http.mjs). The script's
// console output goes to stderr. Exit 1, with the error on stderr, when the script fails to load
// or throws. Used by tests/unit/test_k6.py; needs Node >= 20.6 (module.register).
import { register } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { state } from './state.mjs';

const [scriptArg, iterationsArg] = process.argv.slice(2);
if (!scriptArg) {
  console.error('usage: node k6/check/run.mjs SCRIPT.js [ITERATIONS]');
  process.exit(2);
}
const iterations = Number(iterationsArg || 3);

const s = state();
s.mode = process.env.K6_CHECK_MODE || 'ok';
globalThis.__ENV = JSON.parse(process.env.K6_CHECK_ENV || '{}');
globalThis.__VU = 0; // 0 in the init context, as in k6
globalThis.__ITER = 0;
for (const level of ['log', 'info', 'warn', 'debug']) {
  console[level] = (...args) => process.stderr.write(`${args.join(' ')}\n`);
}

register('./loader.mjs', import.meta.url);

const script = await import(pathToFileURL(resolve(scriptArg)).href);
s.initContext = false;

const out = {
  exports: Object.keys(script).sort(),
  options: script.options === undefined ? null : script.options,
  setupData: null,
  teardown: false,
  summaryOutputs: null,
};
if (typeof script.default !== 'function') {
  throw new Error(`${scriptArg}: no default function exported`);
}

let data;
if (typeof script.setup === 'function') {
  data = await script.setup();
  out.setupData = data === undefined ? null : data;
}
for (let i = 0; i < iterations; i++) {
  globalThis.__VU = 1;
  globalThis.__ITER = i;
  await script.default(data);
}
globalThis.__VU = 0;
if (typeof script.teardown === 'function') {
  await script.teardown(data);
  out.teardown = true;
}
if (typeof script.handleSummary === 'function') {
  const result = await script.handleSummary({ metrics: {}, root_group: { checks: [], groups: [] }, options: {}, state: {} });
  out.summaryOutputs = Object.keys(result || {}).sort();
}

Object.assign(out, { requests: s.requests, checks: s.checks, metrics: s.metrics, sleeps: s.sleeps });
process.stdout.write(`${JSON.stringify(out)}\n`);
