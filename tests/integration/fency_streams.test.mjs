// Fency sessions, client tokens and progress streams over HTTP, as the browser SDK speaks them
// (fency.md §1, §3–§5): POST /v1/sessions → one-action client tokens; POST /pub/ct/streams (201
// StreamDto); GET /sse/streams/{id} read with a raw HTTP client (chunked body, "id:" + base64
// "data:" lines decoded here); replay of messages buffered before the connection, Last-Event-ID,
// STREAM_NOT_FOUND, STREAM_TIMEOUT, bad credentials, token reuse / wrong purpose / other workspace /
// expiry, two uses racing, two engramd processes (stream created on one, SSE on the other, task
// posted to the first), the agent-task and download-link routes, slow consumers, CORS preflights.
//
// Messages are appended either by a real agent task, or — to control numbering exactly — by
// running the append of docs/keyspace.md (number, buffer, publish) against Redis from here, as
// another engramd process would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
    startEngram, PrivateRedis, createWorkspace, createKey, uniqueName, waitFor, sleep,
} from './harness.mjs';
import { startMockLlm } from './mock_llm.mjs';

const ENV = { ENGRAM_ACCESS_LOG: 'off' };
const ORIGIN = 'http://app.example';
let redis, llm, A, B, C, w1, w2;

before(async () => {
    redis = await new PrivateRedis().start();
    llm = await startMockLlm();
    const env = {
        ...ENV,
        ENGRAM_LLM_PROVIDER: 'openai',
        ENGRAM_LLM_BASE_URL: llm.url,
        ENGRAM_LLM_MODEL: 'mock-model',
        ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
    };
    A = await startEngram({ redisUrl: redis.url, env });
    B = await startEngram({ redisUrl: redis.url, env });
    // Short lifetimes and a small output buffer, for expiry and slow-consumer tests.
    C = await startEngram({
        redisUrl: redis.url,
        env: {
            ...env,
            ENGRAM_FENCY_CLIENT_TOKEN_TTL: '600ms',
            ENGRAM_FENCY_STREAM_TTL: '2s',
            ENGRAM_MAX_OUTPUT_BUFFER: '64k',
        },
    });
    w1 = await workspace('fys1');
    w2 = await workspace('fys2');
});

after(async () => {
    // Leave an SSE connection open on each server: shutdown must end it cleanly.
    const open = [];
    for (const srv of [A, B, C].filter(Boolean)) {
        const s = await newStream(srv, w1);
        const sse = Sse.open(srv, s.id, { pk: w1.pk, st: s.token });
        await sse.head();
        open.push(sse);
    }
    const exits = await Promise.all([A, B, C].map((s) => s?.stop()));
    await llm?.stop();
    await redis?.destroy();
    // Open SSE connections, subscriptions and timers are released on shutdown: a leak or another
    // sanitizer report makes engramd exit non-zero.
    open.forEach((sse) => assert.ok(sse.ended || sse.closed, 'SSE ended by the shutdown'));
    [A, B, C].forEach((e, i) => {
        if (!e) return;
        assert.doesNotMatch(e.stderr, /Sanitizer/, e.stderrTail(40));
        assert.equal(exits[i].code, 0, e.stderrTail(40));
    });
});

async function workspace(prefix) {
    const ws = await createWorkspace(uniqueName(prefix), { redisUrl: redis.url });
    const sk = await createKey({ workspace: ws.name, redisUrl: redis.url });
    const pk = await createKey({ workspace: ws.name, publishable: true, redisUrl: redis.url });
    return { ws, sk, pk };
}

/* ---- HTTP helpers ------------------------------------------------------------------------- */

async function session(srv, sk, body) {
    return srv.request('POST', '/fency/v1/sessions', { key: sk, body });
}

async function token(srv, sk, body) {
    const r = await session(srv, sk, body);
    assert.equal(r.status, 200, r.body);
    return r.json.clientToken;
}

