// Fency face: memory types, memories (TEXT, URL) through their content lifecycle, PATCH, DELETE,
// pagination, bulk METADATA jobs, the memory events, and a kill -9 in the middle of a sync.
// Every route's bad inputs answer 400 {"error":{"message"}} naming the field; unknown ids and
// other workspaces' ids answer 404. URL memories are fetched from a local server
// (ENGRAM_OUTBOUND_ALLOW=127.0.0.0/8); a private Redis keeps other suites' workers off the
// "library" queue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startEngram, workspaceWithKey, waitFor, sleep, redisCommand, PrivateRedis } from './harness.mjs';

const ENV = {
    ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
    ENGRAM_LIBRARY_VISIBILITY: '2s',
    ENGRAM_LIBRARY_URL_MAX_BYTES: '64k',
    ENGRAM_ACCESS_LOG: 'off',
};
const ID = (p) => new RegExp(`^${p}_[0-9a-f]{32}$`);
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const MEMORY_KEYS = ['id', 'createdAt', 'updatedAt', 'sourceType', 'typeId', 'title', 'content',
    'contentParts', 'contentStatus', 'metadata'];

let redis, srv, web, webPort;
let A, B; // {ws, key}
const pages = new Map(); // path -> {status, type, body, hold}
let held = null; // a request the crash test keeps waiting

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    [A, B] = await Promise.all([
        workspaceWithKey('fyA', { redisUrl: redis.url }),
        workspaceWithKey('fyB', { redisUrl: redis.url }),
    ]);
    web = http.createServer((req, res) => {
        const p = pages.get(req.url);
        if (!p) {
            res.writeHead(404, { 'content-type': 'text/plain' });
            res.end('no such page');
            return;
        }
        p.hits = (p.hits || 0) + 1;
        const send = () => {
            res.writeHead(p.status || 200, { 'content-type': p.type || 'text/html; charset=utf-8' });
            res.end(p.body);
        };
        if (p.hold && p.hits === 1) {
            held = { release: send };
            return;
        }
        send();
    });
    await new Promise((r) => web.listen(0, '127.0.0.1', r));
    webPort = web.address().port;
});

after(async () => {
    held?.release();
    // A clean stop: the library worker drains, and the sanitizers find nothing to report.
    const exit = await srv?.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, srv?.stderrTail(40));
    assert.doesNotMatch(srv?.stderr || '', /Sanitizer|runtime error/);
    web?.closeAllConnections?.();
    await new Promise((r) => (web ? web.close(r) : r()));
    await redis?.destroy();
});

const call = (method, path, key, body) => srv.request(method, `/fency${path}`, { key, body, timeoutMs: 20000 });

function expectError(r, status, re) {
    assert.equal(r.status, status, r.body);
    assert.equal(typeof r.json?.error?.message, 'string', r.body);
    if (re) assert.match(r.json.error.message, re, r.body);
}

