// WebSocket event feeds under backpressure: a watcher that stops reading. Live events are queued
// by reference (one frame shared by every watcher) until the kernel takes only part of one; what
// is left must reach the client intact and in order, and a client that lets more than
// ENGRAM_MAX_OUTPUT_BUFFER pile up is closed with 1013 after the events it was sent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { startEngram, workspaceWithKey, waitFor, sleep } from './harness.mjs';

const PAD = 256 * 1024; // bytes of filler per event
const servers = [];

after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
});

async function server(maxOutput) {
    const s = await startEngram({ env: { ENGRAM_ACCESS_LOG: 'off', ENGRAM_MAX_OUTPUT_BUFFER: maxOutput } });
    servers.push(s);
    return s;
}

// A raw WebSocket watcher that reads nothing until resumed: the 101 head is read, then the socket
// is paused, so the server's frames pile up in the kernel and then in engramd. Frames are parsed
// as they arrive into w.frames; w.rest holds an unfinished one.
function pausedWatcher(srv, key) {
    return new Promise((resolve, reject) => {
        const s = net.connect(srv.port, '127.0.0.1', () => {
            s.write(`GET /engram/v1/events/ws?token=${key}&type=bp.test HTTP/1.1\r\nHost: x\r\n` +
                'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
                `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
        });
        s.rest = Buffer.alloc(0);
        s.frames = [];
        s.ended = false;
        s.on('data', (d) => {
            s.rest = s.rest.length ? Buffer.concat([s.rest, d]) : d;
            if (s.head === undefined) {
                const end = s.rest.indexOf('\r\n\r\n');
                if (end < 0) return;
                s.head = s.rest.subarray(0, end).toString();
                s.rest = s.rest.subarray(end + 4);
                s.pause();
                resolve(s);
            }
            const { frames, used } = parseFrames(s.rest);
            s.frames.push(...frames);
            s.rest = s.rest.subarray(used);
        });
        s.on('end', () => { s.ended = true; });
        s.on('error', reject);
    });
}

// Whole server frames at the start of buf: [{op, payload}], and the bytes they used.
function parseFrames(buf) {
    const frames = [];
    let off = 0;
    while (buf.length - off >= 2) {
        const b0 = buf[off], b1 = buf[off + 1];
        assert.equal(b1 & 0x80, 0, 'server frames are not masked');
        let len = b1 & 0x7f, hdr = 2;
        if (len === 126) {
            if (buf.length - off < 4) break;
            len = buf.readUInt16BE(off + 2);
            hdr = 4;
        } else if (len === 127) {
            if (buf.length - off < 10) break;
            len = Number(buf.readBigUInt64BE(off + 2));
            hdr = 10;
        }
        if (buf.length - off - hdr < len) break;
        assert.equal(b0 & 0x80, 0x80, 'each event is one unfragmented frame');
        frames.push({ op: b0 & 0x0f, payload: Buffer.from(buf.subarray(off + hdr, off + hdr + len)) });
        off += hdr + len;
    }
    return { frames, used: off };
}

const filler = (n) => String.fromCharCode(97 + (n % 26)).repeat(PAD);

async function emitMany(srv, key, count) {
    for (let n = 0; n < count; n++) {
        const r = await srv.request('POST', '/engram/v1/events', {
            key, body: { type: 'bp.test', entity: { id: `bp${n}`, n, pad: filler(n) } },
        });
        assert.equal(r.status, 201, r.body);
    }
}

// The events in frames, each checked whole: the n-th is event n with its own filler.
function checkEvents(frames) {
    const texts = frames.filter((f) => f.op === 1);
    texts.forEach((f, i) => {
        const ev = JSON.parse(f.payload.toString());
        assert.equal(ev.type, 'bp.test');
        assert.equal(ev.entity.n, i, 'events arrive in order, none missing');
        assert.equal(ev.entity.pad, filler(i), `event ${i} arrives intact`);
    });
    return texts.length;
}

test('a watcher that stops reading gets every event, intact and in order, once it reads again', async () => {
    const srv = await server('64m');
    const { key } = await workspaceWithKey('bp-order');
    const w = await pausedWatcher(srv, key);
    assert.match(w.head, /^HTTP\/1\.1 101/);
    await sleep(200); // subscribed
    const COUNT = 40; // 10 MiB: more than the socket buffers on both sides hold (a few MiB)
    await emitMany(srv, key, COUNT);
    w.resume();
    await waitFor(() => w.frames.length >= COUNT, { timeoutMs: 15000, what: `${COUNT} events` })
        .catch((e) => { throw new Error(`${e.message}: got ${w.frames.length}, ${w.rest.length} bytes of a frame\n${srv.stderr.split("\n").filter((l) => !l.startsWith("DISPATCH")).join("\n")}`); });
    assert.equal(checkEvents(w.frames), COUNT);
    assert.equal(w.frames.length, COUNT, 'nothing but the events');
    w.destroy();
});

test('a watcher too slow to keep up is closed with 1013 after the events it was sent', async () => {
    const srv = await server('256k');
    const { key } = await workspaceWithKey('bp-slow');
    const w = await pausedWatcher(srv, key);
    await sleep(200);
    const COUNT = 40;
    await emitMany(srv, key, COUNT);
    await srv.waitForLog((l) => /too slow/.test(l.msg || l.raw || ''), 5000).catch((e) => {
        throw new Error(`${e.message}\n${srv.stderrTail(20)}`);
    });
    w.resume();
    await waitFor(() => w.ended, { timeoutMs: 15000, what: 'the server to close the connection' });
    const frames = w.frames;
    assert.equal(w.rest.length, 0, 'nothing but whole frames');
    const got = checkEvents(frames);
    assert.ok(got > 0 && got < COUNT, `some events before the cut-off, not all (${got})`);
    const last = frames[frames.length - 1];
    assert.equal(last.op, 8, 'the last frame is a close');
    assert.equal(last.payload.readUInt16BE(0), 1013);
    assert.equal(frames.filter((f) => f.op === 8).length, 1);
    w.destroy();
});
