// Fency face event listing: GET /fency/v1/events (Fency pagination, ?type=) and
// GET /fency/v1/events/{id}, Fency's five event types only, each in Fency's envelope; secret key
// only; workspaces isolated. Events are emitted through engram's own event API here (the memory
// and agent-task routes emit the same types; their tests check that).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, createKey, redisCommand, PrivateRedis } from './harness.mjs';
import { fencyEventId, fencyOrgId, fencyTime } from './fency_ids.mjs';

// A private Redis: the sparse-log test appends ~50,000 entries, which other suites need not share.
let redis, srv, A, B, evs;

const req = (method, path, key) => srv.request(method, path, { key });

async function emit(key, type, entity) {
    const r = await srv.request('POST', '/engram/v1/events', { key, body: { type, entity } });
    assert.equal(r.status, 201, r.body);
    return r.json;
}

async function list(key, qs = '') {
    const r = await req('GET', `/fency/v1/events${qs}`, key);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(Object.keys(r.json), ['items', 'pagination']);
    assert.deepEqual(Object.keys(r.json.pagination), ['previousPageToken', 'nextPageToken']);
    return r.json;
}

function fyError(r, status) {
    assert.equal(r.status, status, r.body);
    assert.equal(typeof r.json?.error?.message, 'string', r.body);
}

const expected = (ws, ev) => ({
    id: fencyEventId(ws.id, ev.id), version: '1', type: ev.type, createdAt: fencyTime(ev.createdAt),
    organizationId: fencyOrgId(ws.id), entity: ev.entity,
});

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, env: { ENGRAM_ACCESS_LOG: 'off' } });
    [A, B] = await Promise.all([workspaceWithKey('fyEvA', { redisUrl: redis.url }),
        workspaceWithKey('fyEvB', { redisUrl: redis.url })]);
    evs = [];
    const types = ['memory.created', 'memory.updated', 'agent.task.created', 'memory.deleted',
        'agent.task.updated', 'memory.updated', 'agent.task.created'];
    for (let i = 0; i < types.length; i++) {
        evs.push(await emit(A.key, types[i], { id: `e${i}`, n: i, metadata: { k: 'v' } }));
        await emit(A.key, 'bank.created', { id: `noise${i}` }); // not a Fency type: never listed
    }
    await emit(B.key, 'memory.created', { id: 'other-ws' });
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

test('lists Fency events newest first in the envelope, only the five types', async () => {
    const page = await list(A.key, '?limit=100');
    assert.deepEqual(page.items, evs.slice().reverse().map((e) => expected(A.ws, e)));
    assert.deepEqual(page.pagination, { previousPageToken: null, nextPageToken: null });
    for (const it of page.items) assert.match(it.id, /^evt_[0-9a-f]{32}$/);
    // Default limit 20 covers all seven; B sees only its own.
    assert.equal((await list(A.key)).items.length, 7);
    const b = await list(B.key);
    assert.equal(b.items.length, 1);
    assert.equal(b.items[0].entity.id, 'other-ws');
    assert.equal(b.items[0].organizationId, fencyOrgId(B.ws.id));
});

test('pages forwards and backwards with tokens, newest first and asc', async () => {
    for (const asc of [false, true]) {
        const order = asc ? evs.map((e) => e.entity.id) : evs.map((e) => e.entity.id).reverse();
        const ids = (p) => p.items.map((x) => x.entity.id);
        const q = asc ? '&asc=true' : '';
        const pages = [await list(A.key, `?limit=3${q}`)];
        assert.equal(pages[0].pagination.previousPageToken, null);
        while (pages.at(-1).pagination.nextPageToken) {
            assert.ok(pages.length < 10);
            const t = encodeURIComponent(pages.at(-1).pagination.nextPageToken);
            pages.push(await list(A.key, `?limit=3${q}&nextPageToken=${t}`));
        }
        assert.deepEqual(pages.map(ids), [order.slice(0, 3), order.slice(3, 6), order.slice(6)], `asc=${asc}`);
        assert.equal(pages[2].pagination.nextPageToken, null);
        assert.ok(pages[2].pagination.previousPageToken);
        // Back from the last page: the pages before it, in display order.
        let back = await list(A.key, `?limit=3${q}&previousPageToken=${encodeURIComponent(pages[2].pagination.previousPageToken)}`);
        assert.deepEqual(ids(back), order.slice(3, 6));
        assert.ok(back.pagination.nextPageToken);
        back = await list(A.key, `?limit=3${q}&previousPageToken=${encodeURIComponent(back.pagination.previousPageToken)}`);
        assert.deepEqual(ids(back), order.slice(0, 3));
        assert.equal(back.pagination.previousPageToken, null);
        // And forwards again from a page reached backwards.
        const fwd = await list(A.key, `?limit=3${q}&nextPageToken=${encodeURIComponent(back.pagination.nextPageToken)}`);
        assert.deepEqual(ids(fwd), order.slice(3, 6));
    }
});

