// HTTP/1.1 behaviour: keep-alive, pipelining, chunked bodies, HEAD, Expect, request ids, 404/405,
// malformed requests, root routes (/health, /version, /metrics), access log.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
    startEngram, workspaceWithKey, rawRequest, chunked, engramError, parseMetrics, sleep,
    uniqueName, supervisedEngram,
} from './harness.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach }, { args: ['--log-level', 'info'] });
let key; // secret key of a fresh workspace
let ws;

before(async () => {
    ({ ws, key } = await workspaceWithKey('http'));
});

const auth = () => ({ Authorization: `Bearer ${key}` });

test('GET /health/live is 200 {"status":"ok"}', async () => {
    const r = await srv.get('/health/live');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ok' });
    assert.match(r.headers['content-type'] || '', /application\/json/);
});

test('GET /health reports Redis up', async () => {
    const r = await srv.get('/health');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.status, 'ok');
    assert.equal(r.json.redis.status, 'up');
});

test('GET /health/ready is 200 with Redis up', async () => {
    const r = await srv.get('/health/ready');
    assert.equal(r.status, 200, r.body);
});

test('GET /version has api_version, version, features', async () => {
    const r = await srv.get('/version');
    assert.equal(r.status, 200, r.body);
    assert.equal(typeof r.json.api_version, 'string');
    assert.equal(typeof r.json.version, 'string');
    assert.ok(r.json.features && typeof r.json.features === 'object' && !Array.isArray(r.json.features));
});

test('GET /metrics exposes the documented series', async () => {
    await srv.get('/health/live');
    await srv.get('/health/live');
    const r = await srv.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] || '', /text\/plain/);
    const ms = parseMetrics(r.body);
    const names = new Set(ms.map((m) => m.name));
    for (const n of ['engram_http_requests_total', 'engram_http_request_duration_seconds_bucket',
        'engram_http_connections_open', 'engram_http_connections_rejected_total',
        'engram_redis_commands_total']) {
        assert.ok(names.has(n), `missing metric ${n}\n${r.body.slice(0, 2000)}`);
    }
    const live = ms.find((m) => m.name === 'engram_http_requests_total' && m.labels.route === '/health/live'
        && m.labels.method === 'GET' && m.labels.status === '200');
    assert.ok(live, 'engram_http_requests_total{route="/health/live",method="GET",status="200"} missing');
    assert.ok(live.value >= 2, `counter is ${live.value}`);
    const open = ms.find((m) => m.name === 'engram_http_connections_open');
    assert.ok(open.value >= 1, 'the /metrics connection itself is open');
    assert.ok(ms.some((m) => m.name === 'engram_http_request_duration_seconds_bucket' && m.labels.le === '+Inf'),
        'histogram needs an le="+Inf" bucket');
});

test('keep-alive: several requests reuse one connection', async () => {
    const c = await srv.rawConn();
    try {
        for (let i = 0; i < 5; i++) {
            await c.write(rawRequest('GET', '/health/live'));
            const r = await c.readResponse();
            assert.equal(r.status, 200);
            assert.notEqual((r.headers.connection || '').toLowerCase(), 'close');
        }
        assert.equal(c.closed, false);
        // An authenticated request on the same connection.
        await c.write(rawRequest('GET', '/engram/v1/whoami', { headers: auth() }));
        const w = await c.readResponse();
        assert.equal(w.status, 200, w.body);
        assert.equal(w.json.workspace_id, ws.id);
        assert.equal(c.closed, false);
    } finally { c.destroy(); }
});

