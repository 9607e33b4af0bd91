// Node module hooks for run.mjs: k6's built-in modules resolve to the stubs in ./stubs/, and the
// k6 scripts (plain .js files written as ES modules) load as ES modules.
// Test-only: k6 itself never reads this directory.

const STUBS = {
  k6: 'k6.mjs',
  'k6/http': 'http.mjs',
  'k6/metrics': 'metrics.mjs',
  'k6/data': 'data.mjs',
  'k6/execution': 'execution.mjs',
};

export async function resolve(specifier, context, nextResolve) {
  if (Object.prototype.hasOwnProperty.call(STUBS, specifier)) {
    return { url: new URL(`./stubs/${STUBS[specifier]}`, import.meta.url).href, shortCircuit: true };
  }
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    throw new Error(`k6 check: no stub for the k6 module "${specifier}": add one to k6/check/stubs/ and loader.mjs`);
  }
  if (/^https?:/.test(specifier)) {
    throw new Error(`k6 check: remote module "${specifier}": the scripts must not depend on the network to load`);
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.js')) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
