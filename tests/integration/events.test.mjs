// The engram events API: emit (POST), list with paging / order / type filters, get by id,
// validation, workspace isolation and authentication.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, engramError, supervisedEngram } from './harness.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('evA'), workspaceWithKey('evB')]);
});

const bearer = (k) => ({ Authorization: `Bearer ${k}` });
const ID_RE = /^evt_\d+_\d+$/;

async function emit(key, body) {
    return srv.request('POST', '/engram/v1/events', { headers: bearer(key), body });
}

async function emitOk(key, type, entity) {
    const r = await emit(key, { type, entity });
    assert.equal(r.status, 201, r.body);
    return r.json;
}

async function list(key, qs = '') {
    const r = await srv.get(`/engram/v1/events${qs}`, { headers: bearer(key) });
    assert.equal(r.status, 200, r.body);
    assert.ok(Array.isArray(r.json.data), r.body);
    assert.equal(typeof r.json.has_more, 'boolean');
    assert.equal(r.json.has_more, r.json.next_cursor !== null, r.body);
    return r.json;
}

// Every page of a listing, following next_cursor.
async function listAll(key, qs) {
    const pages = [];
    let cursor = null;
    for (let i = 0; i < 50; i++) {
        const page = await list(key, `?${qs}${cursor ? `&cursor=${cursor}` : ''}`);
        pages.push(page.data.map((e) => e.id));
        if (!page.has_more) return pages;
        cursor = page.next_cursor;
    }
    throw new Error('too many pages');
}

/* ---------------------------------------------------------------- emit and get */

test('POST /engram/v1/events stores an event; GET by id returns it', async () => {
    const entity = { id: 'mem_1', text: 'café "quoted"', tags: ['a', 'b'], nested: { n: 1.5, ok: true, nil: null } };
    const ev = await emitOk(A.key, 'memory.created', entity);
    assert.match(ev.id, ID_RE);
    assert.equal(ev.type, 'memory.created');
    assert.equal(ev.workspaceId, A.ws.id);
    assert.deepEqual(ev.entity, entity);
    assert.ok(!Number.isNaN(Date.parse(ev.createdAt)), ev.createdAt);
    assert.ok(Math.abs(Date.parse(ev.createdAt) - Date.now()) < 60000, 'createdAt is now');
    assert.deepEqual(Object.keys(ev), ['id', 'type', 'createdAt', 'workspaceId', 'entity']);

    const g = await srv.get(`/engram/v1/events/${ev.id}`, { headers: bearer(A.key) });
    assert.equal(g.status, 200, g.body);
    assert.match(g.headers['content-type'], /application\/json/);
    assert.deepEqual(g.json, ev);
});

test('entity is optional (defaults to {})', async () => {
    const ev = await emitOk(A.key, 'ops.note', undefined);
    assert.deepEqual(ev.entity, {});
});

test('the newest event is first in the default listing', async () => {
    const ev = await emitOk(A.key, 'ops.latest', { id: 'x' });
    const page = await list(A.key, '?limit=5');
    assert.ok(page.data.length >= 1);
    assert.deepEqual(page.data[0], ev);
});

/* ---------------------------------------------------------------- paging, order, filters */

test('pagination with cursors, ascending and descending', async () => {
    const C = await workspaceWithKey('evPage');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await emitOk(C.key, i % 2 ? 'task.odd' : 'memory.even', { id: `e${i}`, i })).id);

    assert.deepEqual(await listAll(C.key, 'order=asc&limit=2'), [ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
    assert.deepEqual(await listAll(C.key, 'limit=2'), [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]);
    assert.deepEqual(await listAll(C.key, 'order=desc&limit=5'), [[...ids].reverse()]);
    assert.deepEqual(await listAll(C.key, 'order=asc'), [ids]);

    const p = await list(C.key, '?order=asc&limit=2');
    assert.equal(p.has_more, true);
    assert.equal(p.next_cursor, ids[1]);
    const last = await list(C.key, `?order=asc&cursor=${ids[4]}`);
    assert.deepEqual(last, { data: [], next_cursor: null, has_more: false });
    // Any event id is a cursor (exclusive).
    const mid = await list(C.key, `?order=asc&cursor=${ids[1]}&limit=1`);
    assert.deepEqual(mid.data.map((e) => e.id), [ids[2]]);
    assert.equal((await list(C.key, '?limit=1000')).data.length, 5);
});

test('type filter: exact, prefix wildcard, repeated', async () => {
    const C = await workspaceWithKey('evType');
    const a = await emitOk(C.key, 'memory.created', { id: 'm1' });
    const b = await emitOk(C.key, 'memory.deleted', { id: 'm1' });
    const c = await emitOk(C.key, 'agent.task.updated', { id: 't1' });
    const d = await emitOk(C.key, 'memory', { id: 'm2' });
    const ids = async (qs) => (await list(C.key, qs)).data.map((e) => e.id);

    assert.deepEqual(await ids('?order=asc&type=memory.*'), [a.id, b.id]);
    assert.deepEqual(await ids('?order=asc&type=memory'), [d.id]);
    assert.deepEqual(await ids('?order=asc&type=memory.created&type=agent.*'), [a.id, c.id]);
    assert.deepEqual(await ids('?type=*'), [d.id, c.id, b.id, a.id]);
    assert.deepEqual(await ids('?type=nothing.*'), []);
    assert.deepEqual(await listAll(C.key, 'order=asc&type=memory.*&limit=1'), [[a.id], [b.id]]);
    // entity_id: the entity's string "id" field, combinable with types.
    assert.deepEqual(await ids('?order=asc&entity_id=m1'), [a.id, b.id]);
    assert.deepEqual(await ids('?entity_id=m1&type=memory.deleted'), [b.id]);
    assert.deepEqual(await ids('?entity_id=nobody'), []);
});