test('pipelining: 4 requests in one write (incl. a POST) answered in order', async () => {
    const c = await srv.rawConn();
    try {
        const name = uniqueName('pipe');
        const body = JSON.stringify({ name });
        const data = Buffer.concat([
            rawRequest('GET', '/health/live', { headers: { 'X-Request-Id': 'pipe-1' } }),
            rawRequest('POST', '/engram/v1/keys', {
                headers: { ...auth(), 'Content-Type': 'application/json', 'X-Request-Id': 'pipe-2' }, body,
            }),
            rawRequest('GET', '/engram/v1/whoami', { headers: { ...auth(), 'X-Request-Id': 'pipe-3' } }),
            rawRequest('GET', '/no/such/path', { headers: { 'X-Request-Id': 'pipe-4' } }),
            rawRequest('GET', '/engram/v1/keys', { headers: { ...auth(), 'X-Request-Id': 'pipe-5' } }),
        ]);
        await c.write(data);
        const rs = [];
        for (let i = 0; i < 5; i++) rs.push(await c.readResponse());
        assert.deepEqual(rs.map((r) => r.headers['x-request-id']), ['pipe-1', 'pipe-2', 'pipe-3', 'pipe-4', 'pipe-5']);
        assert.deepEqual(rs.map((r) => r.status), [200, 201, 200, 404, 200]);
        assert.equal(rs[1].json.name, name);
        // The POST completed before the later GET /keys was served.
        assert.ok(rs[4].json.data.some((k) => k.id === rs[1].json.id), 'key created by pipelined POST is listed');
        assert.equal(c.closed, false);
    } finally { c.destroy(); }
});

test('pipelining: requests split at odd byte boundaries', async () => {
    const c = await srv.rawConn();
    try {
        const data = Buffer.concat([1, 2, 3].map((i) => rawRequest('GET', '/health/live', { headers: { 'X-Request-Id': `split-${i}` } })));
        for (let i = 0; i < data.length; i += 13) {
            await c.write(data.subarray(i, i + 13));
            await sleep(2);
        }
        for (let i = 1; i <= 3; i++) {
            const r = await c.readResponse();
            assert.equal(r.status, 200);
            assert.equal(r.headers['x-request-id'], `split-${i}`);
        }
    } finally { c.destroy(); }
});

test('pipelining: 200 requests in one write (beyond the per-connection pipeline limit) all answered in order', async () => {
    const c = await srv.rawConn();
    try {
        const n = 200;
        const reqs = [];
        for (let i = 0; i < n; i++) {
            reqs.push(i % 3 === 1
                ? rawRequest('GET', '/engram/v1/whoami', { headers: { ...auth(), 'X-Request-Id': `deep-${i}` } })
                : rawRequest('GET', '/health/live', { headers: { 'X-Request-Id': `deep-${i}` } }));
        }
        await c.write(Buffer.concat(reqs));
        for (let i = 0; i < n; i++) {
            const r = await c.readResponse({ timeoutMs: 10000 });
            assert.equal(r.status, 200, `response ${i}: ${r.head}`);
            assert.equal(r.headers['x-request-id'], `deep-${i}`);
        }
        assert.equal(c.closed, false);
    } finally { c.destroy(); }
});

test('50 concurrent connections with authenticated requests', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const c = await srv.rawConn();
        try {
            await c.write(Buffer.concat([
                rawRequest('GET', '/engram/v1/whoami', { headers: auth() }),
                rawRequest('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json' }, body: JSON.stringify({ name: `conc-${i}` }) }),
            ]));
            const a = await c.readResponse({ timeoutMs: 15000 });
            const b = await c.readResponse({ timeoutMs: 15000 });
            return [a.status, b.status];
        } finally { c.destroy(); }
    }));
    for (const [a, b] of results) { assert.equal(a, 200); assert.equal(b, 201); }
    assert.ok(srv.alive());
});

test('client closing mid-request does not hurt the server', async () => {
    for (let i = 0; i < 20; i++) {
        const c = await srv.rawConn();
        const body = JSON.stringify({ name: 'gone' });
        await c.write(rawRequest('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json' }, body }));
        c.destroy(); // before the response (which needs a Redis round trip) is written
    }
    const c = await srv.rawConn();
    try {
        await c.write(Buffer.concat([rawRequest('GET', '/engram/v1/whoami', { headers: auth() })]));
        c.destroy();
    } catch { /* */ }
    await sleep(300);
    assert.ok(srv.alive(), 'engramd survived clients that went away');
    assert.equal((await srv.get('/health/live')).status, 200);
});

