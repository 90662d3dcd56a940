// Limits: header/body/URL sizes, read and idle timeouts, max connections.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
    startEngram, workspaceWithKey, rawRequest, chunked, engramError, parseMetrics, sleep, uniqueName,
    RawConn, supervisedEngram,
} from './harness.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach }, {
    args: ['--max-body-size', '1k', '--max-header-size', '2k', '--max-url-size', '512',
        '--read-timeout', '1s', '--idle-timeout', '1s'],
});
let key;

before(async () => {
    ({ key } = await workspaceWithKey('limits'));
});

const auth = () => ({ Authorization: `Bearer ${key}` });

// Read one response and require the server to close the connection afterwards.
async function expectErrorAndClose(c, status, code, what) {
    const r = await c.readResponse({ timeoutMs: 4000 });
    assert.equal(r.status, status, `${what}: ${r.head}\n${r.body}`);
    assert.match(r.headers['x-request-id'] || '', /^[A-Za-z0-9._-]{1,64}$/, `${what}: X-Request-Id must be present and non-empty`);
    if (code) {
        assert.ok(r.json && r.json.error, `${what}: engram error body expected, got ${r.body}`);
        assert.equal(r.json.error.code, code, what);
    }
    assert.ok(await c.waitClose(2000), `${what}: connection must be closed after ${status}`);
    return r;
}

test('header block over --max-header-size → 431 and close', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('GET', '/health/live', { headers: { 'X-Pad': 'p'.repeat(3000) } })).catch(() => {});
        await expectErrorAndClose(c, 431, 'headers_too_large', '3000-byte header');
    } finally { c.destroy(); }
});

test('many small headers over the limit → 431', async () => {
    const c = await srv.rawConn();
    try {
        const hs = [];
        for (let i = 0; i < 100; i++) hs.push([`X-H${i}`, 'v'.repeat(30)]);
        await c.write(rawRequest('GET', '/health/live', { headers: hs })).catch(() => {});
        await expectErrorAndClose(c, 431, 'headers_too_large', '100 x 36-byte headers');
    } finally { c.destroy(); }
});

test('headers just under the limit are fine', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('GET', '/health/live', { headers: { 'X-Pad': 'p'.repeat(1500) } }));
        const r = await c.readResponse();
        assert.equal(r.status, 200);
    } finally { c.destroy(); }
});

test('header limit applies to a second request on a keep-alive connection', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('GET', '/health/live'));
        assert.equal((await c.readResponse()).status, 200);
        await c.write(rawRequest('GET', '/health/live', { headers: { 'X-Pad': 'p'.repeat(3000) } })).catch(() => {});
        await expectErrorAndClose(c, 431, 'headers_too_large', 'second request');
    } finally { c.destroy(); }
});

test('Content-Length over --max-body-size → 413 at once and close', async () => {
    const c = await srv.rawConn();
    try {
        // Headers only: the declared length alone must trigger 413.
        await c.write(rawRequest('POST', '/engram/v1/keys', {
            headers: { ...auth(), 'Content-Type': 'application/json', 'Content-Length': '5000' },
        }));
        await expectErrorAndClose(c, 413, 'payload_too_large', 'Content-Length 5000');
    } finally { c.destroy(); }
});

test('Content-Length over the limit with the body sent → 413 and close', async () => {
    const c = await srv.rawConn();
    try {
        const body = JSON.stringify({ name: 'x'.repeat(2000) });
        await c.write(rawRequest('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json' }, body })).catch(() => {});
        await expectErrorAndClose(c, 413, 'payload_too_large', 'CL body 2k');
    } finally { c.destroy(); }
});

test('body just under the limit is accepted (then validated)', async () => {
    const name = uniqueName('small');
    // Pad with JSON whitespace so that only the size is exercised, not unknown fields.
    const body = `{"name":${JSON.stringify(name)}${' '.repeat(900 - name.length)}}`;
    assert.ok(Buffer.byteLength(body) < 1024);
    const r = await srv.request('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json' }, body });
    assert.equal(r.status, 201, r.body);
});

