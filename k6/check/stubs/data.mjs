// Stub of k6's "k6/data": SharedArray calls its factory once, in the init context.
import { state } from '../state.mjs';

export class SharedArray {
  constructor(name, factory) {
    if (!state().initContext) {
      throw new Error(`SharedArray ${name}: must be created in the init context`);
    }
    const data = factory();
    if (!Array.isArray(data)) {
      throw new Error(`SharedArray ${name}: the factory must return an array`);
    }
    return Object.freeze(data.slice());
  }
}

export default { SharedArray };