async function createType(key, body = {}) {
    const r = await call('POST', '/v1/memory-types', key, { name: 'docs', description: 'Documents', ...body });
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function createMemory(key, body) {
    const r = await call('POST', '/v1/memories', key, body);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

// Poll a memory until its status is no longer SYNCHRONIZING (or EMPTY); returns it.
async function settled(key, id, timeoutMs = 30000) {
    let m;
    await waitFor(async () => {
        const r = await call('GET', `/v1/memories/${id}`, key);
        assert.equal(r.status, 200, r.body);
        m = r.json;
        return m.contentStatus === 'SYNCHRONIZED' || m.contentStatus === 'SYNCHRONIZATION_ERROR';
    }, { timeoutMs, intervalMs: 100, what: `memory ${id} settled` });
    return m;
}

function checkMemoryShape(m) {
    assert.deepEqual(Object.keys(m).filter((k) => k !== 'contentStatusReason'), MEMORY_KEYS);
    assert.match(m.id, ID('mem'));
    assert.match(m.typeId, ID('mty'));
    assert.match(m.createdAt, TIME);
    assert.match(m.updatedAt, TIME);
    assert.equal('_' in m, false, 'private fields stay private');
}

async function events(key, qs = '') {
    const r = await srv.get(`/engram/v1/events?order=asc&limit=1000&type=memory.*${qs}`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200, r.body);
    return r.json.data;
}

/* ------------------------------------------------------------------------------ memory types */

test('memory types: create, get, list with pages, bad inputs, other workspaces', async () => {
    const t = await createType(A.key, {
        name: 'Policies', description: 'HR policies', type: 'SEMANTIC',
        metadataFields: [{ name: 'department', description: 'Owner', fieldType: 'STRING' }, { name: 'year' }],
    });
    assert.match(t.id, ID('mty'));
    assert.match(t.createdAt, TIME);
    assert.equal(t.name, 'Policies');
    assert.equal(t.description, 'HR policies');
    assert.equal(t.type, 'SEMANTIC');
    assert.equal(t.identityKeyName, null);
    assert.equal(t.updatedAtKeyName, null);
    assert.deepEqual(t.metadataFields, [
        { name: 'department', description: 'Owner', fieldType: 'STRING' },
        { name: 'year', description: '', fieldType: 'STRING' },
    ]);
    assert.equal('_' in t, false);

    let r = await call('GET', `/v1/memory-types/${t.id}`, A.key);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, t);
    expectError(await call('GET', `/v1/memory-types/${t.id}`, B.key), 404, /not found/);
    expectError(await call('GET', '/v1/memory-types/mty_00000000000000000000000000000000', A.key), 404);
    expectError(await call('GET', '/v1/memory-types/nonsense', A.key), 404);
    expectError(await call('DELETE', `/v1/memory-types/${t.id}`, B.key), 404);

    const bad = [
        [{ description: 'x' }, /name/],
        [{ name: '', description: 'x' }, /name/],
        [{ name: 'x' }, /description/],
        [{ name: 'x', description: 'x', type: 'OTHER' }, /type/],
        [{ name: 'x', description: 'x', identityKeyName: 5 }, /identityKeyName/],
        [{ name: 'x', description: 'x', updatedAtKeyName: '' }, /updatedAtKeyName/],
        [{ name: 'x', description: 'x', metadataFields: {} }, /metadataFields/],
        [{ name: 'x', description: 'x', metadataFields: [{ description: 'no name' }] }, /metadataFields\[\]\.name/],
        [{ name: 'x', description: 'x', metadataFields: [{ name: 'a' }, { name: 'a' }] }, /unique/],
        [{ name: 'x', description: 'x', metadataFields: [{ name: 'a', fieldType: 'lower' }] }, /fieldType/],
    ];
    for (const [body, re] of bad) expectError(await call('POST', '/v1/memory-types', A.key, body), 400, re);
    expectError(await srv.request('POST', '/fency/v1/memory-types', { key: A.key, body: '{"name":', headers: { 'content-type': 'application/json' } }), 400);
    expectError(await call('POST', '/v1/memory-types', A.key, [1]), 400);
    expectError(await call('POST', '/v1/memory-types', undefined, { name: 'x', description: 'y' }), 401);

    // Pages: newest first by default, asc on request; tokens both ways; both tokens at once 400.
    const { key } = await workspaceWithKey('fyPages', { redisUrl: redis.url });
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await createType(key, { name: `t${i}` })).id);
    r = await call('GET', '/v1/memory-types?limit=2', key);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.items.map((x) => x.id), [made[4], made[3]]);
    assert.equal(r.json.pagination.previousPageToken, null);
    const next = r.json.pagination.nextPageToken;
    assert.equal(typeof next, 'string');
    r = await call('GET', `/v1/memory-types?limit=2&nextPageToken=${next}`, key);
    assert.deepEqual(r.json.items.map((x) => x.id), [made[2], made[1]]);
    const prev = r.json.pagination.previousPageToken;
    r = await call('GET', `/v1/memory-types?limit=2&previousPageToken=${prev}`, key);
    assert.deepEqual(r.json.items.map((x) => x.id), [made[4], made[3]]);
    r = await call('GET', '/v1/memory-types?asc=true&limit=100', key);
    assert.deepEqual(r.json.items.map((x) => x.id), made);
    assert.deepEqual(r.json.pagination, { previousPageToken: null, nextPageToken: null });
    expectError(await call('GET', `/v1/memory-types?nextPageToken=${next}&previousPageToken=${prev}`, key), 400, /mutually exclusive/);
    expectError(await call('GET', '/v1/memory-types?limit=0', key), 400, /limit/);
    expectError(await call('GET', '/v1/memory-types?nextPageToken=!!', key), 400, /nextPageToken/);

    r = await call('DELETE', `/v1/memory-types/${made[0]}`, key);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.id, made[0]);
    expectError(await call('GET', `/v1/memory-types/${made[0]}`, key), 404);
    expectError(await call('DELETE', `/v1/memory-types/${made[0]}`, key), 404);
});

