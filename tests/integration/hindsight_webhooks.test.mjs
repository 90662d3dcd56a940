// Hindsight bank webhooks: CRUD and every bad input (pydantic-style 422s, {"detail"} 404s),
// workspace and bank isolation, and deliveries to a real receiver: Hindsight's body and headers,
// the signature recomputed here (and absent without a secret), GET with params, 500 then 200
// delivered on the retry, 6 attempts then failed, and a bank's webhooks gone with the bank.
// Bank events are emitted through engram's POST /engram/v1/events, whose entity carries the
// bank_id (the retain pipeline uses eg_bank_event_emit, which writes the same entity). A private
// Redis keeps other suites' engramd processes off this suite's "webhooks" queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, waitFor, sleep, PrivateRedis } from './harness.mjs';
import { Receiver, hmacHex } from './webhook_receiver.mjs';

const ENV = {
    ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
    ENGRAM_WEBHOOK_RETRY_SCALE: '0.0002', // 5 s -> 1 ms, 5 min -> 60 ms, 30 min -> 0.36 s, 5 h -> 3.6 s
    ENGRAM_WEBHOOK_VISIBILITY: '2s',
    ENGRAM_ACCESS_LOG: 'off',
};

let redis, srv, A, B;

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    [A, B] = await Promise.all([workspaceWithKey('hwA', { redisUrl: redis.url }),
        workspaceWithKey('hwB', { redisUrl: redis.url })]);
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

const P = '/hindsight/v1/default/banks';
const hooks = (bank) => `${P}/${encodeURIComponent(bank)}/webhooks`;
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/;

function call(key, method, path, body) {
    const opts = { key };
    if (body !== undefined) {
        opts.body = typeof body === 'string' ? body : JSON.stringify(body);
        opts.headers = { 'content-type': 'application/json' };
    }
    return srv.request(method, path, opts);
}

async function createHook(key, bank, body, status = 201) {
    const r = await call(key, 'POST', hooks(bank), body);
    assert.equal(r.status, status, r.body);
    return r.json;
}

function detail(res, status) {
    assert.equal(res.status, status, res.body);
    assert.ok(res.json && 'detail' in res.json, res.body);
    return res.json.detail;
}

// The 422 list must hold an error at loc of type type.
function invalid(res, loc, type) {
    const d = detail(res, 422);
    assert.ok(Array.isArray(d), res.body);
    const e = d.find((x) => JSON.stringify(x.loc) === JSON.stringify(loc));
    assert.ok(e, `no error at ${JSON.stringify(loc)}: ${res.body}`);
    if (type) assert.equal(e.type, type, res.body);
    assert.equal(typeof e.msg, 'string');
    return e;
}

// A bank event as eg_bank_event_emit writes it, through engram's emit route.
async function emit(key, bank, type = 'retain.completed', extra = {}) {
    const op = extra.operation_id || `op-${Math.random().toString(36).slice(2)}`;
    const entity = {
        id: op, bank_id: bank, operation_id: op, status: 'completed',
        timestamp: '2026-01-15T10:30:00.123000+00:00', data: { document_id: 'doc-1', tags: null },
        ...extra,
    };
    const r = await srv.request('POST', '/engram/v1/events', { key, body: { type, entity } });
    assert.equal(r.status, 201, r.body);
    return entity;
}

