// SIGTERM drain: listener closes at once, an in-flight request completes, idle keep-alive
// connections are closed, the process exits 0. Also: SIGINT, and the drain timeout bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, rawRequest, tryConnect, waitFor, sleep, uniqueName } from './harness.mjs';

test('SIGTERM: in-flight POST finishes with 201, new connections refused, exit 0', async () => {
    const srv = await startEngram({ args: ['--drain-timeout', '5s'] });
    try {
        const { key, ws } = await workspaceWithKey('drain');
        const name = uniqueName('drained');
        const body = Buffer.from(JSON.stringify({ name }));
        const half = Math.floor(body.length / 2);

        // An idle keep-alive connection (served once).
        const idle = await srv.rawConn();
        await idle.write(rawRequest('GET', '/health/live'));
        assert.equal((await idle.readResponse()).status, 200);

        // The in-flight request: headers + half the body.
        const c = await srv.rawConn();
        await c.write(rawRequest('POST', '/engram/v1/keys', {
            headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', 'Content-Length': body.length },
        }));
        await c.write(body.subarray(0, half));
        await sleep(200);

        srv.signal('SIGTERM');

        // New connections are refused once the listener is closed.
        await waitFor(async () => (await tryConnect(srv.port, 500)) === 'refused',
            { timeoutMs: 2000, intervalMs: 50, what: 'new connections refused after SIGTERM' });

        // The idle keep-alive connection is closed without a response.
        assert.ok(await idle.waitClose(3000), 'idle keep-alive connection closed during drain');
        assert.equal(idle.buf.length, 0, `idle connection got bytes: ${idle.buf.toString()}`);

        // The in-flight request is still alive: finish it.
        assert.equal(c.closed, false, 'in-flight connection must not be closed during drain');
        assert.ok(srv.alive(), 'process must wait for the in-flight request');
        await c.write(body.subarray(half));
        const r = await c.readResponse({ timeoutMs: 5000 });
        assert.equal(r.status, 201, r.body);
        assert.equal(r.json.name, name);
        assert.equal(r.json.workspace_id, ws.id);
        assert.ok(await c.waitClose(3000), 'connection closed after the drained response');

        const exit = await Promise.race([srv.exitPromise, sleep(8000).then(() => null)]);
        assert.ok(exit, 'process exits after the drain');
        assert.deepEqual(exit, { code: 0, signal: null }, `exit ${JSON.stringify(exit)}\n${srv.stderrTail()}`);
        assert.equal((r.headers.connection || '').toLowerCase(), 'close', 'response during drain says Connection: close');
    } finally {
        await srv.stop('SIGKILL', 2000);
    }
});

test('SIGTERM with only idle connections exits 0 promptly', async () => {
    const srv = await startEngram({ args: ['--drain-timeout', '5s'] });
    try {
        const conns = [];
        for (let i = 0; i < 3; i++) {
            const c = await srv.rawConn();
            await c.write(rawRequest('GET', '/health/live'));
            assert.equal((await c.readResponse()).status, 200);
            conns.push(c);
        }
        const t0 = Date.now();
        srv.signal('SIGTERM');
        const exit = await Promise.race([srv.exitPromise, sleep(5000).then(() => null)]);
        assert.ok(exit, 'exited');
        assert.deepEqual(exit, { code: 0, signal: null }, srv.stderrTail());
        assert.ok(Date.now() - t0 < 2000, `idle-only drain took ${Date.now() - t0} ms`);
        for (const c of conns) assert.ok(await c.waitClose(1000));
    } finally {
        await srv.stop('SIGKILL', 2000);
    }
});

test('SIGINT drains and exits 0 too', async () => {
    const srv = await startEngram();
    try {
        assert.equal((await srv.get('/health/live')).status, 200);
        srv.signal('SIGINT');
        const exit = await Promise.race([srv.exitPromise, sleep(5000).then(() => null)]);
        assert.deepEqual(exit, { code: 0, signal: null }, srv.stderrTail());
    } finally {
        await srv.stop('SIGKILL', 2000);
    }
});

test('drain is bounded by --drain-timeout when a request never completes', async () => {
    const srv = await startEngram({ args: ['--drain-timeout', '1s', '--read-timeout', '30s'] });
    try {
        const { key } = await workspaceWithKey('drainto');
        const c = await srv.rawConn();
        await c.write(rawRequest('POST', '/engram/v1/keys', {
            headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', 'Content-Length': 100 },
        }));
        await c.write('{"name":');
        await sleep(100);
        const t0 = Date.now();
        srv.signal('SIGTERM');
        const exit = await Promise.race([srv.exitPromise, sleep(6000).then(() => null)]);
        const dt = Date.now() - t0;
        assert.ok(exit, 'process must exit once the drain timeout passes');
        assert.ok(dt >= 800, `exited after ${dt} ms, before the drain timeout`);
        assert.ok(dt < 4000, `exited after ${dt} ms with a 1 s drain timeout`);
        assert.equal(exit.signal, null, JSON.stringify(exit));
        assert.ok(await c.waitClose(1000), 'stuck connection closed');
    } finally {
        await srv.stop('SIGKILL', 2000);
    }
});