/* ------------------------------------------------------------------------------ TEXT memories */

test('TEXT memory: SYNCHRONIZING then SYNCHRONIZED with content and parts, shape, events', async () => {
    const t = await createType(A.key);
    const sentences = [];
    for (let i = 0; i < 120; i++) sentences.push(`Sentence number ${i} talks about the orchard and its ${i} apple trees.`);
    const text = sentences.join(' ');
    const m = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'TEXT', title: 'Orchard', text, metadata: { dept: 'farm', n: 3, tags: ['a'], ok: true } });
    checkMemoryShape(m);
    assert.equal(m.sourceType, 'TEXT');
    assert.equal(m.typeId, t.id);
    assert.equal(m.title, 'Orchard');
    assert.equal(m.contentStatus, 'SYNCHRONIZING');
    assert.equal(m.content, null);
    assert.equal(m.contentParts, null);
    assert.deepEqual(m.metadata, { dept: 'farm', n: 3, tags: ['a'], ok: true });

    const s = await settled(A.key, m.id);
    checkMemoryShape(s);
    assert.equal(s.contentStatus, 'SYNCHRONIZED', JSON.stringify(s));
    assert.equal(s.content, text);
    assert.ok(s.contentParts >= 4, `a long text is several chunks (${s.contentParts})`);
    assert.equal(s.createdAt, m.createdAt);
    assert.ok(s.updatedAt >= m.updatedAt);

    // The other workspace cannot see it.
    expectError(await call('GET', `/v1/memories/${m.id}`, B.key), 404, /memory not found/);
    expectError(await call('PATCH', `/v1/memories/${m.id}`, B.key, { title: 'x' }), 404);
    expectError(await call('DELETE', `/v1/memories/${m.id}`, B.key), 404);

    // memory.created, then memory.updated with the synchronised memory (content included).
    const evs = (await events(A.key)).filter((e) => e.entity.id === m.id);
    assert.deepEqual(evs.map((e) => e.type), ['memory.created', 'memory.updated']);
    assert.equal(evs[0].entity.contentStatus, 'SYNCHRONIZING');
    assert.equal(evs[1].entity.contentStatus, 'SYNCHRONIZED');
    assert.equal(evs[1].entity.content, text);
    assert.equal(evs[1].entity.contentParts, s.contentParts);
    assert.equal('_' in evs[1].entity, false);
});

test('POST /v1/memories: bad inputs name the field; unknown or foreign types are 404', async () => {
    const t = await createType(A.key);
    const tB = await createType(B.key);
    const base = { memoryTypeId: t.id, sourceType: 'TEXT', title: 'x', text: 'y' };
    const bad = [
        [{ ...base, memoryTypeId: undefined }, /memoryTypeId/],
        [{ ...base, memoryTypeId: 7 }, /memoryTypeId/],
        [{ ...base, sourceType: undefined }, /sourceType/],
        [{ ...base, sourceType: 'PDF' }, /sourceType/],
        [{ ...base, title: undefined }, /title/],
        [{ ...base, title: '' }, /title/],
        [{ ...base, text: undefined }, /text/],
        [{ ...base, text: '' }, /text/],
        [{ ...base, text: 5 }, /text/],
        [{ ...base, url: 'http://127.0.0.1/' }, /url/],
        [{ ...base, sourceType: 'URL', text: undefined }, /url/],
        [{ ...base, sourceType: 'URL', text: undefined, url: 'ftp://x/' }, /url/],
        [{ ...base, sourceType: 'URL', url: 'http://127.0.0.1/' }, /text/],
        [{ ...base, sourceType: 'FILE' }, /text/],
        [{ ...base, metadata: [1] }, /metadata/],
        [{ ...base, metadata: 'x' }, /metadata/],
    ];
    for (const [body, re] of bad) expectError(await call('POST', '/v1/memories', A.key, body), 400, re);
    expectError(await call('POST', '/v1/memories', A.key, { ...base, memoryTypeId: 'mty_00000000000000000000000000000000' }), 404, /memory type not found/);
    expectError(await call('POST', '/v1/memories', A.key, { ...base, memoryTypeId: tB.id }), 404, /memory type not found/);
    expectError(await call('POST', '/v1/memories', A.key, { ...base, memoryTypeId: 'junk' }), 404);
    // No partial write: nothing was created by any of these.
    const r = await call('GET', '/v1/memories?limit=100', A.key);
    assert.ok(!r.json.items.some((m) => m.title === 'x'), r.body);
});

