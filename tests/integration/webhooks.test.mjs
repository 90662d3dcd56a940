// Webhooks: endpoint CRUD and validation, workspace isolation, signed deliveries to a real
// receiver (fency / hindsight signatures recomputed here; the standard one is checked with the
// standardwebhooks npm package in tests/clients), retries, 410, manual retry, and no delivery
// lost across a kill -9 of engramd. A private Redis keeps other suites' engramd processes (which
// may not reach 127.0.0.1) off this suite's "webhooks" queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, engramError, waitFor, freePort, sleep, PrivateRedis } from './harness.mjs';
import { Receiver, hmacHex } from './webhook_receiver.mjs';

const ENV = {
    ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
    ENGRAM_WEBHOOK_RETRY_SCALE: '0.0002', // 5 s -> 1 ms, 5 min -> 60 ms, 2 h -> 1.4 s
    ENGRAM_WEBHOOK_VISIBILITY: '2s',
    ENGRAM_ACCESS_LOG: 'off',
};

let redis, srv, A, B;

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    [A, B] = await Promise.all([workspaceWithKey('whA', { redisUrl: redis.url }),
        workspaceWithKey('whB', { redisUrl: redis.url })]);
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

const req = (method, path, key, body) => srv.request(method, path, { key, body });

async function createHook(key, body) {
    const r = await req('POST', '/engram/v1/webhooks', key, body);
    assert.equal(r.status, 201, r.body);
    return r.json;
}

async function emit(key, type, entity = {}) {
    const r = await req('POST', '/engram/v1/events', key, { type, entity });
    assert.equal(r.status, 201, r.body);
    return r.json;
}

