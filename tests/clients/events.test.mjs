// Live event feeds driven by real npm clients: `ws` for /engram/v1/events/ws and `eventsource`
// for /engram/v1/events/stream, against two engramd processes sharing one Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { startEngram, workspaceWithKey, waitFor, sleep } from '../integration/harness.mjs';

let a, b; // two engramd processes on the same Redis
let A, B; // two workspaces with a key each

before(async () => {
    [a, b] = await Promise.all([startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } }),
        startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } })]);
    A = await workspaceWithKey('feedA');
    B = await workspaceWithKey('feedB');
});

after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
});

async function emit(srv, key, type, entity = {}) {
    const r = await srv.request('POST', '/engram/v1/events', { key, body: { type, entity } });
    assert.equal(r.status, 201, r.body);
    return r.json;
}

function wsUrl(srv, key, query = '') {
    return `ws://127.0.0.1:${srv.port}/engram/v1/events/ws?token=${key}${query}`;
}

function openWs(srv, key, query = '') {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrl(srv, key, query));
        ws.received = [];
        ws.on('message', (d) => ws.received.push(JSON.parse(d.toString())));
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
    });
}

function openSse(srv, key, { query = '', lastEventId } = {}) {
    return new Promise((resolve, reject) => {
        const es = new EventSource(`http://127.0.0.1:${srv.port}/engram/v1/events/stream${query}`, {
            fetch: (input, init) => fetch(input, {
                ...init,
                headers: {
                    ...init.headers,
                    Authorization: `Bearer ${key}`,
                    ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
                },
            }),
        });
        es.received = [];
        const onAny = (ev) => es.received.push({ id: ev.lastEventId, type: ev.type, data: JSON.parse(ev.data) });
        es.listen = (type) => es.addEventListener(type, onAny);
        es.onopen = () => resolve(es);
        es.onerror = (e) => { if (es.readyState === EventSource.CLOSED) reject(e); };
    });
}

test('1,000 watchers over two processes all receive events emitted through either', async () => {
    const watchers = [];
    for (let i = 0; i < 500; i++) {
        const srv = i % 2 ? a : b;
        watchers.push(openWs(srv, A.key));
    }
    const ws = await Promise.all(watchers);
    const sses = [];
    for (let i = 0; i < 500; i++) {
        const es = await openSse(i % 2 ? b : a, A.key);
        es.listen('fanout.test');
        sses.push(es);
    }
    // Subscriptions are confirmed by Redis asynchronously: emit once everything is connected.
    await sleep(300);
    const e1 = await emit(a, A.key, 'fanout.test', { id: 'one' });
    const e2 = await emit(b, A.key, 'fanout.test', { id: 'two' });
    try {
        await waitFor(() => ws.every((w) => w.received.length >= 2) && sses.every((s) => s.received.length >= 2),
            { timeoutMs: 20000, what: 'every watcher got both events' });
        for (const w of ws) assert.deepEqual(w.received.map((e) => e.id), [e1.id, e2.id]);
        for (const s of sses) {
            assert.deepEqual(s.received.map((e) => e.id), [e1.id, e2.id]);
            assert.equal(s.received[0].data.entity.id, 'one');
        }
    } finally {
        ws.forEach((w) => w.close());
        sses.forEach((s) => s.close());
    }
});

test('filters: type patterns and entity id', async () => {
    const onlyMemory = await openWs(a, A.key, '&type=memory.*');
    const onlyM7 = await openWs(b, A.key, '&entity_id=m7');
    const sse = await openSse(a, A.key, { query: '?type=agent.task.updated' });
    sse.listen('agent.task.updated');
    sse.listen('memory.created');
    await sleep(200);
    await emit(a, A.key, 'memory.created', { id: 'm1' });
    await emit(a, A.key, 'agent.task.updated', { id: 'm7' });
    await emit(b, A.key, 'memory.deleted', { id: 'm7' });
    try {
        await waitFor(() => onlyMemory.received.length >= 2 && onlyM7.received.length >= 2 && sse.received.length >= 1,
            { timeoutMs: 5000, what: 'filtered events' });
        await sleep(200);
        assert.deepEqual(onlyMemory.received.map((e) => e.type), ['memory.created', 'memory.deleted']);
        assert.deepEqual(onlyM7.received.map((e) => e.type), ['agent.task.updated', 'memory.deleted']);
        assert.deepEqual(sse.received.map((e) => e.type), ['agent.task.updated']);
    } finally {
        onlyMemory.close();
        onlyM7.close();
        sse.close();
    }
});