test('FILE memory starts EMPTY; its text and url cannot be patched', async () => {
    const t = await createType(A.key);
    const m = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'FILE', title: 'A file' });
    checkMemoryShape(m);
    assert.equal(m.contentStatus, 'EMPTY');
    assert.equal(m.content, null);
    assert.equal(m.contentParts, null);
    await sleep(300);
    const r = await call('GET', `/v1/memories/${m.id}`, A.key);
    assert.equal(r.json.contentStatus, 'EMPTY');
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { text: 'x' }), 400, /text/);
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { url: 'http://127.0.0.1/' }), 400, /url/);
});

test('PATCH: only the given keys change, metadata is replaced whole, new text re-synchronises', async () => {
    const t = await createType(A.key);
    const m = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'TEXT', title: 'Before', text: 'The first version of the text.', metadata: { a: 1, b: 2 } });
    const s1 = await settled(A.key, m.id);
    assert.equal(s1.content, 'The first version of the text.');

    let r = await call('PATCH', `/v1/memories/${m.id}`, A.key, { title: 'After' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.title, 'After');
    assert.equal(r.json.contentStatus, 'SYNCHRONIZED', 'a title change keeps the content');
    assert.equal(r.json.content, s1.content);
    assert.deepEqual(r.json.metadata, { a: 1, b: 2 });

    r = await call('PATCH', `/v1/memories/${m.id}`, A.key, { metadata: { c: [1, 2] } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.metadata, { c: [1, 2] });
    assert.equal(r.json.title, 'After');

    // Bad inputs; nothing changes.
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { url: 'http://127.0.0.1/x' }), 400, /url/);
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { title: '' }), 400, /title/);
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { text: 3 }), 400, /text/);
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { metadata: 'x' }), 400, /metadata/);
    expectError(await call('PATCH', `/v1/memories/${m.id}`, A.key, { sourceType: 'URL' }), 400, /sourceType/);
    expectError(await call('PATCH', '/v1/memories/mem_00000000000000000000000000000000', A.key, { title: 'x' }), 404);
    r = await call('GET', `/v1/memories/${m.id}`, A.key);
    assert.equal(r.json.title, 'After');
    assert.deepEqual(r.json.metadata, { c: [1, 2] });

    r = await call('PATCH', `/v1/memories/${m.id}`, A.key, { text: 'The second version, quite different.' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.contentStatus, 'SYNCHRONIZING');
    assert.equal(r.json.content, null);
    assert.equal(r.json.contentParts, null);
    const s2 = await settled(A.key, m.id);
    assert.equal(s2.contentStatus, 'SYNCHRONIZED');
    assert.equal(s2.content, 'The second version, quite different.');
    assert.equal(s2.title, 'After');

    const evs = (await events(A.key)).filter((e) => e.entity.id === m.id).map((e) => `${e.type}:${e.entity.contentStatus}`);
    assert.deepEqual(evs, [
        'memory.created:SYNCHRONIZING', 'memory.updated:SYNCHRONIZED', // create
        'memory.updated:SYNCHRONIZED', 'memory.updated:SYNCHRONIZED', // title, metadata
        'memory.updated:SYNCHRONIZING', 'memory.updated:SYNCHRONIZED', // new text
    ]);
});

