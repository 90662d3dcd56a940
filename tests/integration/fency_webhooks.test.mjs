// Fency webhooks: an endpoint registered with signing "fency" gets every event in Fency's
// envelope {id:"evt_<32 hex>",version:"1",type,createdAt (µs),organizationId,entity}, signed with
// x-fency-signature (recomputed here over the raw body); a retry keeps the same id; endpoints of
// the other conventions still get engram's event. Events come through engram's event API and
// through the real memory and agent-task routes. The Fency event id is recomputed here from
// the engram event id (AES-128 of its two numbers under a key derived from the workspace id, as
// docs/fency.md describes), so the C code is checked against an independent implementation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, createKey, waitFor, sleep, PrivateRedis } from './harness.mjs';
import { Receiver, hmacHex } from './webhook_receiver.mjs';
import { fencyEventId, fencyOrgId, fencyTime } from './fency_ids.mjs';

const ENV = {
    ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
    ENGRAM_WEBHOOK_RETRY_SCALE: '0.0002',
    ENGRAM_WEBHOOK_VISIBILITY: '2s',
    ENGRAM_ACCESS_LOG: 'off',
};
const SECRET = 'fency-hook-secret-1';

let redis, srv;

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
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

async function emit(key, type, entity) {
    const r = await req('POST', '/engram/v1/events', key, { type, entity });
    assert.equal(r.status, 201, r.body);
    return r.json;
}

// Check one delivered request against the engram event it carries.
function checkEnvelope(r, ev, wsId) {
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-fency-signature'], hmacHex(SECRET, r.body));
    assert.match(r.headers['x-fency-signature'], /^sha256=[0-9a-f]{64}$/);
    assert.equal(r.headers['webhook-signature'], undefined);
    const b = JSON.parse(r.body);
    assert.deepEqual(Object.keys(b), ['id', 'version', 'type', 'createdAt', 'organizationId', 'entity']);
    assert.match(b.id, /^evt_[0-9a-f]{32}$/);
    assert.equal(b.id, fencyEventId(wsId, ev.id));
    assert.equal(b.version, '1');
    assert.equal(b.type, ev.type);
    assert.match(b.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.equal(b.createdAt, fencyTime(ev.createdAt));
    assert.equal(b.organizationId, fencyOrgId(wsId));
    assert.deepEqual(b.entity, ev.entity);
    return b;
}

test('memory.* and agent.task.* events reach a fency endpoint in the envelope, signed', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const { ws, key } = await workspaceWithKey('fyHook', { redisUrl: redis.url });
    await createHook(key, { url: `${rx.url}?fency`, signing: 'fency', secret: SECRET,
        event_types: ['memory.*', 'agent.task.*'] });
    await createHook(key, { url: `${rx.url}?standard`, event_types: ['memory.created'] });

    const memory = {
        id: 'mem_0123456789abcdef0123456789abcdef', createdAt: '2026-01-02T03:04:05.123456Z',
        updatedAt: '2026-01-02T03:04:05.123456Z', sourceType: 'TEXT', typeId: 'mty_00112233445566778899aabbccddeeff',
        title: 'Café notes', content: null, contentParts: null, contentStatus: 'SYNCHRONIZING',
        metadata: { team: 'ops', n: 3, tags: ['a', 'b'], ok: true },
    };
    const task = {
        id: 'ata_00112233445566778899aabbccddeeff', createdAt: '2026-01-02T03:04:05.123456Z',
        updatedAt: '2026-01-02T03:04:05.123456Z', status: 'IN_PROGRESS', taskType: 'MEMORY_SEARCH',
        succeededAt: null, successResponse: null, failedAt: null, failureResponse: null, metadata: {},
    };
    const evs = [];
    evs.push(await emit(key, 'memory.created', memory));
    evs.push(await emit(key, 'memory.updated', { ...memory, contentStatus: 'SYNCHRONIZED', content: 'x', contentParts: 1 }));
    evs.push(await emit(key, 'memory.deleted', memory));
    evs.push(await emit(key, 'agent.task.created', task));
    evs.push(await emit(key, 'agent.task.updated', { ...task, status: 'SUCCEEDED' }));
    await emit(key, 'other.thing', { id: 'x' }); // matches neither endpoint

    const fency = () => rx.requests.filter((r) => r.url.endsWith('?fency'));
    await waitFor(() => fency().length >= 5 && rx.requests.length >= 6, { timeoutMs: 15000, what: '6 deliveries' });
    await sleep(200);
    assert.equal(fency().length, 5);
    const seen = new Map();
    for (const r of fency()) {
        const b = JSON.parse(r.body);
        const ev = evs.find((e) => e.type === b.type);
        assert.ok(ev, b.type);
        checkEnvelope(r, ev, ws.id);
        seen.set(b.type, b.id);
    }
    assert.equal(seen.size, 5);
    assert.equal(new Set(seen.values()).size, 5); // distinct events, distinct ids

    // The standard endpoint still gets engram's own event.
    const std = rx.requests.filter((r) => r.url.endsWith('?standard'));
    assert.equal(std.length, 1);
    assert.equal(std[0].body, JSON.stringify(evs[0]));
    assert.ok(std[0].headers['webhook-signature']);
});

