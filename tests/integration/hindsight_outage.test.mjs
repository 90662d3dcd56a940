// Redis stops under the Hindsight memory path: retain, recall, listing and operations answer 503
// {"detail"} with Retry-After, nothing crashes, a refused retain writes nothing, and once Redis is
// back (same port, AOF data) the bank's index catches up and every route works again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PrivateRedis, startEngram, workspaceWithKey, waitFor, sleep } from './harness.mjs';
import { bank, caller } from './hindsight_http.mjs';

let redis, srv, A, call;

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, args: ['--auth-cache-ttl', '60s'], env: { ENGRAM_ACCESS_LOG: 'off' } });
    A = await workspaceWithKey('hsOut', { redisUrl: redis.url });
    call = caller(srv);
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

const a = (method, path, body) => call(A.key, method, path, body);

function unavailable(r) {
    assert.equal(r.status, 503, r.body);
    assert.equal(typeof r.json.detail, 'string', r.body);
    assert.match(r.headers['retry-after'] || '', /^\d+$/);
}

test('retain, recall, list and operations: 503 while Redis is down, working again after', async () => {
    const id = 'outage-bank';
    let r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Kira teaches piano on Saturdays.' }] });
    assert.equal(r.status, 200, r.body);
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'Who teaches piano?' });
    assert.match(r.json.results[0].text, /piano/); // the index is loaded now

    await redis.stop();
    await waitFor(async () => (await srv.get('/hindsight/health', { timeoutMs: 8000 })).status === 503,
        { timeoutMs: 10000, intervalMs: 100, what: 'hindsight health 503' });

    unavailable(await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Lena sails on Lake Constance.' }] }));
    unavailable(await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Lena sails.' }], async: true }));
    unavailable(await a('POST', `${bank(id)}/memories/recall`, { query: 'Who teaches piano?' }));
    unavailable(await a('GET', `${bank(id)}/memories/list`));
    unavailable(await a('GET', `${bank(id)}/operations`));
    unavailable(await a('GET', `${bank(id)}/documents`));
    // a burst must not crash it
    await Promise.all(Array.from({ length: 20 }, (_, i) =>
        a('POST', `${bank(id)}/memories/recall`, { query: `q${i}` }).catch(() => null)));
    await sleep(200);
    assert.ok(srv.alive(), `engramd died: ${srv.stderrTail?.()}`);

    await redis.start();
    await waitFor(async () => (await a('POST', `${bank(id)}/memories/recall`, { query: 'Who teaches piano?' })).status === 200,
        { timeoutMs: 10000, intervalMs: 100, what: 'recall 200 after Redis is back' });
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'Who teaches piano?' });
    assert.match(r.json.results[0].text, /piano/);
    // nothing of the refused retains was written
    r = await a('GET', `${bank(id)}/memories/list`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.total, 1, r.body);
    // writes work again and are recalled
    r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Lena sails on Lake Constance.' }] });
    assert.equal(r.status, 200, r.body);
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'Where does Lena sail?' });
    assert.match(r.json.results[0].text, /Lake Constance/);
});