test('Last-Event-ID resume replays what was missed (SSE) and last_event_id does (WebSocket)', async () => {
    const first = await emit(a, A.key, 'resume.test', { n: 1 });
    const second = await emit(a, A.key, 'resume.test', { n: 2 });
    const third = await emit(b, A.key, 'resume.test', { n: 3 });
    const es = await openSse(b, A.key, { query: '?type=resume.*', lastEventId: first.id });
    es.listen('resume.test');
    const w = await openWs(a, A.key, `&type=resume.*&last_event_id=${first.id}`);
    try {
        await waitFor(() => es.received.length >= 2 && w.received.length >= 2, { timeoutMs: 5000, what: 'replay' });
        assert.deepEqual(es.received.map((e) => e.id), [second.id, third.id]);
        assert.deepEqual(w.received.map((e) => e.id), [second.id, third.id]);
        // And live after the replay, without duplicates.
        const fourth = await emit(a, A.key, 'resume.test', { n: 4 });
        await waitFor(() => es.received.length >= 3 && w.received.length >= 3, { timeoutMs: 5000, what: 'live after replay' });
        await sleep(100);
        assert.deepEqual(es.received.map((e) => e.id), [second.id, third.id, fourth.id]);
        assert.deepEqual(w.received.map((e) => e.id), [second.id, third.id, fourth.id]);
    } finally {
        es.close();
        w.close();
    }
});

test('replay honours the entity filter', async () => {
    const start = await emit(a, A.key, 'replay.entity', { id: 'start' });
    const mine = await emit(a, A.key, 'replay.entity', { id: 'e-1' });
    await emit(b, A.key, 'replay.entity', { id: 'someone-else' });
    const mine2 = await emit(b, A.key, 'replay.entity', { id: 'e-1' });
    const w = await openWs(a, A.key, `&entity_id=e-1&last_event_id=${start.id}`);
    try {
        await waitFor(() => w.received.length >= 2, { timeoutMs: 5000, what: 'entity replay' });
        await sleep(200);
        assert.deepEqual(w.received.map((e) => e.id), [mine.id, mine2.id]);
    } finally {
        w.close();
    }
});

test('a watcher of workspace A never sees workspace B events', async () => {
    const wa = await openWs(a, A.key);
    const esA = await openSse(b, A.key);
    esA.listen('secret.b');
    esA.listen('visible.a');
    await sleep(200);
    await emit(a, B.key, 'secret.b', { id: 'b-only' });
    await emit(b, B.key, 'secret.b', { id: 'b-only-2' });
    const mine = await emit(a, A.key, 'visible.a', { id: 'a' });
    try {
        await waitFor(() => wa.received.some((e) => e.id === mine.id) && esA.received.some((e) => e.id === mine.id),
            { timeoutMs: 5000, what: 'own event' });
        await sleep(200);
        assert.ok(wa.received.every((e) => e.workspaceId === A.ws.id));
        assert.ok(!wa.received.some((e) => e.type === 'secret.b'));
        assert.ok(!esA.received.some((e) => e.type === 'secret.b'));
    } finally {
        wa.close();
        esA.close();
    }
});

test('authentication: no key → 401 for SSE and for the WebSocket upgrade', async () => {
    const r = await a.get('/engram/v1/events/stream');
    assert.equal(r.status, 401);
    await assert.rejects(new Promise((resolve, reject) => {
        const w = new WebSocket(`ws://127.0.0.1:${a.port}/engram/v1/events/ws`);
        w.once('open', resolve);
        w.once('error', reject);
    }), /401/);
});

// A raw client, to send what real libraries never send.
function rawUpgrade(srv, key) {
    return new Promise((resolve, reject) => {
        const s = net.connect(srv.port, '127.0.0.1', () => {
            s.write(`GET /engram/v1/events/ws?token=${key} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
                `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
                `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
        });
        let buf = Buffer.alloc(0);
        s.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            const end = buf.indexOf('\r\n\r\n');
            if (end >= 0 && !s.upgraded) {
                s.upgraded = true;
                s.head = buf.subarray(0, end).toString();
                s.rest = buf.subarray(end + 4);
                resolve(s);
            } else if (s.upgraded) {
                s.rest = Buffer.concat([s.rest, d]);
            }
        });
        s.on('error', reject);
    });
}

function closeFrameCode(buf) {
    assert.ok(buf.length >= 4, `expected a close frame, got ${buf.toString('hex')}`);
    assert.equal(buf[0], 0x88);
    return buf.readUInt16BE(2);
}

test('malformed frames get a protocol-error close', async () => {
    // An unmasked client frame → 1002.
    const s1 = await rawUpgrade(a, A.key);
    assert.match(s1.head, /^HTTP\/1\.1 101/);
    s1.write(Buffer.from([0x81, 0x02, 0x68, 0x69]));
    await waitFor(() => s1.rest.length >= 4, { timeoutMs: 3000, what: 'close frame' });
    assert.equal(closeFrameCode(s1.rest), 1002);
    s1.destroy();

    // Invalid UTF-8 in a text frame → 1007.
    const s2 = await rawUpgrade(b, A.key);
    const mask = crypto.randomBytes(4);
    const payload = Buffer.from([0xc3, 0x28]);
    const masked = Buffer.from(payload.map((x, i) => x ^ mask[i % 4]));
    s2.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    await waitFor(() => s2.rest.length >= 4, { timeoutMs: 3000, what: 'close frame' });
    assert.equal(closeFrameCode(s2.rest), 1007);
    s2.destroy();
});

test('a bad upgrade request is answered with HTTP 400', async () => {
    const r = await a.request('GET', '/engram/v1/events/ws', {
        key: A.key,
        headers: { Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'short' },
    });
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json.error.code, 'invalid_request');
});