test('a retried delivery carries the same event id and body', async (t) => {
    const rx = await new Receiver({ reply: (_, n) => (n <= 2 ? 503 : 200) }).start();
    t.after(() => rx.stop());
    const { ws, key } = await workspaceWithKey('fyRetry', { redisUrl: redis.url });
    const h = await createHook(key, { url: rx.url, signing: 'fency', secret: SECRET });
    const ev = await emit(key, 'agent.task.created', { id: 'ata_ffeeddccbbaa99887766554433221100', status: 'IN_PROGRESS' });
    await waitFor(() => rx.requests.length >= 3, { timeoutMs: 15000, what: 'three attempts' });
    const bodies = rx.requests.map((r) => r.body);
    assert.equal(new Set(bodies).size, 1);
    const b = checkEnvelope(rx.requests[2], ev, ws.id);
    for (const r of rx.requests) assert.equal(JSON.parse(r.body).id, b.id);
    const d = await waitFor(async () => {
        const r = await req('GET', `/engram/v1/webhooks/${h.id}/deliveries`, key);
        return r.json.data.find((x) => x.status === 'succeeded');
    }, { timeoutMs: 10000, what: 'delivery succeeded' });
    assert.deepEqual(d.attempts.map((a) => a.status_code), [503, 503, 200]);
});

test('two workspaces: different organization ids and event ids', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const a = await workspaceWithKey('fyOrgA', { redisUrl: redis.url });
    const b = await workspaceWithKey('fyOrgB', { redisUrl: redis.url });
    await createHook(a.key, { url: `${rx.url}?a`, signing: 'fency', secret: SECRET });
    await createHook(b.key, { url: `${rx.url}?b`, signing: 'fency', secret: SECRET });
    const ea = await emit(a.key, 'memory.created', { id: 'm' });
    const eb = await emit(b.key, 'memory.created', { id: 'm' });
    await waitFor(() => rx.requests.length >= 2, { timeoutMs: 15000, what: 'two deliveries' });
    const ra = checkEnvelope(rx.requests.find((r) => r.url.endsWith('?a')), ea, a.ws.id);
    const rb = checkEnvelope(rx.requests.find((r) => r.url.endsWith('?b')), eb, b.ws.id);
    assert.notEqual(ra.organizationId, rb.organizationId);
    assert.notEqual(ra.id, rb.id);
});

