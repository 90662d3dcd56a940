// Key revocation reaches every engramd process through pub/sub, well inside the cache TTL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, createKey, cli, sleep } from './harness.mjs';

let s1;
let s2;

before(async () => {
    // TTL 60 s: only the pub/sub invalidation can explain a 401 within a second.
    [s1, s2] = await Promise.all([
        startEngram({ args: ['--auth-cache-ttl', '60s'] }),
        startEngram({ args: ['--auth-cache-ttl', '60s'] }),
    ]);
});

after(async () => {
    await Promise.all([s1 && s1.stop(), s2 && s2.stop()]);
});

const who = (s, key) => s.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${key}` } });

// Poll every 50 ms; resolve the elapsed ms when status is reached, or null after limitMs.
async function timeUntil(s, key, status, limitMs) {
    const t0 = Date.now();
    while (Date.now() - t0 <= limitMs) {
        const r = await who(s, key);
        if (r.status === status) return Date.now() - t0;
        await sleep(50);
    }
    return null;
}

test('CLI revoke → both processes return 401 within 1 s', async () => {
    const { ws, key } = await workspaceWithKey('revoke');
    // Warm both caches (twice, to be sure the entry is cached).
    for (const s of [s1, s2, s1, s2]) {
        const r = await who(s, key);
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.workspace_id, ws.id);
    }
    const keyId = (await who(s1, key)).json.key_id;

    const r = await cli(['keys', 'revoke', keyId]);
    assert.equal(r.code, 0, `keys revoke: ${r.stderr}`);

    const [d1, d2] = await Promise.all([timeUntil(s1, key, 401, 1000), timeUntil(s2, key, 401, 1000)]);
    assert.notEqual(d2, null, 'second process still accepts the revoked key after 1 s');
    assert.notEqual(d1, null, 'first process still accepts the revoked key after 1 s');
});

test('API revoke on process 1 → process 2 returns 401 within 1 s', async () => {
    const { key: admin } = await workspaceWithKey('revoke2');
    const c = await s1.request('POST', '/engram/v1/keys', {
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' }, body: '{"name":"victim"}',
    });
    assert.equal(c.status, 201, c.body);
    const victim = c.json;
    for (const s of [s1, s2, s2]) assert.equal((await who(s, victim.key)).status, 200);

    const d = await s1.request('DELETE', `/engram/v1/keys/${victim.id}`, { headers: { Authorization: `Bearer ${admin}` } });
    assert.equal(d.status, 200, d.body);
    assert.equal((await who(s1, victim.key)).status, 401, 'revoking process: immediately');
    const dt = await timeUntil(s2, victim.key, 401, 1000);
    assert.notEqual(dt, null, 'other process still accepts the revoked key after 1 s');
    // Unrelated keys stay valid.
    assert.equal((await who(s2, admin)).status, 200);
});

test('revoking one key does not evict others of the same workspace', async () => {
    const { ws, key: k1 } = await workspaceWithKey('revoke3');
    const k2 = await createKey({ workspace: ws.name });
    for (const s of [s1, s2]) { await who(s, k1); await who(s, k2); }
    const id1 = (await who(s1, k1)).json.key_id;
    const r = await cli(['keys', 'revoke', id1]);
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(await timeUntil(s2, k1, 401, 1000), null);
    assert.equal((await who(s2, k2)).status, 200);
    assert.equal((await who(s1, k2)).status, 200);
});
