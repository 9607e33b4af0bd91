// Stub of k6's "k6/http": records every request and answers like lbstack's stack would.
// K6_CHECK_MODE picks the answers:
//   ok        the sample app's answers, instances app1..app5 in turn (X-Lbstack-Instance)
//   broken    nginx's 502 page for everything: no JSON, no instance header
//   degraded  status 200 with the instance header, but bodies that are wrong for the endpoint
import { state } from '../state.mjs';

const INSTANCES = ['app1', 'app2', 'app3', 'app4', 'app5'];
let served = 0;
const sessions = {}; // session count per VU (k6 gives each VU its own cookie jar)

function response(request, status, contentType, body, instance) {
  const headers = { 'Content-Type': contentType, Server: 'nginx' };
  if (instance) {
    headers['X-Lbstack-Instance'] = instance;
    headers['X-Lbstack-Release'] = '20250101T000000Z-stub';
  }
  return {
    status,
    status_text: `${status}`,
    url: request.url,
    body,
    headers,
    cookies: {},
    error: '',
    error_code: 0,
    timings: { duration: 1, waiting: 1, blocked: 0, connecting: 0, sending: 0, receiving: 0 },
    request: { method: request.method, url: request.url, headers: request.headers, body: request.body },
    json(selector) {
      if (selector !== undefined) {
        throw new Error('k6 check: res.json(selector) is not stubbed');
      }
      return JSON.parse(this.body);
    },
    html() {
      throw new Error('k6 check: res.html() is not stubbed');
    },
  };
}

function answer(request) {
  const mode = state().mode;
  if (mode === 'broken') {
    return response(request, 502, 'text/html', '<html><body>502 Bad Gateway</body></html>', '');
  }
  const instance = INSTANCES[served % INSTANCES.length];
  served += 1;
  const path = new URL(request.url).pathname.replace(/\/+$/, '');
  const json = (status, value) => response(request, status, 'application/json; charset=utf-8', `${JSON.stringify(value)}\n`, instance);
  const degraded = mode === 'degraded';
  if (path.endsWith('/api/questions/random')) {
    return degraded
      ? json(200, { error: 'no questions' })
      : json(200, { id: 7, subject: 'Matematika', body: '2 + 2 = ?', options: ['3', '4', '5', '6'], source: 'cache', instance });
  }
  if (path.endsWith('/api/ujian/health')) {
    return json(200, { status: degraded ? 'fail' : 'ok', instance, release: 'stub', checks: { database: 'ok', redis: 'ok' } });
  }
  if (path.endsWith('/api/session')) {
    const vu = String(globalThis.__VU);
    if (!degraded) {
      sessions[vu] = (sessions[vu] || 0) + 1;
    }
    return json(200, { count: sessions[vu] || 0, instance });
  }
  if (path.endsWith('/exam')) {
    return degraded
      ? json(200, { error: 'not html' })
      : response(request, 200, 'text/html; charset=utf-8', '<!doctype html><html><body><h1>Exam paper <code>abc</code></h1></body></html>', instance);
  }
  return json(404, { error: 'not found' });
}

export function request(method, url, body, params) {
  const s = state();
  if (s.initContext) {
    throw new Error(`http.${method.toLowerCase()}(${url}) in the init context: k6 allows requests only in VU code`);
  }
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
    throw new Error(`http request URL must be an absolute http(s) URL, got ${JSON.stringify(url)}`);
  }
  const p = params || {};
  const req = { method, url, body: body === undefined ? null : body, headers: p.headers || {}, tags: p.tags || {}, vu: globalThis.__VU, iter: globalThis.__ITER };
  s.requests.push(req);
  return answer(req);
}

export const get = (url, params) => request('GET', url, undefined, params);
export const head = (url, params) => request('HEAD', url, undefined, params);
export const post = (url, body, params) => request('POST', url, body, params);
export const put = (url, body, params) => request('PUT', url, body, params);
export const patch = (url, body, params) => request('PATCH', url, body, params);
export const del = (url, body, params) => request('DELETE', url, body, params);
export const options = (url, body, params) => request('OPTIONS', url, body, params);

export function batch(requests) {
  const list = Array.isArray(requests) ? requests : Object.values(requests);
  return list.map((r) => (typeof r === 'string'
    ? get(r)
    : Array.isArray(r) ? request(r[0], r[1], r[2], r[3]) : request(r.method, r.url, r.body, r.params)));
}

export default { request, get, head, post, put, patch, del, options, batch };
