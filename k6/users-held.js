// The users-held probe of `lbstack bench` (bench/users.py): ujian-api.js's exam takers under its
// thresholds, on its ramp (to PEAK_VUS / 2, to PEAK_VUS, held, down to 0; each stage
// STAGE_DURATION), as one ramping-vus scenario whose graceful ramp-down and stop last
// GRACEFUL_STOP instead of k6's 30 s: a probe of an overloaded host ends within
// 4 x STAGE_DURATION + GRACEFUL_STOP, so the search can keep to its time budget.
//
//   k6 run --env API_BASE_URL=http://HOST/api --env PEAK_VUS=500 --env STAGE_DURATION=8s \
//          --env GRACEFUL_STOP=5s k6/users-held.js
//
// Environment: GRACEFUL_STOP (default 30s, k6's own); PEAK_VUS and STAGE_DURATION as in
// ujian-api.js; the rest in lib/lbstack.js.

import { durationFromEnv } from './lib/lbstack.js';
import { options as ujian } from './ujian-api.js';

export { default } from './ujian-api.js';

const GRACEFUL = durationFromEnv('GRACEFUL_STOP', '30s');

export const options = {
  scenarios: {
    exam_takers: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: ujian.stages,
      gracefulRampDown: GRACEFUL,
      gracefulStop: GRACEFUL,
    },
  },
  thresholds: ujian.thresholds,
  noCookiesReset: ujian.noCookiesReset,
};