test('the memory and agent-task routes emit what a fency endpoint gets; GET /v1/events/{id} agrees', async (t) => {
    const rx = await new Receiver().start();
    t.after(() => rx.stop());
    const { ws, key } = await workspaceWithKey('fyHookReal', { redisUrl: redis.url });
    const pk = await createKey({ workspace: ws.name, publishable: true, redisUrl: redis.url });
    await createHook(key, { url: rx.url, signing: 'fency', secret: SECRET, event_types: ['memory.*', 'agent.task.*'] });
    const fy = async (method, path, body) => {
        const r = await req(method, `/fency${path}`, key, body);
        assert.equal(r.status, 200, `${method} ${path}: ${r.body}`);
        return r.json;
    };
    const bodies = (type, id) => rx.requests.map((r) => ({ r, b: JSON.parse(r.body) }))
        .filter(({ b }) => b.type === type && b.entity.id === id);

    // A TEXT memory: created (SYNCHRONIZING), updated (SYNCHRONIZED), deleted.
    const type = await fy('POST', '/v1/memory-types', { name: 'Notes', description: 'notes' });
    const m = await fy('POST', '/v1/memories', { memoryTypeId: type.id, sourceType: 'TEXT', title: 'Café', text: 'The café opens at eight.', metadata: { floor: 2 } });
    const synced = await waitFor(async () => {
        const g = await fy('GET', `/v1/memories/${m.id}`);
        return g.contentStatus === 'SYNCHRONIZED' && g;
    }, { timeoutMs: 20000, what: 'memory synchronized' });
    const deleted = await fy('DELETE', `/v1/memories/${m.id}`);
    await waitFor(() => bodies('memory.deleted', m.id).length === 1, { timeoutMs: 15000, what: 'memory.deleted delivered' });
    const [created] = bodies('memory.created', m.id);
    assert.deepEqual(created.b.entity, m);
    const updated = bodies('memory.updated', m.id);
    assert.deepEqual(updated.at(-1).b.entity, synced);
    assert.deepEqual(bodies('memory.deleted', m.id)[0].b.entity, deleted);

    // An agent task (offline path: no model configured): created IN_PROGRESS, updated SUCCEEDED.
    const token = async (body) => (await fy('POST', '/v1/sessions', body)).clientToken;
    const pub = (path, ct, st, body) => srv.request('POST', `/fency${path}`, {
        headers: { 'X-Fency-Publishable-Key': pk, 'X-Fency-Client-Token': ct, ...(st ? { 'X-Fency-Stream-Token': st } : {}) },
        body,
    });
    const s = await pub('/pub/ct/streams', await token({ createStream: {} }));
    assert.equal(s.status, 201, s.body);
    const ct = await token({ createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION', metadata: { from: 'webhook test' } } });
    const a = await pub('/pub/ct-st/agent-tasks', ct, s.json.token,
        { streamingChatCompletionTask: { messages: [{ role: 'USER', content: 'hello' }], model: 'openai/gpt-4.1' } });
    assert.equal(a.status, 201, a.body);
    const task = await waitFor(async () => {
        const g = await fy('GET', `/v1/agent-tasks/${a.json.id}`);
        return g.status !== 'IN_PROGRESS' && g;
    }, { timeoutMs: 20000, what: 'task settled' });
    await waitFor(() => bodies('agent.task.updated', task.id).length >= 1, { timeoutMs: 15000, what: 'agent.task.updated delivered' });
    const [tc] = bodies('agent.task.created', task.id);
    assert.equal(tc.b.entity.status, 'IN_PROGRESS');
    assert.deepEqual(tc.b.entity.metadata, { from: 'webhook test' });
    assert.deepEqual(bodies('agent.task.updated', task.id).at(-1).b.entity, task);

    // Every delivery is signed, in the envelope, and is what the face's event API shows.
    const log = (await req('GET', '/engram/v1/events?order=asc&limit=1000', key)).json.data;
    for (const { r, b } of [created, ...updated, ...bodies('memory.deleted', m.id), tc, ...bodies('agent.task.updated', task.id)]) {
        const ev = log.find((e) => fencyEventId(ws.id, e.id) === b.id);
        assert.ok(ev, `event ${b.id} is in the log`);
        checkEnvelope(r, ev, ws.id);
        const g = await req('GET', `/fency/v1/events/${b.id}`, key);
        assert.equal(g.status, 200, g.body);
        assert.equal(g.body, r.body);
    }
});