async function deliveries(key, bank, id, qs = '') {
    const r = await call(key, 'GET', `${hooks(bank)}/${id}/deliveries${qs}`);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function waitDelivery(key, bank, id, pred, what, timeoutMs = 15000) {
    return waitFor(async () => (await deliveries(key, bank, id)).items.find(pred),
        { timeoutMs, intervalMs: 50, what });
}

/* ---------------------------------------------------------------- CRUD */

test('create fills the defaults, creates the bank, never returns the secret', async () => {
    const bank = `crud ${Date.now()}`;
    const h = await createHook(A.key, bank, { url: 'https://example.com/hook', secret: 'shh' });
    assert.match(h.id, UUID4);
    assert.equal(h.bank_id, bank);
    assert.equal(h.url, 'https://example.com/hook');
    assert.deepEqual(h.event_types, ['consolidation.completed']);
    assert.equal(h.enabled, true);
    assert.deepEqual(h.http_config, { method: 'POST', timeout_seconds: 30, headers: {}, params: {} });
    assert.match(h.created_at, ISO);
    assert.match(h.updated_at, ISO);
    assert.equal('secret' in h, false);

    // Banks are created lazily on writes: the webhook made this one.
    const prof = await call(A.key, 'GET', `${P}/${encodeURIComponent(bank)}/profile`);
    assert.equal(prof.status, 200, prof.body);
    assert.equal(prof.json.name, bank);

    const l = await call(A.key, 'GET', hooks(bank));
    assert.equal(l.status, 200, l.body);
    assert.deepEqual(l.json, { items: [h] });
    // Reads create nothing: an unknown bank has no webhooks.
    const none = await call(A.key, 'GET', hooks(`never-${Date.now()}`));
    assert.deepEqual(none.json, { items: [] });
    const nb = await call(A.key, 'GET', `${P}/never-${Date.now()}/profile`);
    assert.equal(nb.status, 404);
});

test('PATCH changes only what is given; DELETE; unknown ids are 404 {"detail"}', async () => {
    const bank = `patch-${Date.now()}`;
    const h = await createHook(A.key, bank, {
        url: 'https://example.com/a', event_types: ['retain.completed'],
        http_config: { method: 'get', timeout_seconds: '12', headers: { 'X-A': '1' }, params: { p: 'v' } },
    });
    assert.deepEqual(h.http_config, { method: 'GET', timeout_seconds: 12, headers: { 'X-A': '1' }, params: { p: 'v' } });

    let p = await call(A.key, 'PATCH', `${hooks(bank)}/${h.id}`, { enabled: false, url: null });
    assert.equal(p.status, 200, p.body);
    assert.equal(p.json.enabled, false);
    assert.equal(p.json.url, 'https://example.com/a');
    assert.deepEqual(p.json.event_types, ['retain.completed']);
    assert.deepEqual(p.json.http_config, h.http_config);
    assert.equal(p.json.created_at, h.created_at);

    p = await call(A.key, 'PATCH', `${hooks(bank)}/${h.id}`, {
        url: 'http://example.com/b', event_types: ['retain.completed', 'memory_defense.triggered'],
        http_config: { timeout_seconds: 5 }, secret: null,
    });
    assert.equal(p.status, 200, p.body);
    assert.equal(p.json.url, 'http://example.com/b');
    assert.deepEqual(p.json.event_types, ['retain.completed', 'memory_defense.triggered']);
    // A new http_config replaces the old one, defaults and all.
    assert.deepEqual(p.json.http_config, { method: 'POST', timeout_seconds: 5, headers: {}, params: {} });

    assert.equal(detail(await call(A.key, 'PATCH', `${hooks(bank)}/${h.id}`, {}), 422), 'No fields provided to update');
    assert.equal(detail(await call(A.key, 'PATCH', `${hooks(bank)}/${h.id}`, { url: null, enabled: null }), 422),
        'No fields provided to update');

    const d = await call(A.key, 'DELETE', `${hooks(bank)}/${h.id}`);
    assert.equal(d.status, 200, d.body);
    assert.deepEqual(d.json, { success: true });
    assert.deepEqual((await call(A.key, 'GET', hooks(bank))).json, { items: [] });

    const missing = [
        ['DELETE', `${hooks(bank)}/${h.id}`],
        ['PATCH', `${hooks(bank)}/${h.id}`, { enabled: true }],
        ['GET', `${hooks(bank)}/${h.id}/deliveries`],
        ['PATCH', `${hooks(bank)}/not-a-uuid`, { enabled: true }],
        ['DELETE', `${hooks(bank)}/wh_abcdefghijklmnopqrstuvwx`],
        ['GET', `${hooks(bank)}/..%2F..%2Fx/deliveries`],
    ];
    for (const [m, path, body] of missing) {
        assert.equal(detail(await call(A.key, m, path, body), 404), 'Webhook not found', `${m} ${path}`);
    }
});

test('every bad input is a pydantic-style 422', async () => {
    const bank = `bad-${Date.now()}`;
    const post = (body) => call(A.key, 'POST', hooks(bank), body);
    invalid(await post({}), ['body', 'url'], 'missing');
    invalid(await post({ url: 42 }), ['body', 'url'], 'string_type');
    invalid(await post({ url: null }), ['body', 'url'], 'string_type');
    for (const url of ['ftp://example.com/x', '/relative', 'http://user:pw@example.com/', 'nope']) {
        invalid(await post({ url }), ['body', 'url'], 'value_error');
    }
    const u = 'https://example.com/h';
    invalid(await post({ url: u, secret: 5 }), ['body', 'secret'], 'string_type');
    invalid(await post({ url: u, event_types: 'retain.completed' }), ['body', 'event_types'], 'list_type');
    invalid(await post({ url: u, event_types: null }), ['body', 'event_types'], 'list_type');
    invalid(await post({ url: u, event_types: ['retain.completed', 7] }), ['body', 'event_types', 1], 'string_type');
    const e = invalid(await post({ url: u, event_types: ['memory.created'] }), ['body', 'event_types'], 'value_error');
    assert.match(e.msg, /retain\.completed/);
    invalid(await post({ url: u, event_types: ['retain.*'] }), ['body', 'event_types'], 'value_error');
    invalid(await post({ url: u, enabled: 'maybe' }), ['body', 'enabled'], 'bool_parsing');
    invalid(await post({ url: u, enabled: null }), ['body', 'enabled'], 'bool_type');
    invalid(await post({ url: u, http_config: 'x' }), ['body', 'http_config'], 'model_attributes_type');
    invalid(await post({ url: u, http_config: { method: 'PUT' } }), ['body', 'http_config', 'method'], 'value_error');
    invalid(await post({ url: u, http_config: { method: 1 } }), ['body', 'http_config', 'method'], 'string_type');
    invalid(await post({ url: u, http_config: { timeout_seconds: 0 } }), ['body', 'http_config', 'timeout_seconds'], 'greater_than_equal');
    invalid(await post({ url: u, http_config: { timeout_seconds: 301 } }), ['body', 'http_config', 'timeout_seconds'], 'less_than_equal');
    invalid(await post({ url: u, http_config: { timeout_seconds: 'soon' } }), ['body', 'http_config', 'timeout_seconds'], 'int_parsing');
    invalid(await post({ url: u, http_config: { timeout_seconds: 1.5 } }), ['body', 'http_config', 'timeout_seconds'], 'int_from_float');
    invalid(await post({ url: u, http_config: { headers: [] } }), ['body', 'http_config', 'headers'], 'dict_type');
    invalid(await post({ url: u, http_config: { headers: { 'X-N': 1 } } }), ['body', 'http_config', 'headers', 'X-N'], 'string_type');
    invalid(await post({ url: u, http_config: { headers: { Host: 'evil' } } }), ['body', 'http_config', 'headers'], 'value_error');
    invalid(await post({ url: u, http_config: { headers: { 'X-A': 'a\r\nX-B: b' } } }), ['body', 'http_config', 'headers'], 'value_error');
    invalid(await post({ url: u, http_config: { headers: { 'bad name': 'v' } } }), ['body', 'http_config', 'headers'], 'value_error');
    invalid(await post({ url: u, http_config: { params: { p: ['x'] } } }), ['body', 'http_config', 'params', 'p'], 'string_type');
    assert.equal(detail(await post('{"url":'), 422)[0].type, 'json_invalid');
    invalid(await post('[1]'), ['body'], 'model_attributes_type');
    detail(await call(A.key, 'POST', hooks(bank)), 422);
    // Nothing was created by any of them.
    assert.deepEqual((await call(A.key, 'GET', hooks(bank))).json, { items: [] });

    const h = await createHook(A.key, bank, { url: u });
    const patch = (body) => call(A.key, 'PATCH', `${hooks(bank)}/${h.id}`, body);
    invalid(await patch({ url: 'ftp://x' }), ['body', 'url'], 'value_error');
    invalid(await patch({ event_types: ['nope'] }), ['body', 'event_types'], 'value_error');
    invalid(await patch({ enabled: [] }), ['body', 'enabled'], 'bool_type');
    invalid(await patch({ http_config: { method: 'DELETE' } }), ['body', 'http_config', 'method'], 'value_error');
    invalid(await call(A.key, 'GET', `${hooks(bank)}/${h.id}/deliveries?limit=0`), ['query', 'limit'], 'greater_than_equal');
    invalid(await call(A.key, 'GET', `${hooks(bank)}/${h.id}/deliveries?limit=201`), ['query', 'limit'], 'less_than_equal');
    invalid(await call(A.key, 'GET', `${hooks(bank)}/${h.id}/deliveries?limit=x`), ['query', 'limit'], 'int_parsing');
    invalid(await call(A.key, 'GET', `${hooks(bank)}/${h.id}/deliveries?cursor=abc`), ['query', 'cursor'], 'value_error');
    // An unchanged webhook after all that.
    assert.deepEqual((await call(A.key, 'GET', hooks(bank))).json.items, [h]);
});

test("another workspace's or bank's webhook id is 404; no key is 401", async () => {
    const bank = `iso-${Date.now()}`;
    const h = await createHook(A.key, bank, { url: 'https://example.com/iso' });
    for (const [key, b] of [[B.key, bank], [A.key, `${bank}-other`]]) {
        assert.deepEqual((await call(key, 'GET', hooks(b))).json, { items: [] });
        detail(await call(key, 'PATCH', `${hooks(b)}/${h.id}`, { enabled: false }), 404);
        detail(await call(key, 'DELETE', `${hooks(b)}/${h.id}`), 404);
        detail(await call(key, 'GET', `${hooks(b)}/${h.id}/deliveries`), 404);
    }
    detail(await call(undefined, 'GET', hooks(bank)), 401);
    // Not reachable through engram's own endpoint routes either.
    assert.equal((await srv.request('GET', `/engram/v1/webhooks/${h.id}`, { key: A.key })).status, 404);
    assert.ok(!(await srv.request('GET', '/engram/v1/webhooks', { key: A.key })).json.data.some((x) => x.id === h.id));
    assert.deepEqual((await call(A.key, 'GET', hooks(bank))).json.items, [h]);
});

/* ---------------------------------------------------------------- deliveries */

test('Hindsight body and headers; signature only with a secret; only matching events', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwSig', { redisUrl: redis.url });
    const bank = 'bank é/1';
    const signed = await createHook(ws.key, bank, {
        url: `${rx.url}?who=signed`, secret: 'hook-secret', event_types: ['retain.completed'],
        http_config: { headers: { 'X-Team': 't1' } },
    });
    const plain = await createHook(ws.key, bank, { url: `${rx.url}?who=plain`, event_types: ['retain.completed'] });
    await createHook(ws.key, bank, { url: `${rx.url}?who=off`, event_types: ['retain.completed'], enabled: false });
    // Workspace endpoints get the same event as it is in the log.
    const own = await srv.request('POST', '/engram/v1/webhooks',
        { key: ws.key, body: { url: `${rx.url}?who=workspace`, signing: 'fency', event_types: ['retain.*'] } });
    assert.equal(own.status, 201, own.body);

    await emit(ws.key, 'other bank');                       // another bank
    await emit(ws.key, bank, 'consolidation.completed');   // a type they did not ask for
    await emit(ws.key, bank, 'memory.created');            // not a bank event type
    const ev = await emit(ws.key, bank, 'retain.completed', { data: { document_id: 'doc-1', tags: ['a'], n: null } });
    await waitFor(() => rx.requests.filter((r) => !r.url.includes('workspace')).length >= 2,
        { timeoutMs: 10000, what: 'two bank deliveries' });
    await waitFor(() => rx.requests.filter((r) => r.url.includes('workspace')).length >= 2,
        { timeoutMs: 10000, what: 'two workspace deliveries' });
    await sleep(300);
    const bankReqs = rx.requests.filter((r) => !r.url.includes('workspace'));
    assert.equal(bankReqs.length, 2, JSON.stringify(rx.requests.map((r) => r.url)));

    const body = JSON.stringify({
        event: 'retain.completed', bank_id: bank, operation_id: ev.operation_id, status: 'completed',
        timestamp: ev.timestamp, data: { document_id: 'doc-1', tags: ['a'] },
    });
    const s = bankReqs.find((r) => r.url.includes('who=signed'));
    const p = bankReqs.find((r) => r.url.includes('who=plain'));
    for (const r of [s, p]) {
        assert.equal(r.method, 'POST');
        assert.equal(r.body, body);
        assert.equal(r.headers['content-type'], 'application/json');
        assert.equal(r.headers['x-hindsight-event'], 'retain.completed');
    }
    assert.equal(s.headers['x-hindsight-signature'], hmacHex('hook-secret', s.body));
    assert.equal(s.headers['x-team'], 't1');
    assert.equal('x-hindsight-signature' in p.headers, false);
    assert.equal('x-team' in p.headers, false);
    const wreq = rx.requests.filter((r) => r.url.includes('workspace'));
    assert.deepEqual(wreq.map((r) => JSON.parse(r.body).type), ['retain.completed', 'retain.completed']);
    assert.deepEqual(JSON.parse(wreq.find((r) => r.body.includes(ev.operation_id)).body).entity, ev);

    const d = await waitDelivery(ws.key, bank, signed.id, (x) => x.status === 'completed', 'completed');
    assert.match(d.id, /^msg_[0-9a-f]+$/);
    assert.equal(d.webhook_id, signed.id);
    assert.equal(d.url, `${rx.url}?who=signed`);
    assert.equal(d.event_type, 'retain.completed');
    assert.equal(d.attempts, 1);
    assert.equal(d.last_response_status, 200);
    assert.equal(d.last_response_body, 'ok');
    assert.equal('last_error' in d, false);
    assert.equal('next_retry_at' in d, false);
    for (const k of ['last_attempt_at', 'created_at', 'updated_at']) assert.match(d[k], ISO, k);
    assert.equal((await deliveries(ws.key, bank, plain.id)).items.length, 1);
});

