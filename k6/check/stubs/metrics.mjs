// Stub of k6's "k6/metrics": custom metrics record their samples; as in k6 they can only be
// created in the init context, with a valid name, and one name has one type.
import { state } from '../state.mjs';

const NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;

class Metric {
  constructor(type, name, isTime) {
    const s = state();
    if (!s.initContext) {
      throw new Error(`metric ${name}: custom metrics must be created in the init context`);
    }
    if (!NAME.test(String(name))) {
      throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    }
    const existing = s.metrics[name];
    if (existing && existing.type !== type) {
      throw new Error(`metric ${name} already exists as a ${existing.type}, not a ${type}`);
    }
    this.name = name;
    this.entry = existing || (s.metrics[name] = { type, isTime: Boolean(isTime), samples: [] });
  }

  add(value, tags) {
    if (state().initContext) {
      throw new Error(`metric ${this.name}: add() called in the init context`);
    }
    const number = typeof value === 'boolean' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isFinite(number)) {
      throw new Error(`metric ${this.name}: add(${value}) is not a number or boolean`);
    }
    this.entry.samples.push({ value: number, tags: tags || {} });
    return true;
  }
}

export class Counter extends Metric { constructor(name, isTime) { super('counter', name, isTime); } }
export class Gauge extends Metric { constructor(name, isTime) { super('gauge', name, isTime); } }
export class Rate extends Metric { constructor(name, isTime) { super('rate', name, isTime); } }
export class Trend extends Metric { constructor(name, isTime) { super('trend', name, isTime); } }

export default { Counter, Gauge, Rate, Trend };