// A /pub call the way the SDK makes it (no Authorization; Fency headers).
function pub(srv, path, { pk, ct, st, body, origin } = {}) {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Fency-Sdk-Version': '0.1.208' };
    if (pk) headers['X-Fency-Publishable-Key'] = pk;
    if (ct) headers['X-Fency-Client-Token'] = ct;
    if (st) headers['X-Fency-Stream-Token'] = st;
    if (origin) headers.Origin = origin;
    return srv.request('POST', path, { headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function newStream(srv, w) {
    const ct = await token(srv, w.sk, { createStream: {} });
    const r = await pub(srv, '/fency/pub/ct/streams', { pk: w.pk, ct });
    assert.equal(r.status, 201, r.body);
    return r.json;
}

const invalidToken = (r) => {
    assert.equal(r.status, 401, r.body);
    assert.deepEqual(r.json, { error: { message: 'Invalid client token' } });
};

/* ---- appending as another process would --------------------------------------------------- */

// One RESP command on its own connection; resolves the parsed reply (integer, string, array, null).
function redisCall(...args) {
    return new Promise((resolve, reject) => {
        const s = net.connect(redis.port, '127.0.0.1');
        let buf = Buffer.alloc(0);
        const parts = [`*${args.length}\r\n`];
        for (const a of args) parts.push(`$${Buffer.byteLength(String(a))}\r\n${a}\r\n`);
        s.on('connect', () => s.write(parts.join('')));
        s.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            const r = parseResp(buf, 0);
            if (r) { s.destroy(); r.value instanceof Error ? reject(r.value) : resolve(r.value); }
        });
        s.on('error', reject);
    });
}

function parseResp(buf, off) {
    const nl = buf.indexOf('\r\n', off);
    if (nl < 0) return null;
    const t = String.fromCharCode(buf[off]), line = buf.subarray(off + 1, nl).toString();
    if (t === '+') return { value: line, end: nl + 2 };
    if (t === '-') return { value: new Error(line), end: nl + 2 };
    if (t === ':') return { value: Number(line), end: nl + 2 };
    if (t === '$') {
        const n = Number(line);
        if (n < 0) return { value: null, end: nl + 2 };
        if (buf.length < nl + 2 + n + 2) return null;
        return { value: buf.subarray(nl + 2, nl + 2 + n).toString(), end: nl + 2 + n + 2 };
    }
    if (t === '*') {
        const n = Number(line), out = [];
        let pos = nl + 2;
        for (let i = 0; i < n; i++) {
            const r = parseResp(buf, pos);
            if (!r) return null;
            out.push(r.value);
            pos = r.end;
        }
        return { value: out, end: pos };
    }
    throw new Error(`bad RESP ${t}`);
}

// The append of src/runs/pstream.c, keys and channel as docs/keyspace.md lists them.
const APPEND = `if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-1', 'm', ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('PUBLISH', ARGV[2], seq .. ' ' .. ARGV[1])
return seq`;

let itemSeq = 0;
function progressMessage(streamId, text) {
    return {
        type: 'AGENT_TASK_PROGRESS_ITEM_UPDATED', streamId, timestamp: new Date().toISOString(),
        createdAt: new Date().toISOString(), agentTaskId: 'ata_00000000000000000000000000000001',
        progressItemId: `item-${++itemSeq}`,
        data: JSON.stringify({ taskType: 'StreamingChatCompletion', eventType: 'Text', text }),
    };
}

async function append(streamId, msg) {
    return redisCall('EVAL', APPEND, 2, `eg:{fs:${streamId}}:m`, `eg:{fs:${streamId}}:b`,
        JSON.stringify(msg), `eg:fs:${streamId}`, 10000);
}

/* ---- a raw SSE client --------------------------------------------------------------------- */

// GET /sse/streams/{id} on a raw socket; decodes the chunked body and the events as they come.
// sse.status / sse.headers once the head is in; sse.events [{id, data (decoded JSON)}];
// sse.comments; sse.ended when the server finished the body.
class Sse {
    static open(srv, streamId, { pk, st, lastEventId, origin, path } = {}) {
        const sse = new Sse();
        const lines = [`GET ${path || `/fency/sse/streams/${streamId}`} HTTP/1.1`, 'Host: localhost',
            'accept: text/event-stream'];
        if (pk) lines.push(`X-Fency-Publishable-Key: ${pk}`);
        if (st) lines.push(`X-Fency-Stream-Token: ${st}`);
        if (lastEventId !== undefined) lines.push(`Last-Event-ID: ${lastEventId}`);
        if (origin) lines.push(`Origin: ${origin}`);
        sse.sock = net.connect(srv.port, '127.0.0.1', () => sse.sock.write(lines.join('\r\n') + '\r\n\r\n'));
        sse.sock.on('data', (d) => sse._data(d));
        sse.sock.on('close', () => { sse.closed = true; });
        sse.sock.on('error', () => { sse.closed = true; });
        return sse;
    }

    constructor() {
        this.raw = Buffer.alloc(0);
        this.body = '';
        this.events = [];
        this.comments = [];
        this.ended = false;
        this.closed = false;
        this.status = 0;
        this.headers = null;
        this.chunked = false;
    }

    _data(d) {
        this.raw = Buffer.concat([this.raw, d]);
        if (!this.headers) {
            const end = this.raw.indexOf('\r\n\r\n');
            if (end < 0) return;
            const head = this.raw.subarray(0, end).toString().split('\r\n');
            this.status = Number(head[0].split(' ')[1]);
            this.headers = {};
            for (const l of head.slice(1)) {
                const i = l.indexOf(':');
                this.headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
            }
            this.chunked = /chunked/i.test(this.headers['transfer-encoding'] || '');
            this.raw = this.raw.subarray(end + 4);
        }
        if (!this.chunked) {
            this.body += this.raw.toString();
            this.raw = Buffer.alloc(0);
        } else {
            for (;;) {
                const nl = this.raw.indexOf('\r\n');
                if (nl < 0) break;
                const size = parseInt(this.raw.subarray(0, nl).toString(), 16);
                if (this.raw.length < nl + 2 + size + 2) break;
                if (size === 0) { this.ended = true; this.raw = Buffer.alloc(0); break; }
                this.body += this.raw.subarray(nl + 2, nl + 2 + size).toString();
                this.raw = this.raw.subarray(nl + 2 + size + 2);
            }
        }
        this._events();
    }

    // The client parser of fency.md §5: split on a blank line, ignore ':' lines, join data lines.
    _events() {
        let i;
        while ((i = this.body.indexOf('\n\n')) >= 0) {
            const block = this.body.slice(0, i);
            this.body = this.body.slice(i + 2);
            let id = null;
            const data = [];
            for (const line of block.split('\n')) {
                if (line.startsWith(':')) { this.comments.push(line.slice(1).trim()); continue; }
                const c = line.indexOf(':');
                const name = c < 0 ? line : line.slice(0, c);
                let v = c < 0 ? '' : line.slice(c + 1);
                if (v.startsWith(' ')) v = v.slice(1);
                if (name === 'id') id = v;
                if (name === 'data') data.push(v);
            }
            if (data.length === 0) continue;
            assert.equal(data.length, 1, 'one data line per event');
            assert.match(data[0], /^[A-Za-z0-9+/]+={0,2}$/, 'standard base64 with padding');
            this.events.push({ id, data: JSON.parse(Buffer.from(data[0], 'base64').toString('utf8')) });
        }
    }

    async head(timeoutMs = 5000) {
        await waitFor(() => this.headers || this.closed, { timeoutMs, what: 'SSE response head' });
        return this;
    }

    async count(n, timeoutMs = 5000) {
        await waitFor(() => this.events.length >= n, { timeoutMs, what: `${n} SSE events (have ${JSON.stringify(this.events.map((e) => e.data.type))})` });
        return this.events;
    }

    async end(timeoutMs = 5000) {
        await waitFor(() => this.ended || this.closed, { timeoutMs, what: 'the end of the SSE response' });
    }

    close() { this.sock.destroy(); }
}

/* ---- sessions ----------------------------------------------------------------------------- */

test('POST /v1/sessions issues one token per action, with the Fency shape', async () => {
    const cases = [
        [{ createStream: {} }, 'CREATE_STREAM'],
        [{ createAgentTask: { taskType: 'MEMORY_SEARCH', metadata: { user: 'u1' }, conversationId: 'cnv_x', background: false } }, 'CREATE_AGENT_TASK'],
        [{ createAgentTaskFileDownload: { agentTaskFileId: 'atf_1' } }, 'CREATE_AGENT_TASK_FILE_DOWNLOAD'],
        [{ getAgentTaskResponse: { agentTaskId: 'ata_1' } }, 'GET_AGENT_TASK_RESPONSE'],
    ];
    const seen = new Set();
    for (const [body, type] of cases) {
        const r = await session(A, w1.sk, body);
        assert.equal(r.status, 200, r.body);
        assert.deepEqual(Object.keys(r.json), ['id', 'createdAt', 'type', 'clientToken']);
        assert.match(r.json.id, /^ses_[0-9a-f]{32}$/);
        assert.match(r.json.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
        assert.equal(r.json.type, type);
        assert.match(r.json.clientToken, /^[0-9a-f]{32}$/);
        assert.ok(!seen.has(r.json.clientToken));
        seen.add(r.json.clientToken);
    }
});

test('POST /v1/sessions refuses bad bodies and keys', async () => {
    const bad = [
        {},
        { createStream: {}, getAgentTaskResponse: { agentTaskId: 'ata_1' } },
        { createStream: 'yes' },
        { createAgentTask: {} },
        { createAgentTask: { taskType: 'MEMORY_MAGIC' } },
        { createAgentTask: { taskType: 'MEMORY_CHAT', metadata: 'x' } },
        { createAgentTask: { taskType: 'MEMORY_CHAT', background: 'yes' } },
        { createAgentTask: { taskType: 'MEMORY_CHAT', guardRails: [] } },
        { createAgentTask: { taskType: 'MEMORY_CHAT', guardRails: { memoryTypes: [{}] } } },
        { createAgentTask: { taskType: 'MEMORY_CHAT', guardRails: { memoryTypes: 'all' } } },
        { createAgentTaskFileDownload: {} },
        { getAgentTaskResponse: { agentTaskId: 7 } },
    ];
    for (const body of bad) {
        const r = await session(A, w1.sk, body);
        assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.body}`);
        assert.equal(typeof r.json.error.message, 'string');
    }
    const ok = await session(A, w1.sk, { createAgentTask: { taskType: 'MEMORY_CHAT',
        guardRails: { memoryTypes: [{ memoryTypeId: 'mty_00000000000000000000000000000001', memoryIds: ['mem_00000000000000000000000000000001'], match: { team: 'ops' }, metadata: [{ key: 'secret', visible: false }] }] } } });
    assert.equal(ok.status, 200, ok.body);
    assert.equal((await A.request('POST', '/fency/v1/sessions', { body: { createStream: {} } })).status, 401);
    assert.equal((await session(A, w1.pk, { createStream: {} })).status, 401, 'a publishable key cannot open sessions');
});

/* ---- streams and client tokens ------------------------------------------------------------ */

test('POST /pub/ct/streams: 201 StreamDto, the token is used once', async () => {
    const ct = await token(A, w1.sk, { createStream: {} });
    const r = await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct, origin: ORIGIN });
    assert.equal(r.status, 201, r.body);
    assert.deepEqual(Object.keys(r.json), ['id', 'createdAt', 'token']);
    assert.match(r.json.id, /^str_[0-9a-f]{32}$/);
    assert.match(r.json.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.ok(r.json.token.length >= 40);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    // Reuse, on this process or another one.
    invalidToken(await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct }));
    invalidToken(await pub(B, '/fency/pub/ct/streams', { pk: w1.pk, ct }));
});

test('client tokens: unknown, missing, wrong purpose (403), other workspace (403, not consumed)', async () => {
    invalidToken(await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct: '0123456789abcdef0123456789abcdef' }));
    invalidToken(await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct: 'not-a-token' }));
    invalidToken(await pub(A, '/fency/pub/ct/streams', { pk: w1.pk }));

    const taskToken = await token(A, w1.sk, { createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION' } });
    const wrong = await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct: taskToken });
    assert.equal(wrong.status, 403, wrong.body);
    assert.equal(typeof wrong.json.error.message, 'string');

    const ct = await token(A, w1.sk, { createStream: {} });
    const other = await pub(A, '/fency/pub/ct/streams', { pk: w2.pk, ct });
    assert.equal(other.status, 403, other.body);
    const mine = await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct });
    assert.equal(mine.status, 201, 'a 403 elsewhere does not burn the token');
});

test('publishable key: missing, malformed, unknown, or a secret key → 401', async () => {
    const ct = await token(A, w1.sk, { createStream: {} });
    for (const pk of [undefined, 'nope', 'pk_' + 'x'.repeat(40), w1.sk]) {
        const r = await pub(A, '/fency/pub/ct/streams', { pk, ct });
        assert.equal(r.status, 401, `${pk} → ${r.status}`);
        assert.equal(typeof r.json.error.message, 'string');
    }
    assert.equal((await pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct })).status, 201, 'not consumed by the 401s');
});

test('two uses of one token racing on two processes: exactly one wins', async () => {
    for (let i = 0; i < 10; i++) {
        const ct = await token(A, w1.sk, { createStream: {} });
        const [a, b] = await Promise.all([
            pub(A, '/fency/pub/ct/streams', { pk: w1.pk, ct }),
            pub(B, '/fency/pub/ct/streams', { pk: w1.pk, ct }),
        ]);
        assert.deepEqual([a.status, b.status].sort(), [201, 401], `${a.body} / ${b.body}`);
    }
});

test('an unused client token expires (ENGRAM_FENCY_CLIENT_TOKEN_TTL)', async () => {
    const ct = await token(C, w1.sk, { createStream: {} });
    await sleep(900);
    invalidToken(await pub(C, '/fency/pub/ct/streams', { pk: w1.pk, ct }));
    const fresh = await token(C, w1.sk, { createStream: {} });
    assert.equal((await pub(C, '/fency/pub/ct/streams', { pk: w1.pk, ct: fresh })).status, 201);
});

/* ---- SSE ---------------------------------------------------------------------------------- */

test('SSE: headers, replay of what was buffered before connecting, then live messages', async (t) => {
    const s = await newStream(A, w1);
    const m1 = progressMessage(s.id, 'He'), m2 = progressMessage(s.id, 'Hello');
    assert.equal(await append(s.id, m1), 1);
    assert.equal(await append(s.id, m2), 2);
    const sse = Sse.open(A, s.id, { pk: w1.pk, st: s.token, origin: ORIGIN });
    t.after(() => sse.close());
    await sse.head();
    assert.equal(sse.status, 200);
    assert.match(sse.headers['content-type'], /^text\/event-stream/);
    assert.equal(sse.headers['cache-control'], 'no-cache');
    assert.equal(sse.headers['x-accel-buffering'], 'no');
    assert.equal(sse.headers.connection, 'keep-alive');
    assert.equal(sse.headers['access-control-allow-origin'], '*');
    await sse.count(2);
    assert.deepEqual(sse.events.map((e) => e.id), ['1', '2']);
    assert.deepEqual(sse.events[0].data, m1);
    assert.deepEqual(sse.events[1].data, m2);
    const m3 = progressMessage(s.id, 'Hello, world');
    assert.equal(await append(s.id, m3), 3);
    await sse.count(3);
    assert.equal(sse.events[2].id, '3');
    assert.deepEqual(sse.events[2].data, m3);
    // The stream is not closed after a task: more keep coming.
    await append(s.id, progressMessage(s.id, 'again'));
    await sse.count(4);
    assert.equal(sse.ended, false);
});

test('SSE: Last-Event-ID resumes after the last message seen', async (t) => {
    const s = await newStream(A, w1);
    for (let i = 1; i <= 5; i++) await append(s.id, progressMessage(s.id, `t${i}`));
    const sse = Sse.open(B, s.id, { pk: w1.pk, st: s.token, lastEventId: '3' });
    t.after(() => sse.close());
    await sse.count(2);
    assert.deepEqual(sse.events.map((e) => e.id), ['4', '5']);
    await append(s.id, progressMessage(s.id, 't6'));
    await sse.count(3);
    assert.deepEqual(sse.events.map((e) => e.id), ['4', '5', '6']);
    await sleep(100);
    assert.equal(sse.events.length, 3, 'nothing twice');
});

test('SSE: several connections to one stream each get every message once', async (t) => {
    const s = await newStream(A, w1);
    const conns = [Sse.open(A, s.id, { pk: w1.pk, st: s.token }), Sse.open(A, s.id, { pk: w1.pk, st: s.token }),
        Sse.open(B, s.id, { pk: w1.pk, st: s.token })];
    t.after(() => conns.forEach((c) => c.close()));
    await Promise.all(conns.map((c) => c.head()));
    for (let i = 0; i < 20; i++) await append(s.id, progressMessage(s.id, `n${i}`));
    for (const c of conns) {
        await c.count(20);
        assert.deepEqual(c.events.map((e) => Number(e.id)), Array.from({ length: 20 }, (_, i) => i + 1));
    }
    // One channel subscription per process serving the stream, dropped with its last connection.
    const numsub = async () => (await redisCall('PUBSUB', 'NUMSUB', `eg:fs:${s.id}`))[1];
    assert.equal(await numsub(), 2);
    conns[0].close();
    await sleep(100);
    assert.equal(await numsub(), 2, 'A still serves the second connection');
    conns[1].close();
    conns[2].close();
    await waitFor(async () => (await numsub()) === 0, { what: 'no subscription left' });
});

test('SSE: unknown or malformed stream id → 200 + one STREAM_NOT_FOUND, then the end', async () => {
    const s = await newStream(A, w1);
    for (const id of ['str_00000000000000000000000000000000', 'nope']) {
        const sse = Sse.open(A, id, { pk: w1.pk, st: s.token });
        await sse.end();
        assert.equal(sse.status, 200);
        assert.match(sse.headers['content-type'], /^text\/event-stream/);
        assert.equal(sse.events.length, 1);
        assert.equal(sse.events[0].data.type, 'STREAM_NOT_FOUND');
        assert.equal(sse.events[0].data.streamId, id);
        assert.match(sse.events[0].data.timestamp, /Z$/);
        sse.close();
    }
});

test('SSE: wrong stream token, missing token, another workspace\'s key → 401 JSON', async () => {
    const s = await newStream(A, w1);
    const other = await newStream(A, w2);
    const cases = [
        { pk: w1.pk, st: other.token },
        { pk: w1.pk, st: s.token.slice(0, -1) + (s.token.endsWith('a') ? 'b' : 'a') },
        { pk: w1.pk },
        { pk: w2.pk, st: s.token },
        { st: s.token },
        { pk: 'pk_' + 'y'.repeat(40), st: s.token },
    ];
    for (const c of cases) {
        const sse = Sse.open(A, s.id, c);
        await sse.head();
        await waitFor(() => sse.body.length > 0 || sse.closed, { what: 'a body' });
        assert.equal(sse.status, 401, JSON.stringify(c));
        assert.match(sse.headers['content-type'], /^application\/json/);
        sse.close();
    }
});

test('SSE: at expiry STREAM_TIMEOUT then close; afterwards STREAM_NOT_FOUND', async (t) => {
    const s = await newStream(C, w1);
    await append(s.id, progressMessage(s.id, 'x'));
    const sse = Sse.open(C, s.id, { pk: w1.pk, st: s.token });
    t.after(() => sse.close());
    await sse.count(1);
    await sse.end(4000);
    assert.equal(sse.events.length, 2);
    assert.deepEqual(sse.events[1].data.type, 'STREAM_TIMEOUT');
    assert.equal(sse.events[1].data.streamId, s.id);
    // A reconnect (the fallback client does one) finds the stream gone.
    await sleep(100);
    const again = Sse.open(C, s.id, { pk: w1.pk, st: s.token, lastEventId: '1' });
    await again.end();
    assert.equal(again.events[0].data.type, 'STREAM_NOT_FOUND');
    again.close();
    // Appending to it is refused: the buffer is gone with it.
    assert.equal(await append(s.id, progressMessage(s.id, 'late')), -1);
});

test('SSE: a client that stops reading is disconnected (server backpressure)', async () => {
    const s = await newStream(C, w1);
    const sse = Sse.open(C, s.id, { pk: w1.pk, st: s.token });
    await sse.head();
    sse.sock.pause();
    const big = 'z'.repeat(200 * 1024);
    for (let i = 0; i < 40; i++) await append(s.id, progressMessage(s.id, big));
    await C.waitForLog((l) => /client too slow/.test(l.msg || '') && (l.msg || '').includes(s.id), 5000)
        .catch(() => assert.fail(`no slow-client log line; stderr: ${C.stderrTail(10)}`));
    sse.close();
});

test('SSE: an idle stream gets a ": ping" comment every 15 s', async (t) => {
    const s = await newStream(A, w1);
    const sse = Sse.open(A, s.id, { pk: w1.pk, st: s.token });
    t.after(() => sse.close());
    await sse.head();
    const t0 = Date.now();
    await waitFor(() => sse.comments.includes('ping'), { timeoutMs: 17000, intervalMs: 100, what: 'a ping' });
    assert.ok(Date.now() - t0 >= 13000, `ping after ${Date.now() - t0} ms`);
    assert.equal(sse.events.length, 0);
    assert.equal(sse.ended, false);
});

test('SSE: messages published while the pub/sub connection was down arrive after it is back', async (t) => {
    const s = await newStream(B, w1);
    const sse = Sse.open(B, s.id, { pk: w1.pk, st: s.token });
    t.after(() => sse.close());
    await sse.head();
    await append(s.id, progressMessage(s.id, 'before'));
    await sse.count(1);
    // Drop every pub/sub connection (each engramd reconnects with backoff) and append meanwhile:
    // those publishes reach nobody, the buffer has them.
    await redisCall('CLIENT', 'KILL', 'TYPE', 'pubsub');
    for (let i = 0; i < 3; i++) await append(s.id, progressMessage(s.id, `during ${i}`));
    await sse.count(4, 10000);
    await append(s.id, progressMessage(s.id, 'after'));
    await sse.count(5, 10000);
    assert.deepEqual(sse.events.map((e) => e.id), ['1', '2', '3', '4', '5']);
    assert.equal(sse.ended, false);
});

/* ---- two processes ------------------------------------------------------------------------ */

test('two processes: stream created on A, SSE on B, a task posted to A streams to B', async (t) => {
    const s = await newStream(A, w1);
    const sse = Sse.open(B, s.id, { pk: w1.pk, st: s.token });
    t.after(() => sse.close());
    await sse.head();
    assert.equal(sse.status, 200);
    const ct = await token(A, w1.sk, { createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION', metadata: { who: 'test' } } });
    const r = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st: s.token, body: {
        streamingChatCompletionTask: { messages: [{ role: 'USER', content: 'Say hello' }], model: 'openai/gpt-4.1' },
    } });
    assert.equal(r.status, 201, r.body);
    assert.deepEqual(Object.keys(r.json), ['id', 'createdAt', 'type']);
    assert.match(r.json.id, /^ata_[0-9a-f]{32}$/);
    assert.equal(r.json.type, 'STREAMING_CHAT_COMPLETION');
    await waitFor(() => sse.events.some((e) => ['Completed', 'Error'].includes(JSON.parse(e.data.data || '{}').eventType)),
        { timeoutMs: 15000, what: 'the task\'s terminal event on B' });
    const mine = sse.events.filter((e) => e.data.agentTaskId === r.json.id);
    assert.ok(mine.length >= 1);
    for (const e of mine) {
        assert.equal(e.data.type, 'AGENT_TASK_PROGRESS_ITEM_UPDATED');
        assert.equal(e.data.streamId, s.id);
        for (const k of ['timestamp', 'createdAt', 'progressItemId', 'data']) assert.equal(typeof e.data[k], 'string', k);
        assert.equal(JSON.parse(e.data.data).taskType, 'StreamingChatCompletion');
    }
    const ids = sse.events.map((e) => Number(e.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in order');
    const last = JSON.parse(mine.at(-1).data.data);
    assert.equal(last.eventType, 'Completed', mine.at(-1).data.data);
});

/* ---- agent tasks and download links ------------------------------------------------------- */

const chatTask = { streamingChatCompletionTask: { messages: [{ role: 'USER', content: 'hi' }], model: 'openai/gpt-4.1-mini' } };

test('POST /pub/ct-st/agent-tasks: checks before the token is used', async () => {
    const s = await newStream(A, w1);
    const ct = await token(A, w1.sk, { createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION' } });
    // Bad bodies: 400, token kept.
    for (const body of [{}, { streamingChatCompletionTask: { messages: [], model: 'nope/model' } }, { ...chatTask, memoryChatTask: {} }]) {
        const r = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st: s.token, body });
        assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.body}`);
    }
    // A task key other than the session's taskType: 403.
    const other = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st: s.token, body: {
        memorySearchTask: { query: 'q', model: 'openai/gpt-4.1', language: 'en', chunkLimit: 10 } } });
    assert.equal(other.status, 403, other.body);
    // Stream token: missing, wrong, another workspace's stream → 401.
    const s2 = await newStream(A, w2);
    for (const st of [undefined, 'x', s.token.slice(0, -2) + 'zz', s2.token]) {
        const r = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st, body: chatTask });
        assert.equal(r.status, 401, `${st} → ${r.body}`);
    }
    // A stream token token cannot stand in for a client token.
    assert.equal((await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct: s.token, st: s.token, body: chatTask })).status, 401);
    // Another workspace's publishable key: 403, not consumed.
    assert.equal((await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w2.pk, ct, st: s2.token, body: chatTask })).status, 403);
    // Now it works, once.
    const ok = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st: s.token, body: chatTask, origin: ORIGIN });
    assert.equal(ok.status, 201, ok.body);
    assert.equal(ok.headers['access-control-allow-origin'], '*');
    invalidToken(await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st: s.token, body: chatTask }));
    // A createStream token is the wrong purpose here.
    const st = await token(A, w1.sk, { createStream: {} });
    assert.equal((await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct: st, st: s.token, body: chatTask })).status, 403);
});