async function deliveries(key, id, qs = '') {
    const r = await req('GET', `/engram/v1/webhooks/${id}/deliveries${qs}`, key);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function waitDelivery(key, id, pred, what) {
    return waitFor(async () => (await deliveries(key, id)).data.find(pred),
        { timeoutMs: 15000, intervalMs: 50, what });
}

/* ---------------------------------------------------------------- endpoints */

test('create returns the secret once; list and get show only a prefix', async () => {
    const h = await createHook(A.key, { url: 'https://example.com/hook', event_types: ['memory.*'], description: 'd' });
    assert.match(h.id, /^wh_[A-Za-z0-9]{24}$/);
    assert.match(h.secret, /^whsec_[A-Za-z0-9+/]{32}$/);
    assert.equal(h.signing, 'standard');
    assert.equal(h.enabled, true);
    assert.deepEqual(h.event_types, ['memory.*']);
    assert.equal(h.description, 'd');
    assert.equal(h.disabled_reason, null);
    assert.ok(h.secret.startsWith(h.secret_prefix.replace('…', '')));

    const g = await req('GET', `/engram/v1/webhooks/${h.id}`, A.key);
    assert.equal(g.status, 200, g.body);
    assert.equal(g.json.secret, undefined);
    const { secret, ...rest } = h;
    assert.deepEqual(g.json, rest);

    const l = await req('GET', '/engram/v1/webhooks', A.key);
    assert.equal(l.status, 200);
    assert.ok(l.json.data.some((x) => x.id === h.id && x.secret === undefined));

    const f = await createHook(A.key, { url: 'http://example.com/f', signing: 'fency' });
    assert.match(f.secret, /^[A-Za-z0-9]{32}$/);
    const own = await createHook(A.key, { url: 'http://example.com/o', signing: 'hindsight', secret: 'example-secret' });
    assert.equal(own.secret, 'example-secret');
});

test('PATCH changes fields; DELETE removes; unknown ids are 404', async () => {
    const h = await createHook(A.key, { url: 'https://example.com/a' });
    const p = await req('PATCH', `/engram/v1/webhooks/${h.id}`, A.key,
        { url: 'https://example.com/b', event_types: ['agent.task.*', 'memory.created'], enabled: false, description: null });
    assert.equal(p.status, 200, p.body);
    assert.equal(p.json.url, 'https://example.com/b');
    assert.deepEqual(p.json.event_types, ['agent.task.*', 'memory.created']);
    assert.equal(p.json.enabled, false);
    assert.equal(p.json.description, null);

    const d = await req('DELETE', `/engram/v1/webhooks/${h.id}`, A.key);
    assert.equal(d.status, 200, d.body);
    engramError(await req('GET', `/engram/v1/webhooks/${h.id}`, A.key), 404, 'not_found');
    engramError(await req('DELETE', `/engram/v1/webhooks/${h.id}`, A.key), 404, 'not_found');
    engramError(await req('PATCH', `/engram/v1/webhooks/wh_nope`, A.key, { enabled: true }), 404, 'not_found');
    engramError(await req('GET', '/engram/v1/webhooks/wh_nope/deliveries', A.key), 404, 'not_found');
    engramError(await req('GET', '/engram/v1/webhooks/..%2F/deliveries', A.key), 404);
});

test('bad input is a 400 naming the field', async () => {
    const cases = [
        [{}, 'url'],
        [{ url: 'ftp://example.com/x' }, 'url'],
        [{ url: '/relative' }, 'url'],
        [{ url: 'http://user:pw@example.com/' }, 'url'],
        [{ url: 42 }, 'url'],
        [{ url: 'https://example.com', event_types: 'memory.created' }, 'event_types'],
        [{ url: 'https://example.com', event_types: ['Bad Type'] }, 'event_types'],
        [{ url: 'https://example.com', signing: 'hmac' }, 'signing'],
        [{ url: 'https://example.com', secret: 'not-whsec' }, 'secret'],
        [{ url: 'https://example.com', signing: 'fency', secret: 'short' }, 'secret'],
        [{ url: 'https://example.com', enabled: 'yes' }, 'enabled'],
        [{ url: 'https://example.com', description: 5 }, 'description'],
    ];
    for (const [body, field] of cases) {
        const e = engramError(await req('POST', '/engram/v1/webhooks', A.key, body), 400, 'invalid_request');
        assert.match(e.message, new RegExp(`'${field}'`), `${JSON.stringify(body)}: ${e.message}`);
    }
    const h = await createHook(A.key, { url: 'https://example.com/v' });
    for (const [body, field] of [[{ url: 'nope' }, 'url'], [{ secret: 'x' }, 'secret'], [{}, 'url']]) {
        const e = engramError(await req('PATCH', `/engram/v1/webhooks/${h.id}`, A.key, body), 400);
        assert.match(e.message, new RegExp(field), e.message);
    }
    engramError(await req('GET', `/engram/v1/webhooks/${h.id}/deliveries?limit=0`, A.key), 400);
    engramError(await req('GET', `/engram/v1/webhooks/${h.id}/deliveries?cursor=abc`, A.key), 400);
});

test("workspace B cannot list, see, change or delete A's endpoints", async () => {
    const h = await createHook(A.key, { url: 'https://example.com/iso' });
    const l = await req('GET', '/engram/v1/webhooks', B.key);
    assert.equal(l.status, 200);
    assert.ok(!l.json.data.some((x) => x.id === h.id));
    engramError(await req('GET', `/engram/v1/webhooks/${h.id}`, B.key), 404);
    engramError(await req('PATCH', `/engram/v1/webhooks/${h.id}`, B.key, { enabled: false }), 404);
    engramError(await req('DELETE', `/engram/v1/webhooks/${h.id}`, B.key), 404);
    engramError(await req('GET', `/engram/v1/webhooks/${h.id}/deliveries`, B.key), 404);
    engramError(await req('GET', '/engram/v1/webhooks', undefined), 401);
    assert.equal((await req('GET', `/engram/v1/webhooks/${h.id}`, A.key)).status, 200);
});

/* ---------------------------------------------------------------- deliveries */

test('fency and hindsight signatures are HMAC-SHA256 of the exact body; types filter', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('whSig', { redisUrl: redis.url });
    const f = await createHook(ws.key, { url: rx.url, signing: 'fency', event_types: ['memory.*'] });
    const h = await createHook(ws.key, { url: rx.url, signing: 'hindsight', secret: 'example-secret' });
    await emit(ws.key, 'agent.task.created', { id: 't1' }); // only the hindsight one matches
    const ev = await emit(ws.key, 'memory.created', { id: 'm1', text: 'café' });
    await waitFor(() => rx.requests.length >= 3, { timeoutMs: 10000, what: '3 deliveries' });
    await sleep(100);
    assert.equal(rx.requests.length, 3);
    const fr = rx.requests.filter((r) => r.headers['x-fency-signature']);
    assert.equal(fr.length, 1);
    // A fency endpoint gets the event in Fency's envelope (fency_webhooks.test.mjs has the rest).
    const env = JSON.parse(fr[0].body);
    assert.match(env.id, /^evt_[0-9a-f]{32}$/);
    assert.deepEqual([env.version, env.type, env.entity], ['1', ev.type, ev.entity]);
    assert.equal(fr[0].headers['content-type'], 'application/json');
    assert.equal(fr[0].headers['x-fency-signature'], hmacHex(f.secret, fr[0].body));
    const hr = rx.requests.filter((r) => r.headers['x-hindsight-signature']);
    assert.equal(hr.length, 2);
    for (const r of hr) assert.equal(r.headers['x-hindsight-signature'], hmacHex('example-secret', r.body));
    assert.deepEqual(hr.map((r) => JSON.parse(r.body).type).sort(), ['agent.task.created', 'memory.created']);

    const d = await waitDelivery(ws.key, f.id, (x) => x.status === 'succeeded', 'fency delivery succeeded');
    assert.match(d.id, /^msg_[0-9a-f]+$/);
    assert.equal(d.event_id, ev.id);
    assert.equal(d.event_type, 'memory.created');
    assert.equal(d.attempts.length, 1);
    assert.equal(d.attempts[0].status_code, 200);
    assert.equal(typeof d.attempts[0].latency_ms, 'number');
    assert.equal(d.attempts[0].response_headers['x-receiver'], 'test');
    assert.equal(d.next_attempt_at, null);
    assert.equal((await deliveries(ws.key, h.id)).data.length, 2);
});

