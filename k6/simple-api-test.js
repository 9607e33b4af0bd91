// The seed's simple API test: each iteration asks for a random question and the API health,
// then thinks for about a second.
//
//   k6 run k6/simple-api-test.js                                   # 10 VUs for 1 minute
//   k6 run --vus 1000 --duration 5m k6/simple-api-test.js          # the seed's run
//   k6 run --vus 1000 --duration 5m --env API_BASE_URL=http://HOST/api k6/simple-api-test.js
//
// --vus and --duration on the command line replace the defaults below. Two requests per
// iteration and ~1 s of think time: 1000 VUs offer ~2000 req/s, the seed's throughput target.
// Environment: see lib/lbstack.js (API_BASE_URL, LB_INSTANCES, THINK_MIN_S, THINK_MAX_S).

import http from 'k6/http';
import {
  apiBaseUrl, checkHealth, checkQuestion, instanceThresholds, seedThresholds, thinkTime,
} from './lib/lbstack.js';

const API = apiBaseUrl();

export const options = {
  vus: 10,
  duration: '1m',
  thresholds: Object.assign(seedThresholds(), instanceThresholds()),
};

export default function () {
  checkQuestion(http.get(`${API}/questions/random`, { tags: { endpoint: 'random_question' } }));
  checkHealth(http.get(`${API}/ujian/health`, { tags: { endpoint: 'health' } }));
  thinkTime(0.8, 1.2);
}