test('chunked request body: POST /engram/v1/keys', async () => {
    const c = await srv.rawConn();
    try {
        const name = uniqueName('chunked');
        const body = JSON.stringify({ name, kind: 'secret' });
        const head = rawRequest('POST', '/engram/v1/keys', {
            headers: { ...auth(), 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
        });
        await c.write(head);
        const enc = chunked(body, 5);
        // Dribble the chunked body in a few writes.
        for (let i = 0; i < enc.length; i += 17) { await c.write(enc.subarray(i, i + 17)); await sleep(1); }
        const r = await c.readResponse();
        assert.equal(r.status, 201, r.body);
        assert.equal(r.json.name, name);
        assert.match(r.json.key, /^sk_[A-Za-z0-9]{40}$/);
        // Connection stays usable afterwards.
        await c.write(rawRequest('GET', '/health/live'));
        assert.equal((await c.readResponse()).status, 200);
    } finally { c.destroy(); }
});

test('chunked request body with chunk extensions and trailers', async () => {
    const c = await srv.rawConn();
    try {
        const name = uniqueName('chunkext');
        const body = Buffer.from(JSON.stringify({ name }));
        const half = Math.floor(body.length / 2);
        const enc = Buffer.concat([
            Buffer.from(`${half.toString(16)};foo=bar\r\n`), body.subarray(0, half), Buffer.from('\r\n'),
            Buffer.from(`${(body.length - half).toString(16)}\r\n`), body.subarray(half), Buffer.from('\r\n'),
            Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
        ]);
        await c.write(Buffer.concat([rawRequest('POST', '/engram/v1/keys', {
            headers: { ...auth(), 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
        }), enc]));
        const r = await c.readResponse();
        assert.equal(r.status, 201, r.body);
        assert.equal(r.json.name, name);
    } finally { c.destroy(); }
});

test('HEAD returns GET headers without a body', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('GET', '/version'));
        const g = await c.readResponse();
        assert.equal(g.status, 200);
        // HEAD then GET pipelined: if HEAD carried a body, the GET response would not parse.
        await c.write(Buffer.concat([rawRequest('HEAD', '/version'), rawRequest('GET', '/health/live', { headers: { 'X-Request-Id': 'after-head' } })]));
        const h = await c.readResponse({ isHead: true });
        assert.equal(h.status, 200);
        assert.equal(h.body, '');
        if (g.headers['content-length'] !== undefined) {
            assert.equal(h.headers['content-length'], g.headers['content-length'], 'HEAD Content-Length equals GET');
        }
        assert.equal(h.headers['content-type'], g.headers['content-type']);
        const next = await c.readResponse();
        assert.equal(next.status, 200);
        assert.equal(next.headers['x-request-id'], 'after-head', `stray bytes after HEAD? ${next.head}`);
        assert.deepEqual(next.json, { status: 'ok' });
    } finally { c.destroy(); }
});

test('HEAD on an authenticated route and on a 404', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(Buffer.concat([
            rawRequest('HEAD', '/engram/v1/whoami', { headers: auth() }),
            rawRequest('HEAD', '/no/such/thing'),
            rawRequest('GET', '/health/live', { headers: { 'X-Request-Id': 'after-heads' } }),
        ]));
        const a = await c.readResponse({ isHead: true });
        assert.equal(a.status, 200);
        const b = await c.readResponse({ isHead: true });
        assert.equal(b.status, 404);
        const d = await c.readResponse();
        assert.equal(d.headers['x-request-id'], 'after-heads');
    } finally { c.destroy(); }
});

test('Expect: 100-continue gets 100 then the final response', async () => {
    const c = await srv.rawConn();
    try {
        const name = uniqueName('expect');
        const body = JSON.stringify({ name });
        await c.write(rawRequest('POST', '/engram/v1/keys', {
            headers: { ...auth(), 'Content-Type': 'application/json', Expect: '100-continue', 'Content-Length': Buffer.byteLength(body) },
        }));
        const cont = await c.readResponse({ timeoutMs: 3000 });
        assert.equal(cont.status, 100);
        assert.equal(cont.httpVersion, '1.1');
        await c.write(body);
        const r = await c.readResponse();
        assert.equal(r.status, 201, r.body);
        assert.equal(r.json.name, name);
    } finally { c.destroy(); }
});

test('Connection: close is honoured', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('GET', '/health/live', { headers: { Connection: 'close' } }));
        const r = await c.readResponse();
        assert.equal(r.status, 200);
        assert.equal((r.headers.connection || '').toLowerCase(), 'close');
        assert.ok(await c.waitClose(2000), 'server must close after Connection: close');
    } finally { c.destroy(); }
});

