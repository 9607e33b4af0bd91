// Stub of k6's "k6/execution": the VU and iteration the run.mjs loop is at.
export default {
  get vu() {
    return { idInTest: globalThis.__VU, idInInstance: globalThis.__VU, iterationInScenario: globalThis.__ITER };
  },
  get scenario() {
    return { name: 'default', iterationInTest: globalThis.__ITER };
  },
  test: {
    abort(message) {
      throw new Error(`test.abort(${message || ''})`);
    },
  },
};
