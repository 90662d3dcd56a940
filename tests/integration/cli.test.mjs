// engramd CLI: workspaces create/list, keys create/list/revoke, against the shared Redis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    cli, createWorkspace, createKey, listKeys, parseKeyList, uniqueName, startEngram, waitFor,
    sharedRedisUrl, PrivateRedis,
} from './harness.mjs';

const KEY_RE = /^(sk|pk)_[A-Za-z0-9]{40}$/;
const isIso = (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(s) && !Number.isNaN(Date.parse(s));

test('workspaces create prints "id\\tname"; list shows it', async () => {
    const name = uniqueName('cliws');
    const r = await cli(['workspaces', 'create', name]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    const [id, n, ...extra] = lines[lines.length - 1].split('\t');
    assert.equal(n, name);
    assert.ok(id && id.length > 0);
    assert.deepEqual(extra, []);
    const l = await cli(['workspaces', 'list']);
    assert.equal(l.code, 0, l.stderr);
    assert.ok(l.stdout.split('\n').includes(`${id}\t${name}`), `list lacks "${id}\\t${name}":\n${l.stdout}`);
});

test('workspaces create with an existing name fails', async () => {
    const name = uniqueName('dup');
    assert.equal((await cli(['workspaces', 'create', name])).code, 0);
    const r = await cli(['workspaces', 'create', name]);
    assert.notEqual(r.code, 0, 'duplicate workspace name must not succeed');
    assert.ok(r.stderr.trim().length > 0, 'message on stderr');
});

test('keys create prints the key alone on its last stdout line', async () => {
    const ws = await createWorkspace();
    const r = await cli(['keys', 'create', '--workspace', ws.name, '--name', 'first']);
    assert.equal(r.code, 0, r.stderr);
    const last = r.stdout.replace(/\n$/, '').split('\n').pop();
    assert.match(last, /^sk_[A-Za-z0-9]{40}$/, `last line ${JSON.stringify(last)}`);
    const p = await cli(['keys', 'create', '--workspace', ws.name, '--publishable', '--name', 'pub']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout.replace(/\n$/, '').split('\n').pop(), /^pk_[A-Za-z0-9]{40}$/);
});

test('keys list prints id, workspace_id, kind, name, created, last_used', async () => {
    const ws = await createWorkspace();
    const sk = await createKey({ workspace: ws.name, name: 'alpha' });
    const pk = await createKey({ workspace: ws.name, name: 'beta', publishable: true });
    assert.ok(KEY_RE.test(sk) && KEY_RE.test(pk));
    const keys = await listKeys({ workspace: ws.name });
    assert.equal(keys.length, 2, JSON.stringify(keys));
    for (const k of keys) {
        assert.equal(k.fields.length, 6, `6 tab-separated fields: ${JSON.stringify(k.fields)}`);
        assert.equal(k.workspace_id, ws.id);
        assert.ok(isIso(k.created), `created ${k.created}`);
        assert.equal(k.last_used, '-');
        assert.ok(!k.fields.some((f) => KEY_RE.test(f)), 'list must not print secrets');
    }
    const a = keys.find((k) => k.name === 'alpha');
    const b = keys.find((k) => k.name === 'beta');
    assert.equal(a.kind, 'secret');
    assert.equal(b.kind, 'publishable');
    // By id too.
    const byId = await listKeys({ workspace: ws.id });
    assert.deepEqual(byId.map((k) => k.id).sort(), keys.map((k) => k.id).sort());
});

test('keys list shows last_used once the key was used on the server', async () => {
    const ws = await createWorkspace();
    const key = await createKey({ workspace: ws.name, name: 'used' });
    const srv = await startEngram();
    try {
        const r = await srv.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${key}` } });
        assert.equal(r.status, 200);
        await waitFor(async () => {
            const ks = await listKeys({ workspace: ws.name });
            return ks.length === 1 && isIso(ks[0].last_used);
        }, { timeoutMs: 5000, intervalMs: 250, what: 'last_used set in keys list' });
    } finally { await srv.stop(); }
});

test('keys list without --workspace lists the default workspace', async () => {
    const key = await createKey({ name: uniqueName('dflt') });
    assert.ok(KEY_RE.test(key));
    const ws = await cli(['workspaces', 'list']);
    const dflt = ws.stdout.split('\n').map((l) => l.split('\t')).find((f) => f[1] === 'default');
    assert.ok(dflt, `workspace "default" exists:\n${ws.stdout}`);
    const r = await cli(['keys', 'list']);
    assert.equal(r.code, 0, r.stderr);
    const keys = parseKeyList(r.stdout);
    assert.ok(keys.length >= 1);
    for (const k of keys) assert.equal(k.workspace_id, dflt[0], 'only default-workspace keys');
});

test('keys revoke removes the key; unknown id → exit 1 with a message', async () => {
    const ws = await createWorkspace();
    await createKey({ workspace: ws.name, name: 'keep' });
    await createKey({ workspace: ws.name, name: 'drop' });
    const before = await listKeys({ workspace: ws.name });
    const drop = before.find((k) => k.name === 'drop');
    const r = await cli(['keys', 'revoke', drop.id]);
    assert.equal(r.code, 0, r.stderr);
    const after = await listKeys({ workspace: ws.name });
    assert.deepEqual(after.map((k) => k.name), ['keep']);
    const again = await cli(['keys', 'revoke', drop.id]);
    assert.equal(again.code, 1, `second revoke exit ${again.code}`);
    assert.ok(again.stderr.trim().length > 0, 'message on stderr');
    const unknown = await cli(['keys', 'revoke', 'no-such-key-id']);
    assert.equal(unknown.code, 1);
    assert.ok(unknown.stderr.trim().length > 0);
});

test('a key created by the CLI authenticates on the server; a revoked one does not', async () => {
    const ws = await createWorkspace();
    const key = await createKey({ workspace: ws.name });
    const srv = await startEngram();
    try {
        const r = await srv.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${key}` } });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.workspace_id, ws.id);
        const [k] = await listKeys({ workspace: ws.name });
        assert.equal(k.id, r.json.key_id);
        assert.equal((await cli(['keys', 'revoke', k.id])).code, 0);
        await waitFor(async () => (await srv.get('/engram/v1/whoami', { headers: { Authorization: `Bearer ${key}` } })).status === 401,
            { timeoutMs: 2000, intervalMs: 50, what: '401 after CLI revoke' });
    } finally { await srv.stop(); }
});

