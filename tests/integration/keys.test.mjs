// Authentication and the engram keys API: 401s, create/list/revoke, validation, isolation.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
    startEngram, createWorkspace, createKey, workspaceWithKey, engramError, uniqueName, waitFor,
    rawRequest, supervisedEngram,
} from './harness.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('keysA'), workspaceWithKey('keysB')]);
});

const bearer = (k) => ({ Authorization: `Bearer ${k}` });
const base62 = (n) => {
    const a = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
    return [...randomBytes(n)].map((b) => a[b % 62]).join('');
};

async function createViaApi(key, body) {
    return srv.request('POST', '/engram/v1/keys', { headers: { ...bearer(key), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

/* ---------------------------------------------------------------- 401 */

test('whoami with a valid secret key', async () => {
    const r = await srv.get('/engram/v1/whoami', { headers: bearer(A.key) });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.workspace_id, A.ws.id);
    assert.equal(r.json.kind, 'secret');
    assert.equal(typeof r.json.key_id, 'string');
    assert.ok(r.json.key_id.length > 0);
});

test('Authorization: bare key and any-case Bearer are accepted', async () => {
    for (const v of [A.key, `bearer ${A.key}`, `BEARER ${A.key}`, `Bearer   ${A.key}`]) {
        const r = await srv.get('/engram/v1/whoami', { headers: { Authorization: v } });
        assert.equal(r.status, 200, `Authorization: ${v.replace(A.key, '<key>')} → ${r.status}`);
        assert.equal(r.json.workspace_id, A.ws.id);
    }
});

test('401: missing key', async () => {
    for (const p of ['/engram/v1/whoami', '/engram/v1/keys']) {
        engramError(await srv.get(p), 401, 'unauthorized');
    }
    engramError(await srv.request('POST', '/engram/v1/keys', { body: { name: 'x' } }), 401, 'unauthorized');
    engramError(await srv.request('DELETE', '/engram/v1/keys/abc'), 401, 'unauthorized');
});

test('401: empty or "Bearer" alone', async () => {
    for (const v of ['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz']) {
        engramError(await srv.get('/engram/v1/whoami', { headers: { Authorization: v } }), 401, 'unauthorized');
    }
});

test('401: wrong key (well-formed, unknown) and garbage', async () => {
    for (const k of [`sk_${base62(40)}`, `pk_${base62(40)}`, 'sk_short', 'nonsense', A.key.slice(0, -1), A.key + 'x']) {
        engramError(await srv.get('/engram/v1/whoami', { headers: bearer(k) }), 401, 'unauthorized');
    }
});

test('401: a publishable key on a secret-key route', async () => {
    const pk = await createKey({ workspace: A.ws.name, publishable: true, name: uniqueName('pk') });
    assert.match(pk, /^pk_[A-Za-z0-9]{40}$/);
    engramError(await srv.get('/engram/v1/whoami', { headers: bearer(pk) }), 401, 'unauthorized');
    engramError(await srv.get('/engram/v1/keys', { headers: bearer(pk) }), 401, 'unauthorized');
    engramError(await createViaApi(pk, { name: 'via-pk' }), 401, 'unauthorized');
});

test('401 responses are stable under repetition (negative cache does not flip)', async () => {
    const k = `sk_${base62(40)}`;
    for (let i = 0; i < 5; i++) {
        assert.equal((await srv.get('/engram/v1/whoami', { headers: bearer(k) })).status, 401);
    }
});

/* ---------------------------------------------------------------- keys API */

test('POST /engram/v1/keys creates a working secret key', async () => {
    const name = uniqueName('api');
    const r = await createViaApi(A.key, { name });
    assert.equal(r.status, 201, r.body);
    const k = r.json;
    assert.equal(k.name, name);
    assert.equal(k.kind, 'secret');
    assert.equal(k.workspace_id, A.ws.id);
    assert.equal(typeof k.id, 'string');
    assert.ok(k.id.length > 0);
    assert.match(k.key, /^sk_[A-Za-z0-9]{40}$/);
    assert.equal(typeof k.prefix, 'string');
    assert.ok(k.prefix.startsWith('sk_'), `prefix ${k.prefix}`);
    const shown = k.prefix.replace(/[.…*]+$/, '');
    assert.ok(shown.length >= 4 && k.key.startsWith(shown), `prefix ${k.prefix} is not a prefix of the key`);
    assert.ok(shown.length < 20, `prefix ${k.prefix} reveals too much of the secret`);
    assert.ok(!Number.isNaN(Date.parse(k.created_at)), `created_at ${k.created_at}`);
    assert.ok(Math.abs(Date.parse(k.created_at) - Date.now()) < 60000, 'created_at is now');

    const w = await srv.get('/engram/v1/whoami', { headers: bearer(k.key) });
    assert.equal(w.status, 200, w.body);
    assert.deepEqual(w.json, { workspace_id: A.ws.id, key_id: k.id, kind: 'secret' });
});

test('POST /engram/v1/keys kind publishable → pk_ key that secret routes reject', async () => {
    const r = await createViaApi(A.key, { name: uniqueName('pub'), kind: 'publishable' });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.kind, 'publishable');
    assert.match(r.json.key, /^pk_[A-Za-z0-9]{40}$/);
    assert.ok(r.json.prefix.startsWith('pk_'));
    engramError(await srv.get('/engram/v1/whoami', { headers: bearer(r.json.key) }), 401, 'unauthorized');
});

test('GET /engram/v1/keys lists the workspace keys without secrets', async () => {
    const name = uniqueName('listed');
    const c = await createViaApi(A.key, { name });
    assert.equal(c.status, 201);
    const r = await srv.get('/engram/v1/keys', { headers: bearer(A.key) });
    assert.equal(r.status, 200, r.body);
    assert.ok(Array.isArray(r.json.data));
    const mine = r.json.data.find((k) => k.id === c.json.id);
    assert.ok(mine, 'created key is listed');
    assert.equal(mine.name, name);
    assert.equal(mine.kind, 'secret');
    assert.equal(mine.prefix, c.json.prefix);
    assert.equal(mine.workspace_id, A.ws.id);
    assert.equal(mine.created_at, c.json.created_at);
    assert.ok('last_used_at' in mine, 'last_used_at field present (null when never used)');
    for (const k of r.json.data) {
        assert.equal(k.workspace_id, A.ws.id, 'only the caller workspace');
        assert.equal(k.key, undefined, 'list must not reveal secrets');
        for (const v of Object.values(k)) {
            if (typeof v === 'string') assert.ok(!/^(sk|pk)_[A-Za-z0-9]{40}$/.test(v), 'no full key in list');
        }
        assert.ok(['secret', 'publishable'].includes(k.kind));
    }
    // The CLI-created key of A is there too.
    const who = await srv.get('/engram/v1/whoami', { headers: bearer(A.key) });
    assert.ok(r.json.data.some((k) => k.id === who.json.key_id));
});

test('last_used_at is set after the key is used', async () => {
    const c = await createViaApi(A.key, { name: uniqueName('used') });
    const k = c.json;
    assert.equal((await srv.get('/engram/v1/whoami', { headers: bearer(k.key) })).status, 200);
    await waitFor(async () => {
        const r = await srv.get('/engram/v1/keys', { headers: bearer(A.key) });
        const e = r.json.data.find((x) => x.id === k.id);
        return e && e.last_used_at && !Number.isNaN(Date.parse(e.last_used_at));
    }, { timeoutMs: 5000, intervalMs: 200, what: 'last_used_at' });
});

test('DELETE /engram/v1/keys/{id} revokes; the key stops working at once', async () => {
    const c = await createViaApi(A.key, { name: uniqueName('victim') });
    const k = c.json;
    assert.equal((await srv.get('/engram/v1/whoami', { headers: bearer(k.key) })).status, 200, 'warm cache');
    const d = await srv.request('DELETE', `/engram/v1/keys/${k.id}`, { headers: bearer(A.key) });
    assert.equal(d.status, 200, d.body);
    assert.deepEqual(d.json, { id: k.id, revoked: true });
    // Same process revoked it: no waiting on cache TTL.
    engramError(await srv.get('/engram/v1/whoami', { headers: bearer(k.key) }), 401, 'unauthorized');
    const l = await srv.get('/engram/v1/keys', { headers: bearer(A.key) });
    assert.ok(!l.json.data.some((x) => x.id === k.id), 'revoked key no longer listed');
    // Second revoke → 404.
    engramError(await srv.request('DELETE', `/engram/v1/keys/${k.id}`, { headers: bearer(A.key) }), 404, 'not_found');
});

test('a key can revoke itself; then it is rejected', async () => {
    const c = await createViaApi(A.key, { name: uniqueName('self') });
    const k = c.json;
    const d = await srv.request('DELETE', `/engram/v1/keys/${k.id}`, { headers: bearer(k.key) });
    assert.equal(d.status, 200, d.body);
    engramError(await srv.get('/engram/v1/whoami', { headers: bearer(k.key) }), 401, 'unauthorized');
});

test('DELETE unknown key id → 404', async () => {
    for (const id of ['does-not-exist', '00000000-0000-4000-8000-000000000000', 'x'.repeat(39)]) {
        engramError(await srv.request('DELETE', `/engram/v1/keys/${id}`, { headers: bearer(A.key) }), 404, 'not_found');
    }
});

test('DELETE with an overlong or odd id → 404, not a crash', async () => {
    for (const id of ['x'.repeat(300), '%2e%2e', '..', 'a%00b', '%F0%9F%92%A9']) {
        const r = await srv.request('DELETE', `/engram/v1/keys/${id}`, { headers: bearer(A.key) });
        assert.ok([400, 404, 405].includes(r.status), `${id}: ${r.status} ${r.body}`);
    }
    assert.equal((await srv.get('/health/live')).status, 200);
});

/* ---------------------------------------------------------------- validation */

test('malformed JSON → 400 invalid_json', async () => {
    for (const body of ['{"name":', '{name: "x"}', 'not json', '{"name":"x",}', '']) {
        const r = await srv.request('POST', '/engram/v1/keys', { headers: { ...bearer(A.key), 'Content-Type': 'application/json' }, body });
        if (body === '') {
            // An empty body is either malformed JSON or a missing name.
            assert.equal(r.status, 400, `empty body → ${r.status}`);
            assert.ok(['invalid_json', 'invalid_request'].includes(r.json && r.json.error && r.json.error.code), r.body);
            continue;
        }
        engramError(r, 400, 'invalid_json');
    }
});

test('wrong types / missing fields → 400 invalid_request naming the field', async () => {
    const cases = [
        [{}, 'name'],
        [{ name: 5 }, 'name'],
        [{ name: null }, 'name'],
        [{ name: ['x'] }, 'name'],
        [{ name: '' }, 'name'],
        [{ name: 'n'.repeat(129) }, 'name'],
        [{ name: 'ok', kind: 'admin' }, 'kind'],
        [{ name: 'ok', kind: 7 }, 'kind'],
    ];
    for (const [body, field] of cases) {
        const r = await createViaApi(A.key, body);
        if (r.status !== 400) assert.fail(`${JSON.stringify(body).slice(0, 60)} → ${r.status} ${r.body.slice(0, 200)}`);
        const e = engramError(r, 400, 'invalid_request');
        assert.match(e.message, new RegExp(field), `${JSON.stringify(body)}: message "${e.message}" should name ${field}`);
    }
});

test('non-object JSON bodies → 400 invalid_request', async () => {
    for (const body of ['[]', '"name"', '42', 'null', 'true']) {
        const r = await srv.request('POST', '/engram/v1/keys', { headers: { ...bearer(A.key), 'Content-Type': 'application/json' }, body });
        engramError(r, 400, 'invalid_request');
    }
});

test('name of exactly 128 chars (and multibyte) is accepted', async () => {
    const r = await createViaApi(A.key, { name: 'n'.repeat(128) });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.name, 'n'.repeat(128));
    const u = await createViaApi(A.key, { name: 'clé "quoted" \\ ✓' });
    assert.equal(u.status, 201, u.body);
    assert.equal(u.json.name, 'clé "quoted" \\ ✓');
});

test('validation happens after auth (no key → 401 even with a bad body)', async () => {
    const r = await srv.request('POST', '/engram/v1/keys', { headers: { 'Content-Type': 'application/json' }, body: '{bad' });
    engramError(r, 401, 'unauthorized');
});

/* ---------------------------------------------------------------- isolation */

test('workspace isolation: B cannot see or revoke keys of A', async () => {
    const a2 = (await createViaApi(A.key, { name: uniqueName('a-secret') })).json;
    const whoA = (await srv.get('/engram/v1/whoami', { headers: bearer(A.key) })).json;

    const lb = await srv.get('/engram/v1/keys', { headers: bearer(B.key) });
    assert.equal(lb.status, 200);
    for (const k of lb.json.data) assert.equal(k.workspace_id, B.ws.id);
    assert.ok(!lb.json.data.some((k) => k.id === a2.id || k.id === whoA.key_id), 'B sees none of A keys');

    for (const id of [a2.id, whoA.key_id]) {
        engramError(await srv.request('DELETE', `/engram/v1/keys/${id}`, { headers: bearer(B.key) }), 404, 'not_found');
    }
    // A's keys still work and are still listed for A.
    assert.equal((await srv.get('/engram/v1/whoami', { headers: bearer(a2.key) })).status, 200);
    const la = await srv.get('/engram/v1/keys', { headers: bearer(A.key) });
    assert.ok(la.json.data.some((k) => k.id === a2.id));

    // And keys created by B land in B.
    const b2 = (await createViaApi(B.key, { name: uniqueName('b-secret') })).json;
    assert.equal(b2.workspace_id, B.ws.id);
    const wb = await srv.get('/engram/v1/whoami', { headers: bearer(b2.key) });
    assert.equal(wb.json.workspace_id, B.ws.id);
    assert.notEqual(B.ws.id, A.ws.id);
});

test('isolation holds with trailing slashes and encoded ids', async () => {
    const a3 = (await createViaApi(A.key, { name: uniqueName('a3') })).json;
    engramError(await srv.request('DELETE', `/engram/v1/keys/${encodeURIComponent(a3.id)}/`, { headers: bearer(B.key) }), 404, 'not_found');
    assert.equal((await srv.get('/engram/v1/whoami', { headers: bearer(a3.key) })).status, 200);
});

test('keys API works over one keep-alive connection with mixed workspaces', async () => {
    const c = await srv.rawConn();
    try {
        await c.write(Buffer.concat([
            rawRequest('GET', '/engram/v1/whoami', { headers: bearer(A.key) }),
            rawRequest('GET', '/engram/v1/whoami', { headers: bearer(B.key) }),
            rawRequest('GET', '/engram/v1/whoami'),
            rawRequest('GET', '/engram/v1/whoami', { headers: bearer(A.key) }),
        ]));
        const rs = [];
        for (let i = 0; i < 4; i++) rs.push(await c.readResponse());
        assert.deepEqual(rs.map((r) => r.status), [200, 200, 401, 200]);
        assert.equal(rs[0].json.workspace_id, A.ws.id);
        assert.equal(rs[1].json.workspace_id, B.ws.id);
        assert.equal(rs[3].json.workspace_id, A.ws.id, 'auth of one request must not leak into the next');
    } finally { c.destroy(); }
});