test('GET sends no body and the params as the query string', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwGet', { redisUrl: redis.url });
    await createHook(ws.key, 'g', {
        url: rx.url, secret: 'get-secret', event_types: ['consolidation.completed'],
        http_config: { method: 'GET', params: { a: '1', 'b c': 'x&y=é' }, timeout_seconds: 5 },
    });
    const ev = await emit(ws.key, 'g', 'consolidation.completed',
        { data: { observations_created: 2, error_message: null } });
    await waitFor(() => rx.requests.length >= 1, { timeoutMs: 10000, what: 'a GET delivery' });
    const r = rx.requests[0];
    assert.equal(r.method, 'GET');
    assert.equal(r.url, '/hook?a=1&b+c=x%26y%3D%C3%A9');
    assert.equal(r.body, '');
    assert.equal(r.headers['x-hindsight-event'], 'consolidation.completed');
    // The signature is of the body the event would have had.
    const body = JSON.stringify({
        event: 'consolidation.completed', bank_id: 'g', operation_id: ev.operation_id,
        status: 'completed', timestamp: ev.timestamp, data: { observations_created: 2 },
    });
    assert.equal(r.headers['x-hindsight-signature'], hmacHex('get-secret', body));
});

test('500 then 200: delivered on the retry, two attempts listed', async (t) => {
    const rx = await new Receiver({ reply: (_, n) => (n === 1 ? 500 : 200) }).start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwRetry', { redisUrl: redis.url });
    const h = await createHook(ws.key, 'r', { url: rx.url, event_types: ['retain.completed'] });
    await emit(ws.key, 'r');
    const d = await waitDelivery(ws.key, 'r', h.id, (x) => x.status === 'completed', 'completed');
    assert.equal(d.attempts, 2);
    assert.equal(d.last_response_status, 200);
    assert.equal(rx.requests.length, 2);
    assert.equal(rx.requests[0].body, rx.requests[1].body);
});