test('500 then 200: delivered on the retry, both attempts logged', async (t) => {
    const rx = await new Receiver({ reply: (_, n) => (n === 1 ? 500 : 200) }).start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('whRetry', { redisUrl: redis.url });
    const h = await createHook(ws.key, { url: rx.url });
    await emit(ws.key, 'memory.created', { id: 'm' });
    const d = await waitDelivery(ws.key, h.id, (x) => x.status === 'succeeded', 'succeeded');
    assert.deepEqual(d.attempts.map((a) => a.status_code), [500, 200]);
    assert.match(d.attempts[0].error, /500/);
    assert.equal(d.attempts[1].error, null);
    assert.equal(rx.uniqueIds().size, 1);
    assert.deepEqual([...rx.uniqueIds()], [d.id]);
});

test('receiver down, then up: delivered', async (t) => {
    const port = await freePort();
    const ws = await workspaceWithKey('whDown', { redisUrl: redis.url });
    const rx = new Receiver({ port });
    t.after(() => rx.stop());
    const h = await createHook(ws.key, { url: rx.url });
    await emit(ws.key, 'memory.created', { id: 'm' });
    const failed = await waitDelivery(ws.key, h.id, (x) => x.attempts.length >= 2, 'two failed attempts');
    assert.equal(failed.status, 'retrying');
    assert.equal(failed.attempts[0].status_code, null);
    assert.ok(failed.attempts[0].error);
    assert.ok(failed.next_attempt_at);
    await rx.start();
    const d = await waitDelivery(ws.key, h.id, (x) => x.status === 'succeeded', 'succeeded');
    assert.equal(d.attempts.at(-1).status_code, 200);
    assert.equal(rx.requests.length, 1);
});

