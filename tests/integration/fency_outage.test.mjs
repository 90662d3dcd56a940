// Redis stops under the Fency face: the /v1 routes, the session and stream routes answer 503
// {"error":{"message"}} with Retry-After, nothing crashes, a refused create writes nothing, and once
// Redis is back (same port, AOF data) the memory created before the outage is still there,
// a new memory synchronises and a stream can be opened again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PrivateRedis, startEngram, createWorkspace, createKey, uniqueName, waitFor, sleep } from './harness.mjs';

let redis, srv, sk, pk;

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, args: ['--auth-cache-ttl', '60s'], env: { ENGRAM_ACCESS_LOG: 'off' } });
    const ws = await createWorkspace(uniqueName('fyOut'), { redisUrl: redis.url });
    sk = await createKey({ workspace: ws.name, redisUrl: redis.url });
    pk = await createKey({ workspace: ws.name, publishable: true, redisUrl: redis.url });
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

const v1 = (method, path, body) => srv.request(method, `/fency/v1${path}`, { key: sk, body });
const pub = (path, ct) => srv.request('POST', `/fency/pub${path}`, {
    headers: { 'X-Fency-Publishable-Key': pk, 'X-Fency-Client-Token': ct, 'X-Fency-Sdk-Version': '0.1.208' },
});

function unavailable(r) {
    assert.equal(r.status, 503, r.body);
    assert.equal(typeof r.json.error.message, 'string', r.body);
    assert.match(r.headers['retry-after'] || '', /^\d+$/);
}

async function synchronized(id) {
    return waitFor(async () => {
        const r = await v1('GET', `/memories/${id}`);
        return r.status === 200 && r.json.contentStatus === 'SYNCHRONIZED' && r.json;
    }, { timeoutMs: 15000, what: `memory ${id} SYNCHRONIZED` });
}

test('memories, types, sessions and streams: 503 while Redis is down, working again after', async () => {
    let r = await v1('POST', '/memory-types', { name: 'Notes', description: 'notes' });
    assert.equal(r.status, 200, r.body);
    const type = r.json;
    r = await v1('POST', '/memories', { memoryTypeId: type.id, sourceType: 'TEXT', title: 'Before', text: 'Kira teaches piano on Saturdays.' });
    assert.equal(r.status, 200, r.body);
    const before = await synchronized(r.json.id);

    await redis.stop();
    await waitFor(async () => (await srv.get('/health/ready', { timeoutMs: 8000 })).status === 503,
        { timeoutMs: 10000, intervalMs: 100, what: 'health 503' });

    unavailable(await v1('POST', '/memories', { memoryTypeId: type.id, sourceType: 'TEXT', title: 'During', text: 'Lena sails.' }));
    unavailable(await v1('GET', '/memories'));
    unavailable(await v1('GET', `/memories/${before.id}`));
    unavailable(await v1('GET', '/memory-types'));
    unavailable(await v1('POST', '/sessions', { createStream: {} }));
    unavailable(await v1('GET', '/agent-tasks'));
    unavailable(await pub('/ct/streams', 'a'.repeat(32)));
    // a burst must not crash it
    await Promise.all(Array.from({ length: 20 }, (_, i) => v1('GET', `/memories?limit=${i + 1}`).catch(() => null)));
    await sleep(200);
    assert.ok(srv.alive(), `engramd died: ${srv.stderrTail?.()}`);

    await redis.start();
    await waitFor(async () => (await v1('GET', '/memories')).status === 200,
        { timeoutMs: 10000, intervalMs: 100, what: 'GET /v1/memories 200 after Redis is back' });
    // The memory made before is intact; nothing of the refused create was written.
    r = await v1('GET', '/memories?limit=100');
    assert.deepEqual(r.json.items.map((m) => m.title), ['Before']);
    assert.equal(r.json.items[0].content, 'Kira teaches piano on Saturdays.');
    // Everything works again: a new memory synchronises, a stream opens.
    r = await v1('POST', '/memories', { memoryTypeId: type.id, sourceType: 'TEXT', title: 'After', text: 'Lena sails on Lake Constance.' });
    assert.equal(r.status, 200, r.body);
    await synchronized(r.json.id);
    r = await v1('POST', '/sessions', { createStream: {} });
    assert.equal(r.status, 200, r.body);
    r = await pub('/ct/streams', r.json.clientToken);
    assert.equal(r.status, 201, r.body);
    assert.match(r.json.id, /^str_[0-9a-f]{32}$/);
});
