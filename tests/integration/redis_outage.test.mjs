// Redis stops mid-run: health turns 503, Redis-touching routes answer 503 storage_unavailable,
// engramd stays up, and everything recovers by itself when Redis comes back (same port and data).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    PrivateRedis, startEngram, createWorkspace, createKey, engramError, waitFor, sleep, cli, freePort,
} from './harness.mjs';

let redis;
let srv;
let ws;
let key;

before(async () => {
    redis = new PrivateRedis();
    await redis.start();
    srv = await startEngram({ redisUrl: redis.url, args: ['--auth-cache-ttl', '60s'] });
    ws = await createWorkspace(undefined, { redisUrl: redis.url });
    key = await createKey({ workspace: ws.name, redisUrl: redis.url });
});

after(async () => {
    if (srv) await srv.stop();
    if (redis) await redis.destroy();
});

const auth = () => ({ Authorization: `Bearer ${key}` });

test('Redis down → 503s, engramd alive; Redis back → recovers by itself', async (t) => {
    // Healthy baseline; warm the auth cache.
    assert.equal((await srv.get('/health')).status, 200);
    assert.equal((await srv.get('/engram/v1/whoami', { headers: auth() })).status, 200);
    const before = await srv.get('/engram/v1/keys', { headers: auth() });
    assert.equal(before.status, 200);
    const nkeys = before.json.data.length;

    await redis.stop();

    await t.test('/health → 503 with redis down', async () => {
        const r = await waitFor(async () => {
            const x = await srv.get('/health', { timeoutMs: 8000 });
            return x.status === 503 ? x : null;
        }, { timeoutMs: 10000, intervalMs: 100, what: '/health 503' });
        assert.equal(r.json.status, 'unavailable');
        assert.equal(r.json.redis.status, 'down');
        assert.equal(typeof r.json.redis.error, 'string');
        assert.ok(r.json.redis.error.length > 0);
    });

    await t.test('/health/ready → 503, /health/live → 200', async () => {
        const r = await srv.get('/health/ready', { timeoutMs: 8000 });
        assert.equal(r.status, 503, r.body);
        const l = await srv.get('/health/live');
        assert.equal(l.status, 200);
        assert.deepEqual(l.json, { status: 'ok' });
    });

    await t.test('GET /engram/v1/keys → 503 storage_unavailable, promptly', async () => {
        const t0 = Date.now();
        const r = await srv.get('/engram/v1/keys', { headers: auth(), timeoutMs: 10000 });
        engramError(r, 503, 'storage_unavailable');
        assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms: a down Redis must fail fast`);
    });

    await t.test('(docs/http.md) storage_unavailable carries Retry-After', async () => {
        const r = await srv.get('/engram/v1/keys', { headers: auth(), timeoutMs: 10000 });
        assert.equal(r.status, 503);
        assert.match(r.headers['retry-after'] || '', /^\d+$/, 'Retry-After: <seconds>');
    });

    await t.test('an uncached key gets 503 (not 401) while Redis is down', async () => {
        const r = await srv.get('/engram/v1/whoami', { headers: { Authorization: 'Bearer sk_' + 'Q'.repeat(40) }, timeoutMs: 10000 });
        assert.equal(r.status, 503, `unknown key during outage: ${r.status} ${r.body} (401 would wrongly claim the key is invalid)`);
    });

    await t.test('engramd is still alive and serving', async () => {
        // A burst during the outage must not crash it.
        await Promise.all(Array.from({ length: 20 }, () => srv.get('/engram/v1/keys', { headers: auth(), timeoutMs: 10000 }).catch(() => null)));
        await sleep(300);
        assert.ok(srv.alive(), `engramd died: ${JSON.stringify(srv.exited)}\n${srv.stderrTail()}`);
        assert.equal((await srv.get('/health/live')).status, 200);
        assert.equal((await srv.get('/version')).status, 200);
    });

    await redis.start(); // same port, same dir (AOF)

    await t.test('recovers within a few seconds without a restart', async () => {
        const t0 = Date.now();
        await waitFor(async () => (await srv.get('/health', { timeoutMs: 2000 })).status === 200,
            { timeoutMs: 10000, intervalMs: 100, what: '/health 200 after restart' });
        await waitFor(async () => (await srv.get('/engram/v1/keys', { headers: auth(), timeoutMs: 2000 })).status === 200,
            { timeoutMs: 10000, intervalMs: 100, what: 'GET /engram/v1/keys 200 after restart' });
        const dt = Date.now() - t0;
        assert.ok(dt < 10000, `recovery took ${dt} ms`);
        assert.equal((await srv.get('/health/ready')).status, 200);
        const h = await srv.get('/health');
        assert.equal(h.json.redis.status, 'up');
    });

    await t.test('data survived (AOF) and writes work again', async () => {
        const l = await srv.get('/engram/v1/keys', { headers: auth() });
        assert.equal(l.status, 200);
        assert.equal(l.json.data.length, nkeys);
        const c = await srv.request('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json' }, body: '{"name":"after-outage"}' });
        assert.equal(c.status, 201, c.body);
        const w = await srv.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${c.json.key}` } });
        assert.equal(w.status, 200);
    });

    await t.test('pub/sub invalidation works again after the reconnect', async () => {
        const c = await srv.request('POST', '/engram/v1/keys', { headers: { ...auth(), 'Content-Type': 'application/json' }, body: '{"name":"revoke-after-outage"}' });
        const k = c.json;
        assert.equal((await srv.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${k.key}` } })).status, 200);
        const r = await cli(['keys', 'revoke', k.id], { redisUrl: redis.url });
        assert.equal(r.code, 0, r.stderr);
        await waitFor(async () => (await srv.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${k.key}` } })).status === 401,
            { timeoutMs: 2000, intervalMs: 50, what: 'revoked key → 401 (auth-cache-ttl is 60s, so only pub/sub explains it)' });
    });
});

test('(beyond contract) engramd starts while Redis is down and comes up when it appears', async () => {
    const r2 = new PrivateRedis();
    r2.port = await freePort();
    let s;
    try {
        s = await startEngram({ redisUrl: r2.url });
        const h = await s.get('/health');
        assert.equal(h.status, 503, h.body);
        assert.equal((await s.get('/health/ready')).status, 503);
        await r2.start();
        await waitFor(async () => (await s.get('/health', { timeoutMs: 2000 })).status === 200,
            { timeoutMs: 10000, intervalMs: 100, what: '/health 200 once Redis appears' });
        assert.equal((await s.get('/health/ready')).status, 200);
    } finally {
        if (s) await s.stop();
        await r2.destroy();
    }
});