test('DELETE returns the memory; a type in use cannot be deleted until its memories are gone', async () => {
    const t = await createType(A.key);
    const m1 = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'TEXT', title: 'One', text: 'One text.' });
    const m2 = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'FILE', title: 'Two' });
    const s1 = await settled(A.key, m1.id);

    expectError(await call('DELETE', `/v1/memory-types/${t.id}`, A.key), 409, /used by 2 memories/);
    let r = await call('DELETE', `/v1/memories/${m1.id}`, A.key);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, s1);
    expectError(await call('GET', `/v1/memories/${m1.id}`, A.key), 404);
    expectError(await call('DELETE', `/v1/memories/${m1.id}`, A.key), 404);
    expectError(await call('DELETE', `/v1/memory-types/${t.id}`, A.key), 409, /used by 1 memory/);
    r = await call('DELETE', `/v1/memories/${m2.id}`, A.key);
    assert.equal(r.status, 200, r.body);
    r = await call('DELETE', `/v1/memory-types/${t.id}`, A.key);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.id, t.id);
    // A memory cannot be created under the deleted type.
    expectError(await call('POST', '/v1/memories', A.key, { memoryTypeId: t.id, sourceType: 'FILE', title: 'x' }), 404);

    const del = (await events(A.key)).filter((e) => e.type === 'memory.deleted' && e.entity.id === m1.id);
    assert.equal(del.length, 1);
    assert.equal(del[0].entity.content, 'One text.');
});

test('GET /v1/memories pages newest first; both tokens at once is 400', async () => {
    const { key } = await workspaceWithKey('fyMemPages', { redisUrl: redis.url });
    const t = await createType(key);
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await createMemory(key, { memoryTypeId: t.id, sourceType: 'FILE', title: `f${i}` })).id);
    let r = await call('GET', '/v1/memories?limit=3', key);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.items.map((m) => m.id), [ids[4], ids[3], ids[2]]);
    for (const m of r.json.items) checkMemoryShape(m);
    const next = r.json.pagination.nextPageToken;
    r = await call('GET', `/v1/memories?limit=3&nextPageToken=${next}`, key);
    assert.deepEqual(r.json.items.map((m) => m.id), [ids[1], ids[0]]);
    assert.equal(r.json.pagination.nextPageToken, null);
    const prev = r.json.pagination.previousPageToken;
    r = await call('GET', `/v1/memories?limit=3&previousPageToken=${prev}`, key);
    assert.deepEqual(r.json.items.map((m) => m.id), [ids[4], ids[3], ids[2]]);
    r = await call('GET', '/v1/memories?asc=true', key);
    assert.deepEqual(r.json.items.map((m) => m.id), ids);
    expectError(await call('GET', `/v1/memories?nextPageToken=${next}&previousPageToken=${prev}`, key), 400, /mutually exclusive/);
    expectError(await call('GET', '/v1/memories?limit=101', key), 400, /limit/);
    expectError(await call('GET', '/v1/memories?asc=maybe', key), 400, /asc/);
    // Synchronised memories carry their content in the listing too.
    const m = await createMemory(key, { memoryTypeId: t.id, sourceType: 'TEXT', title: 'T', text: 'Listed content.' });
    await settled(key, m.id);
    r = await call('GET', '/v1/memories?limit=1', key);
    assert.equal(r.json.items[0].content, 'Listed content.');
});

/* ------------------------------------------------------------------------------- URL memories */