/* ---------------------------------------------------------------- validation */

test('POST validation names the bad field', async () => {
    const bad = async (body, code, field) => {
        const e = engramError(await emit(A.key, body), 400, code);
        if (field) assert.match(e.message, new RegExp(`'${field}'`), e.message);
    };
    await bad({}, 'invalid_request', 'type');
    await bad({ entity: {} }, 'invalid_request', 'type');
    for (const type of ['', 'Memory.created', '1x', 'a..b', 'a.', 'a b', 'a-b', 'memory.*', 'a"b', 5, null, ['a']]) {
        await bad({ type, entity: {} }, 'invalid_request', 'type');
    }
    await bad({ type: 'a'.repeat(129) }, 'invalid_request', 'type');
    for (const entity of [[], 'x', 1, true, null]) {
        await bad({ type: 'ok.type', entity }, 'invalid_request', 'entity');
    }
    await bad([], 'invalid_request');
    await bad('"x"', 'invalid_request');
    engramError(await srv.request('POST', '/engram/v1/events', { headers: { ...bearer(A.key), 'content-type': 'application/json' }, body: '{"type":' }), 400, 'invalid_json');
    engramError(await srv.request('POST', '/engram/v1/events', { headers: bearer(A.key) }), 400, 'invalid_json');
    // The longest valid type is accepted.
    await emitOk(A.key, 'a'.repeat(128), {});
});

test('GET list validation names the bad parameter', async () => {
    const bad = async (qs, field) => {
        const r = await srv.get(`/engram/v1/events${qs}`, { headers: bearer(A.key) });
        const e = engramError(r, 400, 'invalid_request');
        assert.match(e.message, new RegExp(`'${field}'`), e.message);
    };
    for (const l of ['0', '1001', '-1', 'abc', '', '1.5']) await bad(`?limit=${l}`, 'limit');
    for (const c of ['abc', 'evt_1', '1-0', 'evt_1_x', '']) await bad(`?cursor=${c}`, 'cursor');
    for (const o of ['up', 'ASC', '']) await bad(`?order=${o}`, 'order');
    for (const t of ['Bad', 'a..b', 'memory*', '']) await bad(`?type=${encodeURIComponent(t)}`, 'type');
    for (const e of ['', 'x'.repeat(257)]) await bad(`?entity_id=${e}`, 'entity_id');
    await bad(`?${Array.from({ length: 33 }, (_, i) => `type=t${i}`).join('&')}`, 'type');
});

/* ---------------------------------------------------------------- isolation and auth */

test("another workspace's event is 404, and absent from its listing", async () => {
    const ev = await emitOk(A.key, 'secret.thing', { id: 's1' });
    engramError(await srv.get(`/engram/v1/events/${ev.id}`, { headers: bearer(B.key) }), 404, 'not_found');
    const mine = await srv.get(`/engram/v1/events/${ev.id}`, { headers: bearer(A.key) });
    assert.equal(mine.status, 200);
    const page = await list(B.key, '?limit=1000');
    assert.ok(!page.data.some((e) => e.id === ev.id), 'B lists A\'s event');
    assert.ok(page.data.every((e) => e.workspaceId === B.ws.id));
});

test('unknown and malformed ids are 404', async () => {
    for (const id of ['evt_1_0', 'evt_99999999999999_7', 'nope', 'evt_', '1-0', 'evt_1_0x']) {
        engramError(await srv.get(`/engram/v1/events/${id}`, { headers: bearer(A.key) }), 404, 'not_found');
    }
});

test('401 without a key; ?token= works on the GET routes only', async () => {
    const ev = await emitOk(A.key, 'auth.check', {});
    engramError(await srv.get('/engram/v1/events'), 401, 'unauthorized');
    engramError(await srv.get(`/engram/v1/events/${ev.id}`), 401, 'unauthorized');
    engramError(await srv.request('POST', '/engram/v1/events', { body: { type: 'a.b' } }), 401, 'unauthorized');
    engramError(await srv.get('/engram/v1/events', { headers: bearer(`sk_${'x'.repeat(40)}`) }), 401, 'unauthorized');

    const r = await srv.get(`/engram/v1/events?token=${A.key}&limit=1`);
    assert.equal(r.status, 200, r.body);
    const g = await srv.get(`/engram/v1/events/${ev.id}?token=${A.key}`);
    assert.equal(g.status, 200, g.body);
    assert.equal(g.json.id, ev.id);
    engramError(await srv.request('POST', `/engram/v1/events?token=${A.key}`, { body: { type: 'a.b' } }), 401, 'unauthorized');
});
