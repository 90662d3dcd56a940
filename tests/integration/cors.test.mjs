// CORS: preflight and simple requests, with an origin list and with "*".
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, supervisedEngram } from './harness.mjs';

const hooks = { before, after, beforeEach, afterEach };
const srv = supervisedEngram(hooks, { args: ['--cors-origins', 'http://a.example,http://b.example'] });
const star = supervisedEngram(hooks, { args: ['--cors-origins', '*'] });
let key;

before(async () => {
    ({ key } = await workspaceWithKey('cors'));
});

const list = (v) => (v || '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

function preflight(s, path, origin, method = 'POST', reqHeaders = 'authorization, content-type, x-fency-publishable-key') {
    const headers = { Origin: origin, 'Access-Control-Request-Method': method };
    if (reqHeaders) headers['Access-Control-Request-Headers'] = reqHeaders;
    return s.request('OPTIONS', path, { headers });
}

test('preflight from an allowed origin → 204 with the CORS headers', async () => {
    const r = await preflight(srv, '/engram/v1/keys', 'http://a.example');
    assert.equal(r.status, 204, r.body);
    assert.equal(r.headers['access-control-allow-origin'], 'http://a.example');
    assert.ok(list(r.headers['access-control-allow-methods']).includes('post'),
        `Allow-Methods: ${r.headers['access-control-allow-methods']}`);
    const ah = list(r.headers['access-control-allow-headers']);
    for (const h of ['authorization', 'content-type', 'x-fency-publishable-key']) {
        assert.ok(ah.includes(h), `Allow-Headers "${r.headers['access-control-allow-headers']}" lacks ${h}`);
    }
    assert.match(r.headers['access-control-max-age'] || '', /^\d+$/);
    assert.equal(r.body, '');
});

test('(beyond contract) responses chosen by Origin say Vary: Origin', async () => {
    const r = await preflight(srv, '/engram/v1/keys', 'http://a.example');
    assert.match(r.headers.vary || '', /origin/i, 'Vary: Origin expected with an origin list');
    const g = await srv.get('/health/live', { headers: { Origin: 'http://a.example' } });
    assert.match(g.headers.vary || '', /origin/i, 'Vary: Origin expected with an origin list');
});

test('preflight echoes arbitrary requested headers', async () => {
    const r = await preflight(srv, '/engram/v1/whoami', 'http://b.example', 'GET', 'X-Custom-Thing, X-Request-Id');
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], 'http://b.example');
    const ah = list(r.headers['access-control-allow-headers']);
    assert.ok(ah.includes('x-custom-thing') && ah.includes('x-request-id'), r.headers['access-control-allow-headers']);
});

test('preflight needs no API key (even on secret-key routes)', async () => {
    const r = await preflight(srv, '/engram/v1/keys/some-id', 'http://a.example', 'DELETE');
    assert.equal(r.status, 204, `preflight must not be 401: ${r.status} ${r.body}`);
    assert.equal(r.headers['access-control-allow-origin'], 'http://a.example');
});

test('preflight from a disallowed origin → no Access-Control-Allow-Origin', async () => {
    const r = await preflight(srv, '/engram/v1/keys', 'http://evil.example');
    assert.ok(r.status === 204 || r.status === 403, `status ${r.status}`);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    // Prefix tricks must not pass.
    const r2 = await preflight(srv, '/engram/v1/keys', 'http://a.example.evil.com');
    assert.equal(r2.headers['access-control-allow-origin'], undefined);
    const r3 = await preflight(srv, '/engram/v1/keys', 'http://a.exampl');
    assert.equal(r3.headers['access-control-allow-origin'], undefined);
});

test('simple request from an allowed origin carries Allow-Origin and Expose-Headers', async () => {
    const r = await srv.get('/engram/v1/whoami', { headers: { Origin: 'http://b.example', Authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'http://b.example');
    assert.ok(r.headers['access-control-expose-headers'], 'Expose-Headers present');
});

test('(beyond contract) Expose-Headers includes X-Request-Id', async () => {
    const r = await srv.get('/health/live', { headers: { Origin: 'http://b.example' } });
    assert.ok(list(r.headers['access-control-expose-headers']).includes('x-request-id'),
        `Expose-Headers "${r.headers['access-control-expose-headers']}" should expose X-Request-Id`);
});

test('error responses to an allowed origin carry CORS headers too', async () => {
    const r = await srv.get('/engram/v1/whoami', { headers: { Origin: 'http://a.example' } });
    assert.equal(r.status, 401);
    assert.equal(r.headers['access-control-allow-origin'], 'http://a.example',
        'a browser cannot read a 401 without Allow-Origin');
    const n = await srv.get('/nope', { headers: { Origin: 'http://a.example' } });
    assert.equal(n.status, 404);
    assert.equal(n.headers['access-control-allow-origin'], 'http://a.example');
});

test('simple request from a disallowed origin has no Allow-Origin', async () => {
    const r = await srv.get('/health/live', { headers: { Origin: 'http://evil.example' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('request without Origin has no CORS headers', async () => {
    const r = await srv.get('/health/live');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('plain OPTIONS without preflight headers is not treated as a preflight', async () => {
    const r = await srv.request('OPTIONS', '/health/live');
    // No route has OPTIONS: 405 with Allow, or 204 with Allow — but no CORS grant.
    assert.ok([204, 405].includes(r.status), `status ${r.status}`);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('cors "*" → Access-Control-Allow-Origin: *', async () => {
    const r = await preflight(star, '/engram/v1/keys', 'http://anything.example');
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.ok(list(r.headers['access-control-allow-headers']).includes('x-fency-publishable-key'));
    assert.match(r.headers['access-control-max-age'] || '', /^\d+$/);
    const s = await star.get('/health/live', { headers: { Origin: 'http://whatever.example' } });
    assert.equal(s.headers['access-control-allow-origin'], '*');
    assert.ok(s.headers['access-control-expose-headers']);
});
