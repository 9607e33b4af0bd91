// Shared by the k6 scripts in this directory (k6 resolves relative imports itself).
//
// Environment (k6 run --env NAME=VALUE ...):
//   API_BASE_URL   the app's API root, default http://localhost/api
//   SITE_URL       the site root for pages outside /api (/exam); default API_BASE_URL without
//                  its trailing /api (or the URL's scheme://host[:port] when it has none)
//   LB_INSTANCES   how many app instances the balancer should spread over (app1..appN),
//                  default 5; each must answer at least once or the run fails; 0 = no such check
//   THINK_MIN_S, THINK_MAX_S   a VU's think time between requests, uniform in [min, max] seconds
//
// Written for k6's JavaScript runtime: ES modules, no Node APIs, no syntax newer than ES2017.

import { check, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';

export const DEFAULT_API_BASE_URL = 'http://localhost/api';
export const INSTANCE_HEADER = 'X-Lbstack-Instance';

// The seed's custom metric: the share of responses that failed any of their checks.
export const errors = new Rate('errors');
// One sample per response, tagged with the X-Lbstack-Instance that answered it ("none" when the
// answer came from nginx itself): with the per-instance thresholds below, the end-of-test summary
// shows how many requests each instance served.
export const instanceResponses = new Counter('lb_instance_responses');

function env(name) {
  const value = __ENV[name];
  return value === undefined || value === null ? '' : String(value).trim();
}

function stripSlashes(url) {
  return url.replace(/\/+$/, '');
}

export function apiBaseUrl() {
  const url = stripSlashes(env('API_BASE_URL') || DEFAULT_API_BASE_URL);
  if (!/^https?:\/\/[^/]+/.test(url)) {
    throw new Error(`API_BASE_URL must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  return url;
}

export function siteUrl() {
  const explicit = env('SITE_URL');
  if (explicit) {
    return stripSlashes(explicit);
  }
  const api = apiBaseUrl();
  if (/\/api$/.test(api)) {
    return api.slice(0, -'/api'.length);
  }
  return api.match(/^https?:\/\/[^/]+/)[0];
}

export function numberFromEnv(name, fallback, { min = 0, integer = false } = {}) {
  const raw = env(name);
  if (raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    const kind = integer ? 'an integer' : 'a number';
    throw new Error(`${name} must be ${kind} >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

// A k6 duration such as 30s, 2m, 1m30s, 500ms.
export function durationFromEnv(name, fallback) {
  const value = env(name) || fallback;
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(value)) {
    throw new Error(`${name} must be a k6 duration such as 30s, 2m or 1m30s, got ${JSON.stringify(value)}`);
  }
  return value;
}

// The seed's targets: p95 under 1.5 s, under 2 % failed requests, under 2 % failed checks.
export function seedThresholds() {
  return {
    http_req_duration: ['p(95)<1500'],
    http_req_failed: ['rate<0.02'],
    errors: ['rate<0.02'],
  };
}

// "lb_instance_responses{instance:appN}": ['count>0'] for app1..appN: each instance must
// answer at least once, and the summary lists how many requests each one served.
export function instanceThresholds() {
  const count = numberFromEnv('LB_INSTANCES', 5, { integer: true });
  const thresholds = {};
  for (let i = 1; i <= count; i++) {
    thresholds[`lb_instance_responses{instance:app${i}}`] = ['count>0'];
  }
  return thresholds;
}

export function thinkTime(defaultMinS, defaultMaxS) {
  const min = numberFromEnv('THINK_MIN_S', defaultMinS);
  const max = numberFromEnv('THINK_MAX_S', Math.max(defaultMaxS, min));
  if (max < min) {
    throw new Error(`THINK_MAX_S (${max}) must not be below THINK_MIN_S (${min})`);
  }
  sleep(min + Math.random() * (max - min));
}

export function instanceOf(res) {
  const headers = res.headers || {};
  if (headers[INSTANCE_HEADER]) {
    return String(headers[INSTANCE_HEADER]);
  }
  // k6 canonicalises header names; look case-insensitively all the same
  const wanted = INSTANCE_HEADER.toLowerCase();
  for (const name of Object.keys(headers)) {
    if (name.toLowerCase() === wanted && headers[name]) {
      return String(headers[name]);
    }
  }
  return '';
}

function jsonBody(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

// Runs the checks for one response, feeds the errors rate and the per-instance counter, and
// returns whether every check passed.
function record(res, endpoint, checks) {
  const instance = instanceOf(res);
  instanceResponses.add(1, { instance: instance || 'none', endpoint });
  const ok = check(res, checks, { endpoint });
  errors.add(!ok, { endpoint });
  return ok;
}

const QUESTION_KEYS = ['id', 'subject', 'body', 'options', 'source', 'instance'];

export function checkQuestion(res) {
  return record(res, 'random_question', {
    'question: status 200': (r) => r.status === 200,
    'question: JSON with id, subject, body, options, source, instance': (r) => {
      const q = jsonBody(r);
      return isObject(q) && QUESTION_KEYS.every((k) => k in q) && Number.isInteger(q.id)
        && Array.isArray(q.options) && q.options.length > 0;
    },
    'question: names its instance (X-Lbstack-Instance)': (r) => instanceOf(r) !== '',
  });
}

export function checkHealth(res) {
  return record(res, 'health', {
    'health: status 200': (r) => r.status === 200,
    'health: JSON status ok': (r) => {
      const h = jsonBody(r);
      return isObject(h) && h.status === 'ok';
    },
    'health: names its instance (X-Lbstack-Instance)': (r) => instanceOf(r) !== '',
  });
}

// previousCount: this VU's last session count (its cookie jar keeps the session), or null.
export function checkSession(res, previousCount) {
  return record(res, 'session', {
    'session: status 200': (r) => r.status === 200,
    'session: counter goes up whichever instance answers': (r) => {
      const s = jsonBody(r);
      return isObject(s) && Number.isInteger(s.count)
        && (previousCount === null ? s.count >= 1 : s.count > previousCount);
    },
    'session: names its instance (X-Lbstack-Instance)': (r) => instanceOf(r) !== '',
  });
}

export function checkExam(res) {
  return record(res, 'exam', {
    'exam: status 200': (r) => r.status === 200,
    'exam: HTML exam paper': (r) => /text\/html/.test(String((r.headers || {})['Content-Type'] || ''))
      && typeof r.body === 'string' && r.body.indexOf('Exam paper') !== -1,
    'exam: names its instance (X-Lbstack-Instance)': (r) => instanceOf(r) !== '',
  });
}
