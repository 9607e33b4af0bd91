// The seed's random-question test: a ramp to 2000 virtual users and back, every VU asking for
// random questions with a short think time, under the seed's thresholds.
//
//   k6 run k6/random-question-test.js                                   # 9 stages of 2m: 18 min
//   k6 run --env API_BASE_URL=http://HOST/api k6/random-question-test.js
//   k6 run --env STAGE_DURATION=20s k6/random-question-test.js          # the same ramp, quicker
//
// Think time: uniform 0.1-1 s (mean ~0.55 s; THINK_MIN_S / THINK_MAX_S change it). Short enough
// that 2000 VUs offer ~3000 req/s at a few hundred ms of latency - above the seed's 2000 req/s
// target, so the run shows whether the stack holds it - and random, so that VUs started together
// do not keep arriving in lockstep waves.
// Environment: STAGE_DURATION (default 2m, as in the seed); the rest in lib/lbstack.js.

import http from 'k6/http';
import {
  apiBaseUrl, checkQuestion, durationFromEnv, instanceThresholds, seedThresholds, thinkTime,
} from './lib/lbstack.js';

const API = apiBaseUrl();
const STAGE = durationFromEnv('STAGE_DURATION', '2m');

// The seed's ramp, then down to 0 so the run ends with no request cut off mid-flight.
const TARGETS = [200, 500, 1000, 1500, 2000, 1000, 500, 100, 0];

export const options = {
  stages: TARGETS.map((target) => ({ duration: STAGE, target })),
  thresholds: Object.assign(seedThresholds(), instanceThresholds()),
};

export default function () {
  checkQuestion(http.get(`${API}/questions/random`, { tags: { endpoint: 'random_question' } }));
  thinkTime(0.1, 1.0);
}