test('HTTP/1.0 without keep-alive closes after the response', async () => {
    const c = await srv.rawConn();
    try {
        await c.write('GET /health/live HTTP/1.0\r\n\r\n');
        const r = await c.readResponse();
        assert.equal(r.status, 200);
        assert.ok(await c.waitClose(2000), 'HTTP/1.0 default is close');
    } finally { c.destroy(); }
});

test('X-Request-Id: valid ids are echoed', async () => {
    for (const id of ['abc-123', 'A.b_c-9', 'x'.repeat(64)]) {
        const r = await srv.get('/health/live', { headers: { 'X-Request-Id': id } });
        assert.equal(r.headers['x-request-id'], id);
    }
});

test('X-Request-Id: generated when absent, unique per request', async () => {
    const a = await srv.get('/health/live');
    const b = await srv.get('/health/live');
    assert.ok(a.headers['x-request-id'], 'generated id present');
    assert.ok(b.headers['x-request-id']);
    assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id']);
    assert.match(a.headers['x-request-id'], /^[A-Za-z0-9._-]{1,64}$/);
});

test('X-Request-Id: invalid ids are replaced', async () => {
    for (const id of ['x'.repeat(65), 'bad/id', 'has space', 'semi;colon', 'quote"d']) {
        const r = await srv.get('/health/live', { headers: { 'X-Request-Id': id } });
        const got = r.headers['x-request-id'];
        assert.ok(got, `id generated for ${id}`);
        assert.notEqual(got, id);
        assert.match(got, /^[A-Za-z0-9._-]{1,64}$/);
    }
});

test('X-Request-Id is on error responses and matches error.request_id', async () => {
    const r = await srv.get('/nope', { headers: { 'X-Request-Id': 'err-id-1' } });
    const e = engramError(r, 404, 'not_found');
    assert.equal(r.headers['x-request-id'], 'err-id-1');
    assert.equal(e.request_id, 'err-id-1');
});

test('unknown path → 404 not_found in engram shape', async () => {
    for (const p of ['/nope', '/engram/v1/nope', '/engram/v2/keys', '/health/live/x']) {
        const r = await srv.get(p, { headers: auth() });
        engramError(r, 404, 'not_found');
    }
});

test('known path, wrong method → 405 with Allow', async () => {
    const cases = [
        ['DELETE', '/health/live', ['GET'], {}],
        ['POST', '/version', ['GET'], {}],
        ['POST', '/engram/v1/whoami', ['GET'], auth()],
        ['PUT', '/engram/v1/keys', ['GET', 'POST'], auth()],
        ['GET', '/engram/v1/keys/somekeyid', ['DELETE'], auth()],
    ];
    for (const [method, path, allowed, headers] of cases) {
        const r = await srv.request(method, path, { headers, body: method === 'PUT' || method === 'POST' ? '{}' : undefined });
        engramError(r, 405, 'method_not_allowed');
        const allow = (r.headers.allow || '').split(',').map((s) => s.trim()).filter(Boolean);
        for (const m of allowed) assert.ok(allow.includes(m), `${method} ${path}: Allow "${r.headers.allow}" lacks ${m}`);
        assert.ok(!allow.includes(method), `${method} ${path}: Allow "${r.headers.allow}" must not list ${method}`);
    }
});

test('trailing slash tolerated', async () => {
    const a = await srv.get('/engram/v1/keys/', { headers: auth() });
    assert.equal(a.status, 200, a.body);
    assert.ok(Array.isArray(a.json.data));
    const b = await srv.get('/health/live/');
    assert.equal(b.status, 200);
    const c = await srv.get('/engram/v1/whoami/', { headers: auth() });
    assert.equal(c.status, 200);
});

test('query string does not affect routing', async () => {
    const r = await srv.get('/health/live?x=1&y=2');
    assert.equal(r.status, 200);
});

test('odd query strings (key without "=", empty pairs, +) are fine', async () => {
    for (const q of ['?flag', '?a=1&flag&b', '?&&', '?a+b=c+d', '?=x', '?a=%41']) {
        const r = await srv.get('/health/live' + q).catch((e) => ({ status: `error ${e.code || e.message}` }));
        assert.equal(r.status, 200, `GET /health/live${q}`);
    }
    assert.ok(srv.alive(), `engramd died on a query string: ${JSON.stringify(srv.exited)}\n${srv.stderrTail(15)}`);
});