test('URL memory: fetched from a local server, HTML to text; errors keep a reason', async () => {
    const t = await createType(A.key);
    pages.set('/article.html', {
        body: '<html><head><title>T</title><style>p{color:red}</style><script>var secret = 1;</script></head>' +
            '<body><h1>Lighthouses</h1><p>The lighthouse keeper trims the &amp; wick nightly.</p><p>Second paragraph.</p></body></html>',
    });
    const m = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'URL', title: 'Article', url: `http://127.0.0.1:${webPort}/article.html` });
    assert.equal(m.sourceType, 'URL');
    assert.equal(m.contentStatus, 'SYNCHRONIZING');
    const s = await settled(A.key, m.id);
    assert.equal(s.contentStatus, 'SYNCHRONIZED', JSON.stringify(s));
    assert.match(s.content, /Lighthouses/);
    assert.match(s.content, /trims the & wick nightly/);
    assert.doesNotMatch(s.content, /<p>|secret|color:red/);
    assert.equal(s.contentParts, 1);

    // A 404 page: SYNCHRONIZATION_ERROR with the reason.
    const e = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'URL', title: 'Missing', url: `http://127.0.0.1:${webPort}/missing` });
    const se = await settled(A.key, e.id);
    assert.equal(se.contentStatus, 'SYNCHRONIZATION_ERROR');
    assert.match(se.contentStatusReason, /HTTP 404/);
    assert.equal(se.content, null);
    assert.equal(se.contentParts, null);

    // The SSRF guard: the cloud metadata address stays forbidden even with loopback allowed.
    const x = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'URL', title: 'Metadata', url: 'http://169.254.169.254/latest/meta-data/' });
    const sx = await settled(A.key, x.id);
    assert.equal(sx.contentStatus, 'SYNCHRONIZATION_ERROR');
    assert.match(sx.contentStatusReason, /not allowed/);

    // A page over ENGRAM_LIBRARY_URL_MAX_BYTES (64k here) is refused with the reason.
    pages.set('/big.txt', { type: 'text/plain', body: 'Big page. '.repeat(8000) });
    const big = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'URL', title: 'Big', url: `http://127.0.0.1:${webPort}/big.txt` });
    const sb = await settled(A.key, big.id);
    assert.equal(sb.contentStatus, 'SYNCHRONIZATION_ERROR');
    assert.match(sb.contentStatusReason, /larger than 65536 bytes/);

    // PATCH url re-synchronises; text cannot be patched on a URL memory.
    pages.set('/v2.txt', { type: 'text/plain', body: 'Plain text version two.' });
    expectError(await call('PATCH', `/v1/memories/${e.id}`, A.key, { text: 'x' }), 400, /text/);
    let r = await call('PATCH', `/v1/memories/${e.id}`, A.key, { url: `http://127.0.0.1:${webPort}/v2.txt` });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.contentStatus, 'SYNCHRONIZING');
    assert.equal(r.json.contentStatusReason, undefined);
    const s2 = await settled(A.key, e.id);
    assert.equal(s2.contentStatus, 'SYNCHRONIZED');
    assert.equal(s2.content, 'Plain text version two.');
    r = await call('GET', `/v1/memories/${e.id}`, A.key);
    assert.equal(r.json.contentStatusReason, undefined);

    const evs = (await events(A.key)).filter((ev) => ev.entity.id === e.id).map((ev) => `${ev.type}:${ev.entity.contentStatus}`);
    assert.deepEqual(evs, ['memory.created:SYNCHRONIZING', 'memory.updated:SYNCHRONIZATION_ERROR',
        'memory.updated:SYNCHRONIZING', 'memory.updated:SYNCHRONIZED']);
});

/* --------------------------------------------------------------------------------- bulk jobs */

async function runJob(key, body) {
    const r = await call('POST', '/v1/memories/jobs', key, body);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(Object.keys(r.json), ['jobId']);
    assert.match(r.json.jobId, ID('mjb'));
    let job;
    await waitFor(async () => {
        const g = await call('GET', `/v1/memories/jobs/${r.json.jobId}`, key);
        assert.equal(g.status, 200, g.body);
        job = g.json;
        assert.notEqual(job.status, 'FAILED', g.body);
        return job.status === 'COMPLETED';
    }, { timeoutMs: 30000, intervalMs: 100, what: 'job completed' });
    assert.deepEqual(Object.keys(job), ['jobId', 'status', 'errorMessage', 'result']);
    assert.equal(job.errorMessage, null);
    return job;
}