test('keys create for an unknown workspace fails', async () => {
    const r = await cli(['keys', 'create', '--workspace', uniqueName('nope')]);
    assert.notEqual(r.code, 0, `stdout: ${r.stdout}`);
    assert.ok(r.stderr.trim().length > 0);
    assert.ok(!KEY_RE.test(r.stdout.trim().split('\n').pop() || ''), 'no key printed');
});

test('--redis-url flag works as well as ENGRAM_REDIS_URL', async () => {
    const url = await sharedRedisUrl();
    const name = uniqueName('flag');
    const r = await cli(['workspaces', 'create', name, '--redis-url', url], { env: { ENGRAM_REDIS_URL: 'redis://127.0.0.1:1/0' } });
    if (r.code !== 0) {
        // Flag may have to come before the subcommand arguments.
        const r2 = await cli(['workspaces', '--redis-url', url, 'create', name], { env: { ENGRAM_REDIS_URL: 'redis://127.0.0.1:1/0' } });
        assert.equal(r2.code, 0, `--redis-url not honoured: ${r.stderr} / ${r2.stderr}`);
    }
    const l = await cli(['workspaces', 'list']);
    assert.ok(l.stdout.includes(`\t${name}`));
});

test('CLI against a fresh Redis creates workspace "default" on first use', async () => {
    const redis = new PrivateRedis();
    await redis.start();
    try {
        const key = await createKey({ redisUrl: redis.url });
        assert.ok(KEY_RE.test(key));
        const ws = await cli(['workspaces', 'list'], { redisUrl: redis.url });
        assert.equal(ws.code, 0, ws.stderr);
        const rows = ws.stdout.trim().split('\n').map((l) => l.split('\t'));
        assert.deepEqual(rows.map((f) => f[1]), ['default']);
        const keys = await listKeys({ redisUrl: redis.url });
        assert.equal(keys.length, 1);
        assert.equal(keys[0].workspace_id, rows[0][0]);
    } finally { await redis.destroy(); }
});

test('CLI with Redis unreachable fails cleanly', async () => {
    const r = await cli(['keys', 'list'], { redisUrl: 'redis://127.0.0.1:1/0', timeoutMs: 15000 });
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.trim().length > 0);
});

test('concurrent first use on a fresh Redis creates exactly one "default" workspace', async () => {
    const redis = new PrivateRedis();
    await redis.start();
    try {
        const rs = await Promise.all(Array.from({ length: 6 }, () => cli(['keys', 'create'], { redisUrl: redis.url })));
        for (const r of rs) assert.equal(r.code, 0, r.stderr);
        const ws = await cli(['workspaces', 'list'], { redisUrl: redis.url });
        const rows = ws.stdout.trim().split('\n').map((l) => l.split('\t'));
        assert.deepEqual(rows.map((f) => f[1]), ['default'], `workspaces:\n${ws.stdout}`);
        const keys = await listKeys({ redisUrl: redis.url });
        assert.equal(keys.length, 6);
        for (const k of keys) assert.equal(k.workspace_id, rows[0][0]);
    } finally { await redis.destroy(); }
});

test('concurrent workspaces create with one name: exactly one succeeds', async () => {
    const name = uniqueName('race');
    const rs = await Promise.all(Array.from({ length: 6 }, () => cli(['workspaces', 'create', name])));
    const ok = rs.filter((r) => r.code === 0);
    assert.equal(ok.length, 1, `successes: ${ok.length}\n${rs.map((r) => `${r.code} ${r.stdout.trim()} ${r.stderr.trim()}`).join('\n')}`);
    const l = await cli(['workspaces', 'list']);
    assert.equal(l.stdout.split('\n').filter((x) => x.endsWith(`\t${name}`)).length, 1);
});