test('chunked body over the limit → 413 and close', async () => {
    const c = await srv.rawConn();
    try {
        const body = JSON.stringify({ name: 'y'.repeat(3000) });
        await c.write(Buffer.concat([
            rawRequest('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }),
            chunked(body, 256),
        ])).catch(() => {});
        await expectErrorAndClose(c, 413, 'payload_too_large', 'chunked 3k');
    } finally { c.destroy(); }
});

test('chunked body over the limit in one big chunk → 413 and close', async () => {
    const c = await srv.rawConn();
    try {
        // Declared chunk size alone exceeds the limit; only the header of the chunk is sent.
        await c.write(Buffer.concat([
            rawRequest('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' } }),
            Buffer.from('1000\r\n{"name":"'),
        ])).catch(() => {});
        await expectErrorAndClose(c, 413, 'payload_too_large', 'chunk size 4096');
    } finally { c.destroy(); }
});

test('Expect: 100-continue with an over-limit Content-Length → 413, no 100', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('POST', '/engram/v1/keys', {
            headers: { ...auth(), 'Content-Type': 'application/json', Expect: '100-continue', 'Content-Length': '5000' },
        }));
        const r = await c.readResponse({ timeoutMs: 4000 });
        assert.notEqual(r.status, 100, 'must not send 100 Continue for an over-limit body');
        assert.equal(r.status, 413);
        assert.ok(await c.waitClose(2000));
    } finally { c.destroy(); }
});

test('URL over --max-url-size → 414 and close', async () => {
    for (const path of ['/' + 'a'.repeat(600), '/health/live?q=' + 'b'.repeat(600)]) {
        const c = await srv.rawConn();
        try {
            await c.write(rawRequest('GET', path)).catch(() => {});
            await expectErrorAndClose(c, 414, 'uri_too_long', `URL of ${path.length} bytes`);
        } finally { c.destroy(); }
    }
});

test('URL just under the limit is fine', async () => {
    const r = await srv.get('/health/live?q=' + 'b'.repeat(400));
    assert.equal(r.status, 200);
});

test('incomplete headers → 408 after --read-timeout, then close', async () => {
    const c = await srv.rawConn();
    try {
        const t0 = Date.now();
        await c.write('GET /health/live HTTP/1.1\r\nHost: x\r\n');
        await expectErrorAndClose(c, 408, 'request_timeout', 'partial headers');
        const dt = Date.now() - t0;
        assert.ok(dt >= 800, `408 came too early (${dt} ms)`);
        assert.ok(dt < 4000, `408 came too late (${dt} ms)`);
    } finally { c.destroy(); }
});

test('trickled headers do not reset the read timeout forever (slowloris)', async () => {
    const c = await srv.rawConn();
    try {
        const t0 = Date.now();
        await c.write('GET /health/live HTTP/1.1\r\nHost: x\r\n');
        let i = 0;
        while (!c.closed && c.buf.length === 0 && Date.now() - t0 < 5000) {
            await c.write(`X-Slow-${i++}: v\r\n`).catch(() => {});
            await sleep(200);
        }
        assert.ok(Date.now() - t0 < 5000, 'server kept a trickling connection open for 5 s with a 1 s read timeout');
        if (c.buf.length) {
            const r = await c.readResponse();
            assert.equal(r.status, 408);
        }
        assert.ok(await c.waitClose(2000));
    } finally { c.destroy(); }
});

test('incomplete body → 408 after --read-timeout, then close', async () => {
    const c = await srv.rawConn();
    try {
        const t0 = Date.now();
        await c.write(rawRequest('POST', '/engram/v1/keys', {
            headers: { ...auth(), 'Content-Type': 'application/json', 'Content-Length': '100' },
        }));
        await c.write('{"name":');
        await expectErrorAndClose(c, 408, 'request_timeout', 'partial body');
        const dt = Date.now() - t0;
        assert.ok(dt >= 800 && dt < 4000, `408 after ${dt} ms`);
    } finally { c.destroy(); }
});