test('410 disables the endpoint; re-enabling clears the reason; a manual retry delivers', async (t) => {
    let gone = true;
    const rx = await new Receiver({ reply: () => (gone ? 410 : 200) }).start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('whGone', { redisUrl: redis.url });
    const h = await createHook(ws.key, { url: rx.url });
    await emit(ws.key, 'memory.created', { id: 'm' });
    const d = await waitDelivery(ws.key, h.id, (x) => x.status === 'failed', 'failed');
    assert.equal(d.attempts.length, 1);
    assert.equal(d.attempts[0].status_code, 410);
    const g = await req('GET', `/engram/v1/webhooks/${h.id}`, ws.key);
    assert.equal(g.json.enabled, false);
    assert.equal(g.json.disabled_reason, '410 Gone from receiver');

    // Disabled: new events make no deliveries.
    await emit(ws.key, 'memory.created', { id: 'm2' });
    await sleep(300);
    assert.equal(rx.requests.length, 1);
    assert.equal((await deliveries(ws.key, h.id)).data.length, 1);

    // Only failed deliveries can be retried, and only through their endpoint.
    engramError(await req('POST', `/engram/v1/webhooks/${h.id}/deliveries/msg_nope/retry`, ws.key), 404);
    const other = await createHook(ws.key, { url: 'https://example.com/x', enabled: false });
    engramError(await req('POST', `/engram/v1/webhooks/${other.id}/deliveries/${d.id}/retry`, ws.key), 404);
    engramError(await req('POST', `/engram/v1/webhooks/${h.id}/deliveries/${d.id}/retry`, B.key), 404);

    gone = false;
    const p = await req('PATCH', `/engram/v1/webhooks/${h.id}`, ws.key, { enabled: true });
    assert.equal(p.json.enabled, true);
    assert.equal(p.json.disabled_reason, null);
    const r = await req('POST', `/engram/v1/webhooks/${h.id}/deliveries/${d.id}/retry`, ws.key);
    assert.equal(r.status, 202, r.body);
    const ok = await waitDelivery(ws.key, h.id, (x) => x.id === d.id && x.status === 'succeeded', 'retried');
    assert.deepEqual(ok.attempts.map((a) => a.status_code), [410, 200]);
    assert.deepEqual([...rx.uniqueIds()], [d.id]);
    engramError(await req('POST', `/engram/v1/webhooks/${h.id}/deliveries/${d.id}/retry`, ws.key), 409);
});

test('deliveries page newest first', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('whPage', { redisUrl: redis.url });
    const h = await createHook(ws.key, { url: rx.url });
    const evs = [];
    for (let i = 0; i < 5; i++) evs.push(await emit(ws.key, 'memory.created', { id: `m${i}` }));
    const seen = [];
    let cursor = null;
    for (let i = 0; i < 10; i++) {
        const p = await deliveries(ws.key, h.id, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...p.data.map((x) => x.event_id));
        assert.equal(p.has_more, p.next_cursor !== null);
        if (!p.has_more) break;
        cursor = p.next_cursor;
    }
    assert.deepEqual(seen, evs.map((e) => e.id).reverse());
});

test('kill -9 with deliveries pending: after a restart every delivery arrives', async (t) => {
    const port = await freePort();
    const rx = new Receiver({ port });
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('whKill', { redisUrl: redis.url });
    const h = await createHook(ws.key, { url: rx.url });
    const N = 20;
    const ids = [];
    for (let i = 0; i < N; i++) ids.push((await emit(ws.key, 'memory.created', { id: `k${i}` })).id);
    await waitFor(async () => {
        const p = await deliveries(ws.key, h.id, '?limit=100');
        return p.data.length === N && p.data.every((x) => x.attempts.length >= 1);
    }, { timeoutMs: 10000, what: 'a failed attempt for every delivery' });
    await srv.stop('SIGKILL');
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    await rx.start();
    await waitFor(() => rx.uniqueIds().size === N, { timeoutMs: 20000, intervalMs: 100, what: `${N} unique deliveries` });
    const p = await deliveries(ws.key, h.id, '?limit=100');
    assert.deepEqual(p.data.map((x) => x.event_id).sort(), [...ids].sort());
    await waitFor(async () => (await deliveries(ws.key, h.id, '?limit=100')).data.every((x) => x.status === 'succeeded'),
        { timeoutMs: 10000, what: 'all succeeded' });
});
