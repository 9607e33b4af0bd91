// Stub of k6's "k6" module: check() runs the checks and counts passes and fails by name.
import { state } from '../state.mjs';

export function check(value, sets, tags) {
  const checks = state().checks;
  let all = true;
  for (const name of Object.keys(sets)) {
    const test = sets[name];
    const passed = Boolean(typeof test === 'function' ? test(value) : test);
    const entry = checks[name] || (checks[name] = { passes: 0, fails: 0, tags: tags || {} });
    entry[passed ? 'passes' : 'fails'] += 1;
    all = all && passed;
  }
  return all;
}

export function sleep(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
    throw new Error(`sleep(${seconds}): not a non-negative number of seconds`);
  }
  if (state().initContext) {
    throw new Error('sleep() called in the init context');
  }
  state().sleeps.push(seconds);
}

export function group(name, fn) {
  return fn();
}

export function fail(message) {
  throw new Error(message);
}

export function randomSeed() {}

export default { check, sleep, group, fail, randomSeed };