test('six attempts, then the delivery has failed', async (t) => {
    const rx = await new Receiver({ reply: () => 503 }).start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwFail', { redisUrl: redis.url });
    const h = await createHook(ws.key, 'f', { url: rx.url, event_types: ['memory_defense.triggered'] });
    await emit(ws.key, 'f', 'memory_defense.triggered', { data: { action: 'block', detector: 'sensitive_data' } });
    const pending = await waitDelivery(ws.key, 'f', h.id, (x) => x.attempts >= 2 && x.status === 'pending',
        'a retry scheduled');
    assert.match(pending.next_retry_at, ISO);
    assert.equal(pending.last_response_status, 503);
    assert.match(pending.last_error, /503/);
    const d = await waitDelivery(ws.key, 'f', h.id, (x) => x.status === 'failed', 'failed', 20000);
    assert.equal(d.attempts, 6);
    assert.equal('next_retry_at' in d, false);
    await sleep(200);
    assert.equal(rx.requests.length, 6);
});

test("another workspace's bank of the same name never gets the event", async (t) => {
    const rxA = await new Receiver().start();
    const rxB = await new Receiver().start();
    t.after(() => Promise.all([rxA.stop(), rxB.stop()]));
    const bank = `shared-${Date.now()}`;
    const ha = await createHook(A.key, bank, { url: rxA.url, event_types: ['retain.completed'] });
    const hb = await createHook(B.key, bank, { url: rxB.url, event_types: ['retain.completed'] });
    await emit(A.key, bank);
    await waitDelivery(A.key, bank, ha.id, (x) => x.status === 'completed', 'A delivered');
    await sleep(300);
    assert.equal(rxA.requests.length, 1);
    assert.equal(rxB.requests.length, 0);
    assert.deepEqual((await deliveries(B.key, bank, hb.id)).items, []);
});

