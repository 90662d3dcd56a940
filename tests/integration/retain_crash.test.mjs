// Asynchronous retain survives kill -9: engramd is killed while a large async retain is being
// written, started again, and the operation completes with every fact stored exactly once (the
// job is taken over after ENGRAM_RETAIN_VISIBILITY and re-run; documents already written replay
// through their write keys, the rest are written with the same derived ids).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
    PrivateRedis, startEngram, workspaceWithKey, waitFor, redisCommand, sleep, uniqueName,
} from './harness.mjs';

const redis = new PrivateRedis();
let srv = null;
after(async () => {
    if (srv) await srv.stop('SIGKILL', 2000);
    await redis.destroy();
});

const env = { ENGRAM_RETAIN_VISIBILITY: '2s', ENGRAM_RETAIN_CONCURRENCY: '1' };
const P = '/hindsight/v1/default/banks';

test('kill -9 during an async retain: the operation completes, no fact lost or duplicated', async () => {
    await redis.start();
    srv = await startEngram({ redisUrl: redis.url, env });
    const { ws, key } = await workspaceWithKey('crash', { redisUrl: redis.url });
    const bankId = uniqueName('crash');
    const call = (method, path, body) => srv.request(method, `${P}/${bankId}${path}`, {
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: 30000,
    });

    // One document per item (one store write each), two statements per item: enough work for
    // the kill to land in the middle, and more than 10k tokens, so it is split into sub-batches.
    const N = 1500;
    const items = [];
    const expected = new Map();
    for (let i = 0; i < N; i++) {
        const a = `Crashtester${i} lives in Harbortown${i}.`;
        const b = `Crashtester${i} repaired ${i + 2} antique clocks last year.`;
        items.push({ content: `${a} ${b}`, document_id: `doc-${i}`, timestamp: '2024-06-01T12:00:00Z' });
        expected.set(a, 0);
        expected.set(b, 0);
    }
    let r = await call('POST', '/memories', { items, async: true });
    assert.equal(r.status, 200, r.body);
    const opId = r.json.operation_id;
    assert.match(opId, /^[0-9a-f-]{36}$/);
    assert.ok(r.json.operation_ids.length >= 2, `split into sub-batches: ${r.body}`);

    // Kill once a few hundred facts (well into the first sub-batch), not all, are stored.
    const unitsKey = `eg:{b:${ws.id}/${bankId}}:u`;
    const stored = async () => Number((await redisCommand(redis.port, `HLEN ${unitsKey}`)).slice(1));
    await waitFor(async () => (await stored()) >= 300, { timeoutMs: 60000, intervalMs: 5, what: 'facts stored' });
    srv.signal('SIGKILL');
    await srv.exitPromise;
    const atKill = await stored();
    assert.ok(atKill > 0 && atKill < expected.size,
        `the kill must land mid-way (${atKill} of ${expected.size} facts stored); make the batch bigger`);

    // A new process takes the job over once its visibility timeout passes and finishes it.
    srv = await startEngram({ redisUrl: redis.url, env });
    let op;
    await waitFor(async () => {
        const g = await call('GET', `/operations/${opId}`);
        assert.equal(g.status, 200, g.body);
        op = g.json;
        assert.notEqual(op.status, 'failed', g.body);
        return op.status === 'completed';
    }, { timeoutMs: 180000, intervalMs: 250, what: `operation ${opId} completed` });
    for (const child of op.child_operations || []) assert.equal(child.status, 'completed', JSON.stringify(op));

    // Every fact exactly once, through the listing and in Redis.
    const seen = [];
    for (let offset = 0; ; offset += 1000) {
        const l = await call('GET', `/memories/list?limit=1000&offset=${offset}`);
        assert.equal(l.status, 200, l.body);
        seen.push(...l.json.items);
        if (l.json.items.length < 1000) {
            assert.equal(l.json.total, expected.size);
            break;
        }
    }
    assert.equal(seen.length, expected.size);
    for (const m of seen) {
        assert.ok(expected.has(m.text), `unexpected fact ${JSON.stringify(m.text)}`);
        expected.set(m.text, expected.get(m.text) + 1);
    }
    const wrong = [...expected].filter(([, n]) => n !== 1);
    assert.deepEqual(wrong, [], 'each fact stored exactly once');
    assert.equal(await stored(), N * 2);
    const docs = Number((await redisCommand(redis.port, `HLEN eg:{b:${ws.id}/${bankId}}:d`)).slice(1));
    assert.equal(docs, N);

    // The same request again (idempotency) answers the same operation and writes nothing.
    r = await call('POST', '/memories', { items, async: true, operation_id: opId });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.operation_id, opId);
    await sleep(500);
    assert.equal(await stored(), N * 2);
});