test('(beyond contract) bad escape in the query → 400', async () => {
    const r = await srv.get('/health/live?a=%zz');
    assert.equal(r.status, 400, r.body);
    assert.ok(srv.alive());
});

test('bad percent escape in path → 400', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('DELETE', '/engram/v1/keys/%zz', { headers: auth() }));
        const r = await c.readResponse();
        assert.equal(r.status, 400, r.head);
        assert.ok(r.json && r.json.error, r.body);
    } finally { c.destroy(); }
});

test('malformed HTTP → 400 and close', async () => {
    for (const junk of [
        'THIS IS NOT HTTP\r\n\r\n',
        'GET /health/live HTTP/1.1\r\nHost localhost\r\n\r\n', // header without colon
        'GET /health/live HTTP/9.7\r\nHost: x\r\n\r\n',
        'POST /engram/v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
        'POST /engram/v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    ]) {
        const c = await srv.rawConn();
        try {
            await c.write(junk).catch(() => {});
            const r = await c.readResponse({ timeoutMs: 3000 });
            assert.ok(r.status === 400 || r.status === 505, `${JSON.stringify(junk)} → ${r.status}`);
            assert.ok(await c.waitClose(2000), `connection closed after ${JSON.stringify(junk)}`);
        } finally { c.destroy(); }
    }
    // And the server is still fine.
    assert.equal((await srv.get('/health/live')).status, 200);
});

test('a request with both Content-Length and Transfer-Encoding is rejected', async () => {
    const c = await srv.rawConn();
    try {
        await c.write('POST /engram/v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
        const r = await c.readResponse({ timeoutMs: 3000 });
        assert.equal(r.status, 400);
        assert.ok(await c.waitClose(2000));
    } finally { c.destroy(); }
});

test('access log: one JSON line per request with the documented fields', async () => {
    const rid = `log-${Date.now()}`;
    const r = await srv.get('/engram/v1/whoami', { headers: { ...auth(), 'X-Request-Id': rid } });
    assert.equal(r.status, 200);
    const line = await srv.waitForLog((l) => l.msg === 'access' && l.request_id === rid);
    assert.equal(line.level, 'info');
    assert.ok(line.time, 'time present');
    assert.equal(line.method, 'GET');
    assert.equal(line.route, '/engram/v1/whoami');
    assert.equal(line.status, 200);
    assert.equal(typeof line.bytes, 'number');
    assert.ok(line.bytes > 0);
    assert.equal(line.bytes, Buffer.byteLength(r.body), 'bytes = response body size');
    assert.equal(typeof line.us, 'number');
    assert.ok(line.us >= 0);
    assert.equal(line.workspace, ws.id);
    assert.equal(srv.accessLogs().filter((l) => l.request_id === rid).length, 1, 'exactly one line');
});

test('access log: unmatched route and param route use the template', async () => {
    const rid = `log404-${Date.now()}`;
    await srv.get('/definitely/not/here', { headers: { 'X-Request-Id': rid } });
    const line = await srv.waitForLog((l) => l.msg === 'access' && l.request_id === rid);
    assert.equal(line.route, 'unmatched');
    assert.equal(line.status, 404);
    assert.equal(line.workspace, null);

    const rid2 = `logdel-${Date.now()}`;
    await srv.request('DELETE', '/engram/v1/keys/does-not-exist', { headers: { ...auth(), 'X-Request-Id': rid2 } });
    const l2 = await srv.waitForLog((l) => l.msg === 'access' && l.request_id === rid2);
    assert.match(l2.route, /^\/engram\/v1\/keys\/\{[A-Za-z_]+\}$/, 'route is the template, not the path');
    assert.equal(l2.status, 404);
    assert.equal(l2.method, 'DELETE');
    assert.equal(l2.workspace, ws.id);

    const rid3 = `log401-${Date.now()}`;
    await srv.get('/engram/v1/whoami', { headers: { 'X-Request-Id': rid3 } });
    const l3 = await srv.waitForLog((l) => l.msg === 'access' && l.request_id === rid3);
    assert.equal(l3.status, 401);
    assert.equal(l3.workspace, null);
});

test('every stderr line is JSON', async () => {
    const bad = srv.lines.filter((l) => l.raw !== undefined);
    assert.deepEqual(bad, []);
});