test('bulk METADATA jobs: identity upsert, newer wins, older and keyless skipped', async () => {
    const { key } = await workspaceWithKey('fyJobs', { redisUrl: redis.url });
    const sem = await createType(key);
    const t = await createType(key, { name: 'products', type: 'METADATA', identityKeyName: 'sku', updatedAtKeyName: 'updatedAt' });
    assert.equal(t.type, 'METADATA');
    assert.equal(t.identityKeyName, 'sku');

    const j1 = await runJob(key, {
        memoryTypeId: t.id, memories: [
            { title: 'Widget', metadata: { sku: 'W-1', updatedAt: '2024-01-01T00:00:00Z', price: 10 } },
            { title: 'Gadget', metadata: { sku: 'G-1', updatedAt: '2024-01-01T00:00:00Z', price: 20 } },
        ],
    });
    assert.equal(j1.result.created.length, 2);
    assert.deepEqual(j1.result.updated, []);
    assert.deepEqual(j1.result.skipped, []);
    const [widget, gadget] = j1.result.created;
    let w = await settled(key, widget);
    assert.equal(w.title, 'Widget');
    assert.deepEqual(w.metadata, { sku: 'W-1', updatedAt: '2024-01-01T00:00:00Z', price: 10 });
    assert.equal(w.contentStatus, 'SYNCHRONIZED');
    assert.match(w.content, /Widget/);
    assert.match(w.content, /price: 10/);

    const j2 = await runJob(key, {
        memoryTypeId: t.id, memories: [
            { title: 'Widget v2', metadata: { sku: 'W-1', updatedAt: '2024-02-01T00:00:00+01:00', price: 11 } },
            { title: 'Gadget old', metadata: { sku: 'G-1', updatedAt: '2023-12-31T00:00:00Z', price: 1 } },
            { title: 'Gizmo', metadata: { sku: 'Z-1', updatedAt: '2024-01-01T00:00:00Z' } },
            { title: 'No sku', metadata: { price: 5 } },
            { title: 'Gizmo again', metadata: { sku: 'Z-1', updatedAt: '2024-01-01T00:00:00Z' } },
        ],
    });
    assert.deepEqual(j2.result.updated, [widget]);
    assert.equal(j2.result.created.length, 1);
    assert.deepEqual(j2.result.skipped.map((s) => s.identityValue), ['G-1', null, 'Z-1']);
    for (const s of j2.result.skipped) assert.equal(typeof s.reason, 'string');
    assert.match(j2.result.skipped[0].reason, /not newer/);
    assert.match(j2.result.skipped[1].reason, /sku/);
    w = await settled(key, widget);
    assert.equal(w.title, 'Widget v2');
    assert.equal(w.metadata.price, 11);
    await waitFor(async () => (await settled(key, w.id)).content?.includes('price: 11'), { what: 'widget re-synchronised' });
    const g = await settled(key, gadget);
    assert.equal(g.title, 'Gadget');
    assert.equal(g.metadata.price, 20, 'the older item was skipped');

    // PATCH of a METADATA memory: its text follows its metadata, and so does its identity.
    let p = await call('PATCH', `/v1/memories/${gadget}`, key, { metadata: { sku: 'G-2', updatedAt: '2024-03-01T00:00:00Z', price: 21 } });
    assert.equal(p.status, 200, p.body);
    assert.equal(p.json.contentStatus, 'SYNCHRONIZING');
    const g2 = await settled(key, gadget);
    assert.match(g2.content, /sku: G-2/);
    assert.match(g2.content, /price: 21/);
    const j3 = await runJob(key, {
        memoryTypeId: t.id, memories: [
            { title: 'Gadget 2', metadata: { sku: 'G-2', updatedAt: '2024-04-01T00:00:00Z' } },
            { title: 'Gadget 1 again', metadata: { sku: 'G-1', updatedAt: '2024-04-01T00:00:00Z' } },
        ],
    });
    assert.deepEqual(j3.result.updated, [gadget], 'the new identity names the patched memory');
    assert.equal(j3.result.created.length, 1, 'the old identity is free again');
    assert.notEqual(j3.result.created[0], gadget);

    // Events for the created and updated memories.
    const evs = (await events(key)).filter((e) => e.entity.id === widget).map((e) => e.type);
    assert.equal(evs[0], 'memory.created');
    assert.ok(evs.filter((x) => x === 'memory.updated').length >= 3, evs.join());

    // Bad jobs.
    expectError(await call('POST', '/v1/memories/jobs', key, { memories: [{ title: 'x', metadata: {} }] }), 400, /memoryTypeId/);
    expectError(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: t.id }), 400, /memories/);
    expectError(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: t.id, memories: [] }), 400, /memories/);
    expectError(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: t.id, memories: [{ metadata: {} }] }), 400, /memories\[0\]\.title/);
    expectError(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: t.id, memories: [{ title: 'a', metadata: {} }, { title: 'b' }] }), 400, /memories\[1\]\.metadata/);
    expectError(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: sem.id, memories: [{ title: 'x', metadata: {} }] }), 400, /METADATA/);
    expectError(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: 'mty_00000000000000000000000000000000', memories: [{ title: 'x', metadata: {} }] }), 404);
    expectError(await call('POST', '/v1/memories/jobs', B.key, { memoryTypeId: t.id, memories: [{ title: 'x', metadata: {} }] }), 404);
    expectError(await call('GET', '/v1/memories/jobs/mjb_00000000000000000000000000000000', key), 404);
    expectError(await call('GET', '/v1/memories/jobs/junk', key), 404);
    const r = await call('GET', `/v1/memories/jobs/${(await call('POST', '/v1/memories/jobs', key, { memoryTypeId: t.id, memories: [{ title: 'Q', metadata: { sku: 'Q' } }] })).json.jobId}`, B.key);
    expectError(r, 404);
});