test('connection that never sends anything is closed (idle/read timeout)', async () => {
    const c = await srv.rawConn();
    try {
        const t0 = Date.now();
        assert.ok(await c.waitClose(4000), 'silent connection must be closed');
        const dt = Date.now() - t0;
        assert.ok(dt >= 800, `closed too early (${dt} ms)`);
    } finally { c.destroy(); }
});

test('idle keep-alive connection closed after --idle-timeout without a response', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(rawRequest('GET', '/health/live'));
        assert.equal((await c.readResponse()).status, 200);
        const t0 = Date.now();
        assert.ok(await c.waitClose(4000), 'idle connection must be closed');
        const dt = Date.now() - t0;
        assert.ok(dt >= 800, `closed too early (${dt} ms)`);
        assert.equal(c.buf.length, 0, `no bytes expected on idle close, got ${JSON.stringify(c.buf.toString())}`);
    } finally { c.destroy(); }
});

test('activity keeps a keep-alive connection open past the idle timeout', async () => {
    const c = await srv.rawConn();
    try {
        for (let i = 0; i < 6; i++) {
            await c.write(rawRequest('GET', '/health/live'));
            assert.equal((await c.readResponse()).status, 200);
            await sleep(400);
        }
        assert.equal(c.closed, false, 'connection used every 400 ms must stay open (total 2.4 s)');
    } finally { c.destroy(); }
});

test('max connections: extra connections closed at once and counted', async () => {
    const small = await startEngram({ args: ['--max-connections', '3'] });
    const conns = [];
    try {
        for (let i = 0; i < 3; i++) {
            const c = await small.rawConn();
            await c.write(rawRequest('GET', '/health/live'));
            assert.equal((await c.readResponse()).status, 200, `connection ${i} accepted`);
            conns.push(c);
        }
        const extra = await RawConn.open(small.port);
        await extra.write(rawRequest('GET', '/health/live')).catch(() => {});
        assert.ok(await extra.waitClose(1500), 'connection over the limit must be closed right away');
        if (extra.buf.length) {
            // A short error response is acceptable; a 200 is not.
            const txt = extra.buf.toString('latin1');
            assert.ok(!/^HTTP\/1\.1 200/.test(txt), `over-limit connection was served: ${txt.slice(0, 100)}`);
        }
        // The accepted ones still work.
        await conns[0].write(rawRequest('GET', '/health/live'));
        assert.equal((await conns[0].readResponse()).status, 200);
        // Free a slot and read the metrics.
        conns.pop().destroy();
        const m = await waitMetrics(small);
        const rej = m.find((x) => x.name === 'engram_http_connections_rejected_total');
        assert.ok(rej && rej.value >= 1, `rejected_total = ${rej && rej.value}`);
        const open = m.find((x) => x.name === 'engram_http_connections_open');
        assert.ok(open && open.value >= 1 && open.value <= 3, `connections_open = ${open && open.value}`);
    } finally {
        for (const c of conns) c.destroy();
        await small.stop();
    }
});

// The freed slot may take a moment to be noticed; retry /metrics briefly.
async function waitMetrics(s) {
    for (let i = 0; i < 40; i++) {
        try {
            const r = await s.get('/metrics', { timeoutMs: 1000 });
            if (r.status === 200) return parseMetrics(r.body);
        } catch { /* slot not free yet */ }
        await sleep(50);
    }
    throw new Error('could not fetch /metrics');
}

test('after all limit errors the server is healthy', async () => {
    const r = await srv.get('/health');
    assert.equal(r.status, 200);
    assert.ok(srv.alive());
});
