// What the stubs record during a run.mjs run; one object shared through globalThis, so every
// stub sees the same state whatever URL it was loaded under.

export function state() {
  if (!globalThis.__k6check) {
    globalThis.__k6check = {
      initContext: true,
      mode: 'ok',
      requests: [],
      checks: {},
      metrics: {},
      sleeps: [],
    };
  }
  return globalThis.__k6check;
}