test('type filter: one or several of the five, anything else 400', async () => {
    const upd = await list(A.key, '?type=memory.updated');
    assert.deepEqual(upd.items.map((x) => x.entity.id), ['e5', 'e1']);
    const tasks = await list(A.key, '?type=agent.task.created&type=agent.task.updated&asc=true&limit=2');
    assert.deepEqual(tasks.items.map((x) => x.entity.id), ['e2', 'e4']);
    const rest = await list(A.key, `?type=agent.task.created&type=agent.task.updated&asc=true&limit=2&nextPageToken=${encodeURIComponent(tasks.pagination.nextPageToken)}`);
    assert.deepEqual(rest.items.map((x) => x.entity.id), ['e6']);
    assert.equal(rest.pagination.nextPageToken, null);
    for (const t of ['bank.created', 'memory.*', '*', 'memory']) fyError(await req('GET', `/fency/v1/events?type=${t}`, A.key), 400);
});

test('bad page parameters are 400', async () => {
    const p = await list(A.key, '?limit=2');
    const t = encodeURIComponent(p.pagination.nextPageToken);
    fyError(await req('GET', `/fency/v1/events?nextPageToken=${t}&previousPageToken=${t}`, A.key), 400);
    fyError(await req('GET', `/fency/v1/events?previousPageToken=${t}`, A.key), 400); // a next token used as a previous one
    fyError(await req('GET', '/fency/v1/events?nextPageToken=bm9wZQ', A.key), 400);
    fyError(await req('GET', '/fency/v1/events?nextPageToken=%2F%2F', A.key), 400);
    for (const l of ['0', '101', 'x', '-1']) fyError(await req('GET', `/fency/v1/events?limit=${l}`, A.key), 400);
    fyError(await req('GET', '/fency/v1/events?asc=yes', A.key), 400);
});

test('get one event by its Fency id; other ids 404', async () => {
    for (const ev of [evs[0], evs[4]]) {
        const id = fencyEventId(A.ws.id, ev.id);
        const r = await req('GET', `/fency/v1/events/${id}`, A.key);
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(r.json, expected(A.ws, ev));
        assert.equal(r.body, JSON.stringify(expected(A.ws, ev))); // key order too
    }
    const id = fencyEventId(A.ws.id, evs[0].id);
    fyError(await req('GET', `/fency/v1/events/${id}`, B.key), 404); // another workspace's
    fyError(await req('GET', `/fency/v1/events/${fencyEventId(B.ws.id, evs[0].id)}`, B.key), 404);
    fyError(await req('GET', '/fency/v1/events/evt_00000000000000000000000000000000', A.key), 404);
    fyError(await req('GET', '/fency/v1/events/evt_123', A.key), 404);
    fyError(await req('GET', `/fency/v1/events/${evs[0].id}`, A.key), 404); // engram's own id form
    // A stored event of another type is not a Fency event.
    const all = await srv.request('GET', '/engram/v1/events?type=bank.created&limit=1', { key: A.key });
    fyError(await req('GET', `/fency/v1/events/${fencyEventId(A.ws.id, all.json.data[0].id)}`, A.key), 404);
});

test('a page fills across many other events; a log too sparse for one request pages on', async () => {
    const C = await workspaceWithKey('fyEvSparse', { redisUrl: redis.url });
    const port = redis.port;
    // n other events appended in one script (the same stream the emit path writes).
    const noise = (n) => redisCommand(port, `EVAL "for i = 1, ${n} do redis.call('XADD', KEYS[1], '*', ` +
        `'type', 'bank.created', 'createdAt', '2026-01-01T00:00:00.000Z', 'entity', '{}') end return 1" ` +
        `1 eg:{w:${C.ws.id}}:events`, 20000);
    const e1 = await emit(C.key, 'memory.created', { id: 'c1' });
    assert.equal(await noise(9000), ':1'); // more than one log read scans
    const e2 = await emit(C.key, 'memory.created', { id: 'c2' });
    const p = await list(C.key, '?limit=5');
    assert.deepEqual(p.items.map((x) => x.entity.id), ['c2', 'c1']);
    assert.equal(p.pagination.nextPageToken, null);
    assert.deepEqual((await list(C.key, '?asc=true')).items, [expected(C.ws, e1), expected(C.ws, e2)]);

    assert.equal(await noise(40000), ':1'); // beyond what one request scans
    const e3 = await emit(C.key, 'agent.task.updated', { id: 'c3' });
    const first = await list(C.key, '?limit=5');
    assert.deepEqual(first.items, [expected(C.ws, e3)]);
    assert.ok(first.pagination.nextPageToken, 'more may follow');
    const rest = await list(C.key, `?limit=5&nextPageToken=${encodeURIComponent(first.pagination.nextPageToken)}`);
    assert.deepEqual(rest.items.map((x) => x.entity.id), ['c2', 'c1']);
    assert.equal(rest.pagination.nextPageToken, null);
});

test('secret key only', async () => {
    fyError(await req('GET', '/fency/v1/events', undefined), 401);
    fyError(await req('GET', '/fency/v1/events', 'sk_' + 'x'.repeat(40)), 401);
    const pk = await createKey({ workspace: A.ws.name, publishable: true, redisUrl: redis.url });
    const r = await req('GET', '/fency/v1/events', pk);
    fyError(r, 401);
    assert.match(r.json.error.message, /secret/);
});