test('agent-task response download link: {downloadLink, query}, the link serves the archive', async () => {
    const s = await newStream(A, w1);
    const sse = Sse.open(A, s.id, { pk: w1.pk, st: s.token });
    const ct = await token(A, w1.sk, { createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION' } });
    const task = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w1.pk, ct, st: s.token, body: chatTask });
    assert.equal(task.status, 201, task.body);
    await waitFor(() => sse.events.some((e) => e.data.agentTaskId === task.json.id &&
        ['Completed', 'Error'].includes(JSON.parse(e.data.data).eventType)), { timeoutMs: 15000, what: 'terminal event' });
    sse.close();

    const rt = await token(A, w1.sk, { getAgentTaskResponse: { agentTaskId: task.json.id } });
    const mismatch = await pub(A, '/fency/pub/ct/agent-task-response/download-link', { pk: w1.pk, ct: rt, body: { agentTaskId: 'ata_00000000000000000000000000000009' } });
    assert.equal(mismatch.status, 403, mismatch.body);
    assert.equal((await pub(A, '/fency/pub/ct/agent-task-response/download-link', { pk: w1.pk, ct: rt, body: {} })).status, 400);
    const r = await pub(A, '/fency/pub/ct/agent-task-response/download-link', { pk: w1.pk, ct: rt, body: { agentTaskId: task.json.id } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(Object.keys(r.json).sort(), ['downloadLink', 'query']);
    assert.ok(r.json.query === null || typeof r.json.query === 'string');
    const url = new URL(r.json.downloadLink);
    assert.equal(url.origin, A.url); // built from the request's Host header
    assert.match(url.pathname, /^\/fency\/pub\/downloads\/[0-9a-f]{32}$/);
    invalidToken(await pub(A, '/fency/pub/ct/agent-task-response/download-link', { pk: w1.pk, ct: rt, body: { agentTaskId: task.json.id } }));
    // The link works on any process, without keys, more than once.
    for (const srv of [A, B, B]) {
        const g = await srv.get(url.pathname);
        assert.equal(g.status, 200, g.body);
        assert.match(g.headers['content-type'], /^application\/json/);
        const arr = JSON.parse(g.body);
        assert.ok(Array.isArray(arr) && arr.length >= 1);
        for (const e of arr) {
            assert.equal(e.type, 'AGENT_TASK_PROGRESS_ITEM_UPDATED');
            assert.equal(e.agentTaskId, task.json.id);
        }
    }
    assert.equal((await A.get(url.pathname.replace(/[0-9a-f]$/, (c) => (c === '0' ? '1' : '0')))).status, 403);
    // Unknown task: 404, token kept.
    const ut = await token(A, w1.sk, { getAgentTaskResponse: { agentTaskId: 'ata_0000000000000000000000000000000f' } });
    assert.equal((await pub(A, '/fency/pub/ct/agent-task-response/download-link', { pk: w1.pk, ct: ut, body: { agentTaskId: 'ata_0000000000000000000000000000000f' } })).status, 404);
});

test('agent-task file download link: token checks, then 404 (engram\'s tasks make no files)', async () => {
    const ct = await token(A, w1.sk, { createAgentTaskFileDownload: { agentTaskFileId: 'atf_1' } });
    assert.equal((await pub(A, '/fency/pub/ct/agent-task-files/download-link', { pk: w1.pk, ct, body: { agentTaskFileId: 'atf_2' } })).status, 403);
    assert.equal((await pub(A, '/fency/pub/ct/agent-task-files/download-link', { pk: w2.pk, ct, body: { agentTaskFileId: 'atf_1' } })).status, 403);
    const r = await pub(A, '/fency/pub/ct/agent-task-files/download-link', { pk: w1.pk, ct, body: { agentTaskFileId: 'atf_1' } });
    assert.equal(r.status, 404, r.body);
    assert.match(r.json.error.message, /atf_1/);
});

test('POST /pub/ct/types → {}', async () => {
    const r = await pub(A, '/fency/pub/ct/types', {});
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {});
});

/* ---- CORS --------------------------------------------------------------------------------- */

test('CORS preflights of /pub and /sse answer what a browser asks for', async () => {
    const cases = [
        ['/fency/pub/ct/streams', 'POST', 'content-type,x-fency-publishable-key,x-fency-client-token,x-fency-sdk-version'],
        ['/fency/pub/ct-st/agent-tasks', 'POST', 'content-type,x-fency-publishable-key,x-fency-client-token,x-fency-sdk-version,x-fency-stream-token'],
        ['/fency/pub/ct/agent-task-response/download-link', 'POST', 'content-type,x-fency-publishable-key,x-fency-client-token,x-fency-sdk-version'],
        ['/fency/sse/streams/str_00000000000000000000000000000000', 'GET', 'x-fency-publishable-key,x-fency-stream-token,last-event-id'],
    ];
    for (const [path, method, reqHeaders] of cases) {
        const r = await A.request('OPTIONS', path, { headers: { Origin: ORIGIN, 'Access-Control-Request-Method': method, 'Access-Control-Request-Headers': reqHeaders } });
        assert.equal(r.status, 204, `${path}: ${r.status} ${r.body}`);
        assert.equal(r.headers['access-control-allow-origin'], '*');
        const methods = r.headers['access-control-allow-methods'].split(',').map((m) => m.trim());
        assert.ok(methods.includes(method) && methods.includes('OPTIONS'), r.headers['access-control-allow-methods']);
        const allowed = r.headers['access-control-allow-headers'].toLowerCase().split(',').map((h) => h.trim());
        for (const h of reqHeaders.split(',')) assert.ok(allowed.includes(h), `${path}: ${h} not in ${allowed}`);
        assert.equal(r.headers['access-control-max-age'], '600');
    }
});
