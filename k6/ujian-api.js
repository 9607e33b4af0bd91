// The seed's "full load balancer test": VUs behave like exam takers. Each iteration opens the
// exam page (HTML, the heaviest page: 5 queries and a few ms of CPU), touches its session, reads
// three random questions with think time between them, and checks the API health.
// Per iteration: 1 /exam, 1 /api/session, 3 /api/questions/random, 1 /api/ujian/health.
//
//   k6 run k6/ujian-api.js                                  # to 1000 VUs, 4 stages of 2m
//   k6 run --env API_BASE_URL=http://HOST/api --env PEAK_VUS=2000 k6/ujian-api.js
//
// The session check is the load balancer's session test: each VU keeps its cookie, its
// requests land on different instances, and the counter must still go up every time (sessions
// live in Redis, not in an instance).
// Environment: PEAK_VUS (default 1000), STAGE_DURATION (default 2m); the rest in lib/lbstack.js.

import http from 'k6/http';
import {
  apiBaseUrl, checkExam, checkHealth, checkQuestion, checkSession, durationFromEnv,
  instanceThresholds, numberFromEnv, seedThresholds, siteUrl, thinkTime,
} from './lib/lbstack.js';

const API = apiBaseUrl();
const SITE = siteUrl();
const STAGE = durationFromEnv('STAGE_DURATION', '2m');
const PEAK = numberFromEnv('PEAK_VUS', 1000, { min: 1, integer: true });

export const options = {
  // an exam taker keeps their session cookie for the whole test (k6 clears cookies after every
  // iteration by default: each iteration would be a new session and the counter would restart)
  noCookiesReset: true,
  stages: [
    { duration: STAGE, target: Math.ceil(PEAK / 2) },
    { duration: STAGE, target: PEAK },
    { duration: STAGE, target: PEAK },
    { duration: STAGE, target: 0 },
  ],
  thresholds: Object.assign(seedThresholds(), {
    // the seed's p95 for each kind of request on its own, so the heavy page cannot hide
    // behind the many light API calls
    'http_req_duration{endpoint:exam}': ['p(95)<1500'],
    'http_req_duration{endpoint:random_question}': ['p(95)<1500'],
    'http_req_duration{endpoint:session}': ['p(95)<1500'],
    'http_req_duration{endpoint:health}': ['p(95)<1500'],
  }, instanceThresholds()),
};

// this VU's last session count (module state is per VU in k6)
let sessionCount = null;

export default function () {
  checkExam(http.get(`${SITE}/exam`, { tags: { endpoint: 'exam' } }));
  thinkTime(0.1, 1.0);

  const session = http.get(`${API}/session`, { tags: { endpoint: 'session' } });
  if (checkSession(session, sessionCount)) {
    sessionCount = session.json().count;
  }

  for (let i = 0; i < 3; i++) {
    thinkTime(0.1, 1.0);
    checkQuestion(http.get(`${API}/questions/random`, { tags: { endpoint: 'random_question' } }));
  }

  checkHealth(http.get(`${API}/ujian/health`, { tags: { endpoint: 'health' } }));
  thinkTime(0.1, 1.0);
}