test('deliveries page newest first with next_cursor', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwPage', { redisUrl: redis.url });
    const h = await createHook(ws.key, 'p', { url: rx.url, event_types: ['retain.completed'] });
    const ops = [];
    for (let i = 0; i < 5; i++) ops.push((await emit(ws.key, 'p', 'retain.completed', { operation_id: `op-${i}` })).operation_id);
    await waitFor(() => rx.requests.length >= 5, { timeoutMs: 10000, what: '5 deliveries' });
    const seen = [];
    let cursor;
    for (let i = 0; i < 10; i++) {
        const pg = await deliveries(ws.key, 'p', h.id, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.ok(pg.items.length <= 2);
        seen.push(...pg.items.map((x) => x.id));
        if (!pg.next_cursor) break;
        cursor = pg.next_cursor;
    }
    assert.equal(new Set(seen).size, 5);
    const bodies = new Map(rx.requests.map((r) => [JSON.parse(r.body).operation_id, r]));
    assert.deepEqual([...bodies.keys()].sort(), [...ops].sort());
});

test("deleting a bank deletes its webhooks", async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwDel', { redisUrl: redis.url });
    const h = await createHook(ws.key, 'gone', { url: rx.url, event_types: ['retain.completed'] });
    const keep = await createHook(ws.key, 'kept', { url: rx.url, event_types: ['retain.completed'] });
    const d = await call(ws.key, 'DELETE', `${P}/gone`);
    assert.equal(d.status, 200, d.body);
    assert.equal(d.json.success, true);
    assert.deepEqual((await call(ws.key, 'GET', hooks('gone'))).json, { items: [] });
    detail(await call(ws.key, 'GET', `${hooks('gone')}/${h.id}/deliveries`), 404);
    await emit(ws.key, 'gone');
    await emit(ws.key, 'kept');
    await waitDelivery(ws.key, 'kept', keep.id, (x) => x.status === 'completed', 'kept delivered');
    await sleep(300);
    assert.equal(rx.requests.length, 1);
    assert.equal(JSON.parse(rx.requests[0].body).bank_id, 'kept');
    // Deleting a bank that is not there (and has no webhooks) still succeeds.
    assert.equal((await call(ws.key, 'DELETE', `${P}/gone`)).status, 200);
});