/* ------------------------------------------------------------------------------ crash safety */

test('kill -9 while a URL is being fetched: the sync finishes after a restart', async () => {
    const t = await createType(A.key);
    pages.set('/slow.txt', { type: 'text/plain', body: 'Survived the crash intact.', hold: true });
    const m = await createMemory(A.key, { memoryTypeId: t.id, sourceType: 'URL', title: 'Slow', url: `http://127.0.0.1:${webPort}/slow.txt` });
    await waitFor(() => held, { timeoutMs: 10000, what: 'the fetch to arrive' });
    srv.signal('SIGKILL');
    await srv.exitPromise;
    held.release(); // the killed process never reads it
    held = null;
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    const s = await settled(A.key, m.id, 60000);
    assert.equal(s.contentStatus, 'SYNCHRONIZED', JSON.stringify(s));
    assert.equal(s.content, 'Survived the crash intact.');
    assert.ok(pages.get('/slow.txt').hits >= 2, 'fetched again after the restart');
});

test('kill -9 in the middle of a bulk job: it resumes, every item applied and reported once', async () => {
    const { ws, key } = await workspaceWithKey('fyBulkCrash', { redisUrl: redis.url });
    const t = await createType(key, { name: 'rows', type: 'METADATA', identityKeyName: 'row' });
    const N = 1000;
    const memories = [];
    for (let i = 0; i < N; i++) memories.push({ title: `Row ${i}`, metadata: { row: i, v: `value ${i}` } });
    const r = await call('POST', '/v1/memories/jobs', key, { memoryTypeId: t.id, memories });
    assert.equal(r.status, 200, r.body);
    const memKey = `eg:{w:${ws.id}}:fy:mem`;
    const stored = async () => Number((await redisCommand(redis.port, `HLEN ${memKey}`)).slice(1));
    await waitFor(async () => (await stored()) >= 100, { timeoutMs: 60000, intervalMs: 5, what: 'items applied' });
    srv.signal('SIGKILL');
    await srv.exitPromise;
    const atKill = await stored();
    assert.ok(atKill < N, `the kill must land mid-job (${atKill} of ${N} applied)`);
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    let job;
    await waitFor(async () => {
        const g = await call('GET', `/v1/memories/jobs/${r.json.jobId}`, key);
        job = g.json;
        assert.notEqual(job.status, 'FAILED', g.body);
        return job.status === 'COMPLETED';
    }, { timeoutMs: 120000, intervalMs: 200, what: 'job completed after the restart' });
    assert.equal(job.result.created.length, N);
    assert.equal(new Set(job.result.created).size, N, 'each item reported once');
    assert.deepEqual(job.result.updated, []);
    assert.deepEqual(job.result.skipped, []);
    assert.equal(await stored(), N, 'no item written twice');
    // Every identity names exactly one memory.
    const idx = Number((await redisCommand(redis.port, `HLEN eg:{w:${ws.id}}:fy:mty:${t.id}:ident`)).slice(1));
    assert.equal(idx, N);
    // And every memory, the one in flight at the kill included, ends SYNCHRONIZED.
    await waitFor(async () => {
        let n = 0;
        let token = null;
        for (;;) {
            const l = await call('GET', `/v1/memories?limit=100${token ? `&nextPageToken=${token}` : ''}`, key);
            assert.equal(l.status, 200, l.body);
            n += l.json.items.filter((m) => m.contentStatus === 'SYNCHRONIZED').length;
            assert.ok(!l.json.items.some((m) => m.contentStatus === 'SYNCHRONIZATION_ERROR'), l.body);
            token = l.json.pagination.nextPageToken;
            if (!token) break;
        }
        return n === N;
    }, { timeoutMs: 180000, intervalMs: 1000, what: 'every memory synchronised' });
});