test('a real retain (sync and async) delivers retain.completed to the bank webhook, workspace endpoints and watchers', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const ws = await workspaceWithKey('hwRetain', { redisUrl: redis.url });
    const bank = 'retain-bank';
    const hook = await createHook(ws.key, bank, { url: `${rx.url}?who=bank`, secret: 's3cret-value', event_types: ['retain.completed'] });
    const own = await srv.request('POST', '/engram/v1/webhooks',
        { key: ws.key, body: { url: `${rx.url}?who=workspace`, signing: 'hindsight', event_types: ['retain.completed'] } });
    assert.equal(own.status, 201, own.body);

    // sync retain of one document
    let r = await call(ws.key, 'POST', `${P}/${bank}/memories`,
        { items: [{ content: 'Greta plays the cello in an orchestra.', document_id: 'greta', tags: ['music'] }] });
    assert.equal(r.status, 200, r.body);
    await waitFor(() => rx.requests.filter((x) => x.url.includes('who=bank')).length >= 1,
        { timeoutMs: 10000, what: 'bank delivery of the sync retain' });
    const first = rx.requests.find((x) => x.url.includes('who=bank'));
    const body = JSON.parse(first.body);
    assert.equal(body.event, 'retain.completed');
    assert.equal(body.bank_id, bank);
    assert.equal(body.status, 'completed');
    assert.match(body.timestamp, ISO);
    assert.equal(body.data.document_id, 'greta');
    assert.equal(first.headers['x-hindsight-signature'], hmacHex('s3cret-value', first.body));

    // async retain: the event names the operation
    r = await call(ws.key, 'POST', `${P}/${bank}/memories`,
        { items: [{ content: 'Hugo repairs vintage radios.' }], async: true });
    assert.equal(r.status, 200, r.body);
    const opId = r.json.operation_id;
    await waitFor(() => rx.requests.some((x) => x.url.includes('who=bank') && JSON.parse(x.body).operation_id === opId),
        { timeoutMs: 15000, what: 'bank delivery of the async retain' });
    await waitFor(() => rx.requests.filter((x) => x.url.includes('who=workspace')).length >= 2,
        { timeoutMs: 10000, what: 'workspace deliveries' });
    const wbodies = rx.requests.filter((x) => x.url.includes('who=workspace')).map((x) => JSON.parse(x.body));
    assert.ok(wbodies.every((e) => e.type === 'retain.completed' && e.entity.bank_id === bank), JSON.stringify(wbodies));
    assert.ok(wbodies.some((e) => e.entity.operation_id === opId));
    // the events are in the workspace log too
    const log = await srv.request('GET', '/engram/v1/events?type=retain.completed', { key: ws.key });
    assert.equal(log.status, 200, log.body);
    assert.ok(log.json.data.length >= 2, log.body);
    const d = await waitDelivery(ws.key, bank, hook.id, (x) => x.status === 'completed', 'completed');
    assert.equal(d.event_type, 'retain.completed');
});
