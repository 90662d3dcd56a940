// Fency agent tasks end to end through the routes the SDK uses (fency.md §3–§5, §7): POST
// /v1/sessions → /pub/ct/streams → GET /sse/streams/{id} → /pub/ct-st/agent-tasks, then the
// stored task (GET /v1/agent-tasks*), its events (agent.task.*) and its archive. Every task type
// runs against tools/mock-llm (ENGRAM_AGENT_LLM_*), and again on an engramd without a model (the
// offline paths). Also: guard rails under an adversarial model, a model error → FAILED,
// conversations, request validation over HTTP, and kill -9 in the middle of a run.
//
// Private Redis instances keep other suites' workers off the "agent_tasks" queue (and the model
// and offline engramds off each other's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startEngram, PrivateRedis, createWorkspace, createKey, uniqueName, waitFor, sleep } from './harness.mjs';
import { startMockLlm } from './mock_llm.mjs';

const ENV = {
    ENGRAM_ACCESS_LOG: 'off',
    ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
    ENGRAM_AGENT_TASK_VISIBILITY: '2s',
    ENGRAM_LIBRARY_VISIBILITY: '2s',
};
const ID = (p) => new RegExp(`^${p}_[0-9a-f]{32}$`);
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const TASK_KEYS = ['id', 'createdAt', 'updatedAt', 'status', 'taskType', 'succeededAt', 'successResponse',
    'failedAt', 'failureResponse', 'metadata'];

let redis, redisOff, llm, A, OFF, w, wo;
let hrType, itType, secret, memHoliday, memVpn, memOffHoliday;

before(async () => {
    redis = await new PrivateRedis().start();
    redisOff = await new PrivateRedis().start();
    llm = await startMockLlm();
    A = await startEngram({
        redisUrl: redis.url,
        env: {
            ...ENV,
            ENGRAM_AGENT_LLM_PROVIDER: 'openai',
            ENGRAM_AGENT_LLM_BASE_URL: llm.url,
            ENGRAM_AGENT_LLM_MODEL: 'mock-model',
        },
    });
    OFF = await startEngram({ redisUrl: redisOff.url, env: ENV });
    w = await workspace(redis, 'fyt');
    wo = await workspace(redisOff, 'fyto');

    hrType = await createType(A, w, 'HR policies');
    itType = await createType(A, w, 'IT guides');
    memHoliday = await createMemory(A, w, hrType, 'Holiday policy', 'Employees get 25 days of paid holiday per year. Holiday requests go to the line manager two weeks ahead.', { department: 'hr', level: 'public' });
    memVpn = await createMemory(A, w, itType, 'VPN setup', 'To connect to the VPN install WireGuard and import the profile from the IT portal.', { department: 'it', level: 'public' });
    secret = await createMemory(A, w, hrType, 'Executive holiday bonus', 'Executives get a secret holiday bonus of 40 extra days of holiday, codeword PLATYPUS.', { department: 'hr', level: 'restricted' });
    await Promise.all([memHoliday, memVpn, secret].map((m) => synced(A, w, m.id)));

    const oType = await createType(OFF, wo, 'HR policies');
    memOffHoliday = await createMemory(OFF, wo, oType, 'Holiday policy', 'Employees get 25 days of paid holiday per year. Holiday requests go to the line manager two weeks ahead.', {});
    await synced(OFF, wo, memOffHoliday.id);
});

after(async () => {
    await Promise.all([A, OFF].map((s) => s?.stop()));
    await llm?.stop();
    await redis?.destroy();
    await redisOff?.destroy();
});

/* ---- setup helpers ------------------------------------------------------------------------ */

async function workspace(r, prefix) {
    const ws = await createWorkspace(uniqueName(prefix), { redisUrl: r.url });
    const sk = await createKey({ workspace: ws.name, redisUrl: r.url });
    const pk = await createKey({ workspace: ws.name, publishable: true, redisUrl: r.url });
    return { ws, sk, pk };
}

async function createType(srv, ws, name) {
    const r = await srv.request('POST', '/fency/v1/memory-types', { key: ws.sk, body: { name, description: name } });
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function createMemory(srv, ws, type, title, text, metadata) {
    const r = await srv.request('POST', '/fency/v1/memories', {
        key: ws.sk, body: { memoryTypeId: type.id, sourceType: 'TEXT', title, text, metadata },
    });
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function synced(srv, ws, id) {
    return waitFor(async () => {
        const r = await srv.get(`/fency/v1/memories/${id}`, { key: ws.sk });
        if (r.json?.contentStatus === 'SYNCHRONIZATION_ERROR') throw new Error(r.body);
        return r.json?.contentStatus === 'SYNCHRONIZED' && r.json;
    }, { timeoutMs: 20000, what: `memory ${id} synchronized` });
}

/* ---- the SDK's flow ----------------------------------------------------------------------- */

function pub(srv, path, { pk, ct, st, body } = {}) {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Fency-Sdk-Version': '0.1.208' };
    if (pk) headers['X-Fency-Publishable-Key'] = pk;
    if (ct) headers['X-Fency-Client-Token'] = ct;
    if (st) headers['X-Fency-Stream-Token'] = st;
    return srv.request('POST', path, { headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function token(srv, ws, body) {
    const r = await srv.request('POST', '/fency/v1/sessions', { key: ws.sk, body });
    assert.equal(r.status, 200, r.body);
    return r.json.clientToken;
}

// GET /sse/streams/{id} on a raw socket: decodes the chunked body and the base64 data lines.
class Sse {
    static open(srv, streamId, pk, st) {
        const sse = new Sse();
        const lines = [`GET /fency/sse/streams/${streamId} HTTP/1.1`, 'Host: localhost', 'accept: text/event-stream',
            `X-Fency-Publishable-Key: ${pk}`, `X-Fency-Stream-Token: ${st}`];
        sse.sock = net.connect(srv.port, '127.0.0.1', () => sse.sock.write(lines.join('\r\n') + '\r\n\r\n'));
        sse.sock.on('data', (d) => sse._data(d));
        sse.sock.on('error', () => {});
        return sse;
    }

    constructor() { this.raw = Buffer.alloc(0); this.body = ''; this.events = []; this.headers = null; }

    _data(d) {
        this.raw = Buffer.concat([this.raw, d]);
        if (!this.headers) {
            const end = this.raw.indexOf('\r\n\r\n');
            if (end < 0) return;
            this.headers = this.raw.subarray(0, end).toString();
            this.raw = this.raw.subarray(end + 4);
        }
        for (;;) {
            const nl = this.raw.indexOf('\r\n');
            if (nl < 0) break;
            const size = parseInt(this.raw.subarray(0, nl).toString(), 16);
            if (this.raw.length < nl + 2 + size + 2) break;
            this.body += this.raw.subarray(nl + 2, nl + 2 + size).toString();
            this.raw = this.raw.subarray(nl + 2 + size + 2);
            if (size === 0) break;
        }
        let i;
        while ((i = this.body.indexOf('\n\n')) >= 0) {
            const block = this.body.slice(0, i);
            this.body = this.body.slice(i + 2);
            const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
            if (data.length) this.events.push(JSON.parse(Buffer.from(data[0], 'base64').toString('utf8')));
        }
    }

    close() { this.sock.destroy(); }
}

// One task as the react SDK runs it; resolves {id, msgs (progress messages of this task), inner
// (their decoded data), terminal (the Completed/Error inner event)}.
async function runTask(srv, ws, taskType, body, session = {}, { wait = true } = {}) {
    const sct = await token(srv, ws, { createStream: {} });
    const s = await pub(srv, '/fency/pub/ct/streams', { pk: ws.pk, ct: sct });
    assert.equal(s.status, 201, s.body);
    const sse = Sse.open(srv, s.json.id, ws.pk, s.json.token);
    const ct = await token(srv, ws, { createAgentTask: { taskType, ...session } });
    const r = await pub(srv, '/fency/pub/ct-st/agent-tasks', { pk: ws.pk, ct, st: s.json.token, body });
    assert.equal(r.status, 201, r.body);
    assert.match(r.json.id, ID('ata'));
    assert.equal(r.json.type, taskType);
    const out = { id: r.json.id, stream: s.json, sse };
    if (!wait) return out;
    await finish(out);
    return out;
}

async function finish(out, timeoutMs = 20000) {
    const done = (e) => e.type === 'AGENT_TASK_PROGRESS_ITEM_UPDATED' && e.agentTaskId === out.id &&
        ['Completed', 'Error'].includes(JSON.parse(e.data).eventType);
    await waitFor(() => out.sse.events.some(done), { timeoutMs, what: `task ${out.id} terminal event` });
    await sleep(300); // anything after the terminal event would show now
    out.msgs = out.sse.events.filter((e) => e.agentTaskId === out.id);
    for (const m of out.msgs) {
        assert.equal(m.type, 'AGENT_TASK_PROGRESS_ITEM_UPDATED');
        assert.equal(m.streamId, out.stream.id);
        assert.equal(typeof m.data, 'string', 'data is a JSON-encoded string');
        assert.match(m.createdAt, TIME);
        assert.equal(typeof m.progressItemId, 'string');
    }
    out.inner = out.msgs.map((m) => JSON.parse(m.data));
    const terminals = out.inner.filter((d) => d.eventType === 'Completed' || d.eventType === 'Error');
    assert.equal(terminals.length, 1, `exactly one terminal event: ${JSON.stringify(out.inner.map((d) => d.eventType))}`);
    assert.equal(out.inner.at(-1), terminals[0], 'the terminal event is the last');
    out.terminal = terminals[0];
    out.sse.close();
    return out;
}

async function getTask(srv, ws, id) {
    const r = await srv.get(`/fency/v1/agent-tasks/${id}`, { key: ws.sk });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(Object.keys(r.json).sort(), [...TASK_KEYS].sort());
    return r.json;
}

async function settled(srv, ws, id) {
    return waitFor(async () => {
        const t = await getTask(srv, ws, id);
        return t.status !== 'IN_PROGRESS' && t;
    }, { timeoutMs: 20000, what: `task ${id} settled` });
}

async function taskEvents(srv, ws, id) {
    const r = await srv.get('/engram/v1/events?order=asc&limit=1000&type=agent.task.*', { headers: { Authorization: `Bearer ${ws.sk}` } });
    assert.equal(r.status, 200, r.body);
    return r.json.data.filter((e) => e.entity.id === id);
}

async function archive(srv, ws, id) {
    const ct = await token(srv, ws, { getAgentTaskResponse: { agentTaskId: id } });
    const r = await pub(srv, '/fency/pub/ct/agent-task-response/download-link', { pk: ws.pk, ct, body: { agentTaskId: id } });
    assert.equal(r.status, 200, r.body);
    const u = new URL(r.json.downloadLink);
    const d = await srv.get(u.pathname + u.search);
    assert.equal(d.status, 200, d.body);
    return { query: r.json.query, entries: JSON.parse(d.body) };
}

const chat = (text, extra = {}) => ({ messages: [{ role: 'USER', content: text }], model: 'openai/gpt-4.1', ...extra });

/* ---- streaming chat completion ------------------------------------------------------------ */

test('STREAMING_CHAT_COMPLETION: one Text item growing, Completed with messages, SUCCEEDED, events', async () => {
    await llm.addRules({ match: { last_user: 'tell me a story' }, reply: { stream_chunks: ['Once ', 'upon ', 'a ', 'time.'] } });
    const t = await runTask(A, w, 'STREAMING_CHAT_COMPLETION', {
        streamingChatCompletionTask: chat('tell me a story', { temperature: 0.3, topP: 0.9 }),
    }, { metadata: { userId: 'u1' } });
    const texts = t.msgs.filter((m) => JSON.parse(m.data).eventType === 'Text');
    assert.ok(texts.length >= 1);
    assert.equal(new Set(texts.map((m) => m.progressItemId)).size, 1, 'streamed text keeps one progressItemId');
    let prev = '';
    for (const m of texts) {
        const d = JSON.parse(m.data);
        assert.equal(d.taskType, 'StreamingChatCompletion');
        assert.ok(d.text.startsWith(prev), `cumulative: ${JSON.stringify(prev)} then ${JSON.stringify(d.text)}`);
        prev = d.text;
    }
    assert.equal(prev, 'Once upon a time.');
    assert.deepEqual(t.terminal, {
        taskType: 'StreamingChatCompletion', eventType: 'Completed',
        response: { textResponse: 'Once upon a time.', messages: [{ role: 'USER', content: 'tell me a story' }, { role: 'ASSISTANT', content: 'Once upon a time.' }] },
    });
    const task = await settled(A, w, t.id);
    assert.equal(task.status, 'SUCCEEDED');
    assert.equal(task.taskType, 'STREAMING_CHAT_COMPLETION');
    assert.match(task.succeededAt, TIME);
    assert.equal(task.failedAt, null);
    assert.equal(task.failureResponse, null);
    assert.deepEqual(task.metadata, { userId: 'u1' });
    assert.equal(task.successResponse.text, 'Once upon a time.');
    assert.match(task.successResponse.completedAt, TIME);
    assert.equal(task.successResponse.messages.length, 2);
    // The model got the messages, the temperature and the topP (as top_p).
    const req = (await llm.requests()).find((q) => q.body?.messages?.some((m) => m.content === 'tell me a story'));
    assert.equal(req.body.temperature, 0.3);
    assert.equal(req.body.top_p, 0.9);
    assert.equal(req.body.stream, true);
    // Events: created (IN_PROGRESS) then updated (SUCCEEDED), once each.
    const evs = await waitFor(async () => { const e = await taskEvents(A, w, t.id); return e.length >= 2 && e; }, { what: 'task events' });
    await sleep(200);
    assert.deepEqual((await taskEvents(A, w, t.id)).map((e) => `${e.type}:${e.entity.status}`),
        ['agent.task.created:IN_PROGRESS', 'agent.task.updated:SUCCEEDED']);
    assert.deepEqual(evs[1].entity, task);
    // The archive holds the latest version of each item, the terminal one last.
    const a = await archive(A, w, t.id);
    assert.equal(a.query, null);
    assert.deepEqual(a.entries.map((e) => JSON.parse(e.data).eventType), ['Text', 'Completed']);
    assert.equal(JSON.parse(a.entries[0].data).text, 'Once upon a time.');
    // Every field the SDK's archive parser wants, streamId included.
    for (const e of a.entries) {
        assert.equal(e.agentTaskId, t.id);
        assert.equal(e.streamId, t.stream.id);
        for (const k of ['progressItemId', 'timestamp', 'createdAt', 'data']) assert.equal(typeof e[k], 'string', k);
    }
});

test('STREAMING_CHAT_COMPLETION: a model error → Error event, FAILED with failureResponse', async () => {
    await llm.addRules({ match: { last_user: 'please fail' }, reply: { status: 400, body: { error: { message: 'context length exceeded', type: 'invalid_request_error' } } } });
    const t = await runTask(A, w, 'STREAMING_CHAT_COMPLETION', { streamingChatCompletionTask: chat('please fail') });
    assert.equal(t.terminal.eventType, 'Error');
    assert.match(t.terminal.message, /context length exceeded/);
    const task = await settled(A, w, t.id);
    assert.equal(task.status, 'FAILED');
    assert.match(task.failedAt, TIME);
    assert.equal(task.succeededAt, null);
    assert.equal(task.successResponse, null);
    assert.match(task.failureResponse.message, /context length exceeded/);
    await waitFor(async () => (await taskEvents(A, w, t.id)).length === 2, { what: 'updated event' });
    assert.equal((await taskEvents(A, w, t.id))[1].entity.status, 'FAILED');
});

/* ---- structured chat completion ----------------------------------------------------------- */

test('STRUCTURED_CHAT_COMPLETION: JSON Schema output, jsonResponse string, successResponse json', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, population: { type: 'integer' } }, required: ['city', 'population'], additionalProperties: false };
    await llm.addRules({ match: { last_user: 'largest city', response_format: 'json_schema' }, reply: { json: { city: 'Oslo', population: 709000 } } });
    const t = await runTask(A, w, 'STRUCTURED_CHAT_COMPLETION', {
        structuredChatCompletionTask: chat('What is the largest city in Norway?', { jsonSchema: JSON.stringify(schema), model: 'anthropic/claude-sonnet-4.5', temperature: 0.5 }),
    });
    assert.equal(t.terminal.eventType, 'Completed');
    assert.equal(typeof t.terminal.response.jsonResponse, 'string');
    assert.deepEqual(JSON.parse(t.terminal.response.jsonResponse), { city: 'Oslo', population: 709000 });
    assert.equal(t.terminal.response.messages.at(-1).role, 'ASSISTANT');
    assert.deepEqual(JSON.parse(t.terminal.response.messages.at(-1).content), { city: 'Oslo', population: 709000 });
    const task = await settled(A, w, t.id);
    assert.equal(task.status, 'SUCCEEDED');
    assert.deepEqual(task.successResponse.json, { city: 'Oslo', population: 709000 });
    assert.equal(task.successResponse.messages.length, 2);
    const req = (await llm.requests()).find((q) => q.body?.response_format?.type === 'json_schema');
    assert.deepEqual(req.body.response_format.json_schema.schema, schema);
});

/* ---- memory search ------------------------------------------------------------------------ */

test('MEMORY_SEARCH: expanded queries, hits with scores and context, successResponse, archive query', async () => {
    await llm.addRules({ match: { schema_name: 'queries', last_user: 'holiday days' }, reply: { json: { queries: ['paid holiday per year', 'vacation allowance'] } } });
    const t = await runTask(A, w, 'MEMORY_SEARCH', {
        memorySearchTask: { query: 'How many holiday days do I get?', model: 'openai/gpt-4.1-mini', language: 'en', chunkLimit: 5, contextExpansion: { before: 1, after: 1 }, queryExpansion: { queryCount: 2 } },
    });
    const types = t.inner.map((d) => d.eventType);
    assert.ok(types.includes('GeneratingQueries') && types.includes('ExploreQueries') && types.includes('SearchMemoryTypes'), types.join());
    const gen = t.inner.filter((d) => d.eventType === 'GeneratingQueries').at(-1);
    assert.deepEqual(gen.memoryTypes[0].queries.map((q) => q.query), ['How many holiday days do I get?', 'paid holiday per year', 'vacation allowance']);
    const explore = t.inner.filter((d) => d.eventType === 'ExploreQueries').at(-1);
    assert.ok(explore.queries.length >= 1);
    for (const q of explore.queries) assert.ok(q.result.numberOfChunks >= 1 && q.result.items.length === q.result.numberOfChunks);
    assert.equal(t.terminal.eventType, 'Completed');
    assert.equal(t.terminal.response.query, 'How many holiday days do I get?');
    const items = t.terminal.response.items;
    assert.ok(items.length >= 1 && items.length <= 5);
    const top = items.find((i) => i.memoryId === memHoliday.id);
    assert.ok(top, 'the holiday policy is found');
    assert.equal(top.memoryTitle, 'Holiday policy');
    assert.equal(top.memoryTypeId, hrType.id);
    assert.equal(top.memoryTypeName, 'HR policies');
    assert.ok(top.matchingChunkScore > 0 && top.matchingChunkScore <= 1);
    assert.equal(top.matchingChunk.chunkNumber, 1);
    assert.ok(Array.isArray(top.matchingChunk.pageNumbers));
    assert.match(top.matchingChunk.content, /25 days/);
    assert.deepEqual(top.chunks.filter((c) => c.relation === 'MATCH').map((c) => c.chunkNumber), [1]);
    for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].matchingChunkScore >= items[i].matchingChunkScore, 'best first');
    const task = await settled(A, w, t.id);
    assert.equal(task.status, 'SUCCEEDED');
    assert.deepEqual(Object.keys(task.successResponse).sort(), ['completedAt', 'items', 'query']);
    assert.deepEqual(task.successResponse.items, items);
    const a = await archive(A, w, t.id);
    assert.equal(a.query, 'How many holiday days do I get?');
    assert.equal(JSON.parse(a.entries.at(-1).data).eventType, 'Completed');
});

test('MEMORY_SEARCH in a workspace without memories: Completed with no items, SUCCEEDED', async () => {
    const empty = await workspace(redis, 'fy-empty');
    const t = await runTask(A, empty, 'MEMORY_SEARCH', {
        memorySearchTask: { query: 'anything at all', model: 'openai/gpt-4.1-mini', language: 'en', chunkLimit: 5 },
    });
    assert.equal(t.terminal.eventType, 'Completed');
    assert.deepEqual(t.terminal.response.items, []);
    const task = await settled(A, empty, t.id);
    assert.equal(task.status, 'SUCCEEDED');
    assert.deepEqual(task.successResponse.items, []);
});

test('MEMORY_SEARCH: context chunks before and after the match, in order', async () => {
    const para = (topic, n) => Array.from({ length: n }, (_, i) => `${topic} sentence number ${i} keeps this paragraph going.`).join(' ');
    const text = [para('Flights are booked through the travel desk', 28), para('The daily per diem allowance for meals abroad is 60 euros', 28),
        para('Hotels must be chosen from the approved list', 28), para('Receipts are submitted within thirty days', 28)].join('\n\n');
    const m = await createMemory(A, w, hrType, 'Travel handbook', text, { level: 'public' });
    await synced(A, w, m.id);
    const t = await runTask(A, w, 'MEMORY_SEARCH', {
        memorySearchTask: { query: 'daily per diem allowance for meals abroad', model: 'openai/gpt-4.1', language: 'en', chunkLimit: 1, contextExpansion: { before: 1, after: 1 } },
    });
    const [item] = t.terminal.response.items;
    assert.equal(item.memoryId, m.id);
    assert.match(item.matchingChunk.content, /per diem/);
    const n = item.matchingChunk.chunkNumber;
    assert.ok(n > 1, `the match is not the first chunk (${n})`);
    assert.deepEqual(item.chunks.map((c) => [c.chunkNumber, c.relation]),
        [[n - 1, 'CONTEXT_BEFORE'], [n, 'MATCH'], [n + 1, 'CONTEXT_AFTER']]);
    assert.match(item.chunks[0].content, /Flights|per diem/);
});

/* ---- memory chat and explore -------------------------------------------------------------- */

test('MEMORY_CHAT: answer streamed from the memories, sources, successResponse', async () => {
    await llm.addRules({ match: { last_user: 'VPN', system: 'Passages' }, reply: { stream_chunks: ['Install WireGuard ', 'and import the profile ', '[VPN setup](https://agent.fency.ai/mem/x/y).'] } });
    const t = await runTask(A, w, 'MEMORY_CHAT', {
        memoryChatTask: { messages: [{ role: 'USER', content: 'How do I set up the VPN?' }], model: 'google/gemini-2.5-flash', language: 'en', chunkLimit: 10, memoryScanLimit: 3 },
    });
    const kinds = t.inner.map((d) => d.eventType);
    assert.ok(kinds.includes('SearchMemoryChunks') && kinds.includes('Text') && kinds.includes('SourcesResult'), kinds.join());
    assert.ok(t.inner.filter((d) => d.eventType === 'Search').at(-1).memories.some((m) => m.memoryId === memVpn.id && m.memoryTitle === 'VPN setup'));
    assert.equal(kinds.indexOf('Search'), 0, 'the search step comes first');
    const texts = t.msgs.filter((m) => JSON.parse(m.data).eventType === 'Text');
    assert.equal(new Set(texts.map((m) => m.progressItemId)).size, 1);
    assert.equal(t.terminal.eventType, 'Completed');
    assert.match(t.terminal.response.textResponse, /^Install WireGuard and import the profile/);
    const src = t.terminal.response.sources.find((s) => s.memoryId === memVpn.id);
    assert.deepEqual(src, { memoryId: memVpn.id, memoryTitle: 'VPN setup', memoryTypeId: itType.id, memoryTypeName: 'IT guides', pageNumbers: src.pageNumbers });
    // The model was shown the VPN passage.
    const req = (await llm.requests()).filter((q) => q.body?.messages?.some((m) => m.content === 'How do I set up the VPN?')).at(-1);
    assert.match(req.body.messages[0].content, /WireGuard/);
    const task = await settled(A, w, t.id);
    assert.equal(task.status, 'SUCCEEDED');
    assert.deepEqual(Object.keys(task.successResponse).sort(), ['completedAt', 'sources', 'text']);
    assert.equal(task.successResponse.text, t.terminal.response.textResponse);
    assert.deepEqual(task.successResponse.sources, t.terminal.response.sources);
});

test('EXPLORE_MEMORIES: the allowed memories listed, searched, answered with sources', async () => {
    await llm.addRules({ match: { last_user: 'what documents', system: 'Memories you may use' }, reply: { content: 'There is a holiday policy and a VPN guide.' } });
    const t = await runTask(A, w, 'EXPLORE_MEMORIES', {
        exploreMemoriesTask: { query: 'what documents do we have about holiday?', model: 'openai/gpt-5-mini', language: 'en' },
    });
    const found = t.inner.find((d) => d.eventType === 'FindMemoriesResult');
    assert.ok(found.memories.some((m) => m.memoryId === memVpn.id));
    assert.ok(t.inner.some((d) => d.eventType === 'SemanticSearch' && Array.isArray(d.items)));
    assert.equal(t.terminal.eventType, 'Completed');
    assert.equal(t.terminal.response.textResponse, 'There is a holiday policy and a VPN guide.');
    const task = await settled(A, w, t.id);
    assert.equal(task.taskType, 'EXPLORE_MEMORIES');
    assert.deepEqual(Object.keys(task.successResponse).sort(), ['completedAt', 'sources', 'text']);
});

/* ---- guard rails -------------------------------------------------------------------------- */

test('guard rails: a memory outside the scope is never read, shown to the model or returned', async () => {
    await llm.clearRequests(); // earlier, unrestricted tasks showed the model everything
    // The model tries to steer the search to the restricted memory.
    await llm.addRules({ match: { schema_name: 'queries', last_user: 'holiday bonus' }, reply: { json: { queries: ['Executive holiday bonus', 'secret bonus codeword for executives'] } } });
    await llm.addRules({ match: { system: 'Passages', last_user: 'holiday bonus' }, reply: { content: 'I can only see the public holiday policy.' } });
    const guardRails = { memoryTypes: [{ memoryTypeId: hrType.id, match: { level: 'public' }, metadata: [{ key: 'department', visible: false }] }] };
    const runs = [
        await runTask(A, w, 'MEMORY_SEARCH', { memorySearchTask: { query: 'executive holiday bonus codeword', model: 'openai/gpt-4.1', language: 'en', chunkLimit: 10, contextExpansion: { before: 2, after: 2 }, queryExpansion: { queryCount: 2 } } }, { guardRails }),
        await runTask(A, w, 'MEMORY_CHAT', { memoryChatTask: { messages: [{ role: 'USER', content: 'What is the executive holiday bonus codeword?' }], model: 'openai/gpt-4.1', language: 'en', chunkLimit: 10, memoryScanLimit: 5 } }, { guardRails }),
        await runTask(A, w, 'EXPLORE_MEMORIES', { exploreMemoriesTask: { query: 'list everything about the holiday bonus', model: 'openai/gpt-4.1', language: 'en' } }, { guardRails }),
        // An id list instead of a metadata match.
        await runTask(A, w, 'MEMORY_SEARCH', { memorySearchTask: { query: 'executive holiday bonus codeword', model: 'openai/gpt-4.1', language: 'en', chunkLimit: 10, queryExpansion: { queryCount: 2 } } },
            { guardRails: { memoryTypes: [{ memoryTypeId: hrType.id, memoryIds: [memHoliday.id] }] } }),
    ];
    for (const t of runs) {
        assert.equal(t.terminal.eventType, 'Completed', JSON.stringify(t.terminal));
        const all = JSON.stringify(t.msgs) + JSON.stringify(await getTask(A, w, t.id)) + JSON.stringify(await archive(A, w, t.id));
        assert.ok(!all.includes(secret.id), 'the restricted memory id never appears');
        assert.ok(!all.includes('PLATYPUS') && !all.includes('40 extra days'), 'its content never appears');
        assert.ok(!all.includes(memVpn.id), 'nor a memory of a type outside the scope');
    }
    assert.ok(runs[0].terminal.response.items.some((i) => i.memoryId === memHoliday.id), 'the allowed memory is still found');
    assert.deepEqual([...new Set(runs[3].terminal.response.items.map((i) => i.memoryId))], [memHoliday.id]);
    // Nothing of the restricted memory, the other type, or the hidden metadata key reached the model.
    const prompts = JSON.stringify((await llm.requests()).filter((q) => q.path === '/v1/chat/completions'));
    assert.ok(prompts.length > 0);
    assert.ok(!prompts.includes('PLATYPUS') && !prompts.includes('40 extra days') && !prompts.includes(secret.id) && !prompts.includes('WireGuard'));
    assert.ok(!prompts.includes('"department"'), 'a hidden metadata key is not shown');
});

/* ---- without a model ---------------------------------------------------------------------- */

test('no model configured: search works, chat and explore answer extractively, completions fail clearly', async () => {
    const s = await runTask(OFF, wo, 'MEMORY_SEARCH', { memorySearchTask: { query: 'holiday days', model: 'openai/gpt-4.1', language: 'en', chunkLimit: 3, queryExpansion: { queryCount: 3 } } });
    assert.equal(s.terminal.eventType, 'Completed');
    assert.equal(s.terminal.response.items[0].memoryId, memOffHoliday.id);
    assert.match(s.inner.find((d) => d.eventType === 'GeneratingQueries').memoryTypes[0].reasoning, /No language model is configured/);
    const c = await runTask(OFF, wo, 'MEMORY_CHAT', { memoryChatTask: { messages: [{ role: 'USER', content: 'How many holiday days?' }], model: 'openai/gpt-4.1', language: 'en', chunkLimit: 5, memoryScanLimit: 3 } });
    assert.equal(c.terminal.eventType, 'Completed');
    assert.match(c.terminal.response.textResponse, /No language model is configured/);
    assert.match(c.terminal.response.textResponse, /25 days/);
    assert.equal(c.terminal.response.sources[0].memoryId, memOffHoliday.id);
    const cn = await runTask(OFF, wo, 'MEMORY_CHAT', { memoryChatTask: { messages: [{ role: 'USER', content: 'holiday days' }], model: 'openai/gpt-4.1', language: 'no', chunkLimit: 5, memoryScanLimit: 3 } });
    assert.match(cn.terminal.response.textResponse, /^Ingen språkmodell er konfigurert/);
    const e = await runTask(OFF, wo, 'EXPLORE_MEMORIES', { exploreMemoriesTask: { query: 'holiday', model: 'openai/gpt-4.1', language: 'en' } });
    assert.equal(e.terminal.eventType, 'Completed');
    assert.match(e.terminal.response.textResponse, /No language model is configured/);
    for (const [type, key, extra] of [['STREAMING_CHAT_COMPLETION', 'streamingChatCompletionTask', {}], ['STRUCTURED_CHAT_COMPLETION', 'structuredChatCompletionTask', { jsonSchema: '{"type":"object"}' }]]) {
        const t = await runTask(OFF, wo, type, { [key]: chat('hello', extra) });
        assert.equal(t.terminal.eventType, 'Error');
        assert.match(t.terminal.message, /no language model is configured/);
        const task = await settled(OFF, wo, t.id);
        assert.equal(task.status, 'FAILED');
        assert.match(task.failureResponse.message, /no language model is configured/);
    }
});

/* ---- request validation over HTTP --------------------------------------------------------- */

test('POST /pub/ct-st/agent-tasks: invalid requests answer 400 naming the rule', async () => {
    const cases = [
        [{}, /exactly one/],
        [{ streamingChatCompletionTask: chat('x'), memorySearchTask: { query: 'q', model: 'openai/gpt-4.1' } }, /exactly one/],
        [{ streamingChatCompletionTask: chat('x', { model: 'openai/gpt-3' }) }, /model must be one of/],
        [{ streamingChatCompletionTask: chat('x', { temperature: 2.5 }) }, /temperature/],
        [{ streamingChatCompletionTask: chat('x', { model: 'anthropic/claude-opus-4.6', temperature: 1.5 }) }, /0 and 1 for anthropic/],
        [{ streamingChatCompletionTask: chat('x', { topP: 1.1 }) }, /topP/],
        [{ streamingChatCompletionTask: { messages: [{ role: 'BOT', content: 'x' }], model: 'openai/gpt-4.1' } }, /role/],
        [{ structuredChatCompletionTask: chat('x', { jsonSchema: '{not json' }) }, /jsonSchema/],
        [{ structuredChatCompletionTask: chat('x', { jsonSchema: { type: 'object' } }) }, /jsonSchema must be a string/],
        [{ memorySearchTask: { query: 'q', model: 'openai/gpt-4.1', language: 'de' } }, /language/],
    ];
    for (const [body, re] of cases) {
        const ct = await token(A, w, { createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION' } });
        const sct = await token(A, w, { createStream: {} });
        const s = await pub(A, '/fency/pub/ct/streams', { pk: w.pk, ct: sct });
        const r = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w.pk, ct, st: s.json.token, body });
        assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.body}`);
        assert.match(r.json.error.message, re);
    }
});

/* ---- listing and conversations ------------------------------------------------------------ */

test('GET /v1/agent-tasks: pages newest first, conversationId filter; conversations', async () => {
    const c = await A.request('POST', '/fency/v1/conversations', { key: w.sk, body: { metadata: { userId: 'u7', channel: 'web' } } });
    assert.equal(c.status, 200, c.body);
    assert.match(c.json.id, ID('cnv'));
    assert.equal(c.json.title, null);
    assert.match(c.json.createdAt, TIME);
    assert.deepEqual(c.json.metadata, { userId: 'u7', channel: 'web' });
    const c2 = await A.request('POST', '/fency/v1/conversations', { key: w.sk, body: { title: 'Other', metadata: { userId: 'u8' } } });
    assert.deepEqual((await A.get(`/fency/v1/conversations/${c.json.id}`, { key: w.sk })).json, c.json);
    assert.equal((await A.get(`/fency/v1/conversations/cnv_${'0'.repeat(32)}`, { key: w.sk })).status, 404);
    // /search wins over /{id}.
    const s = await A.request('POST', '/fency/v1/conversations/search?limit=10', { key: w.sk, body: { metadata: { userId: 'u7' } } });
    assert.equal(s.status, 200, s.body);
    assert.deepEqual(s.json.items, [{ id: c.json.id, title: null, createdAt: c.json.createdAt }]);
    assert.deepEqual(s.json.pagination, { previousPageToken: null, nextPageToken: null });
    const all = await A.request('POST', '/fency/v1/conversations/search', { key: w.sk, body: {} });
    assert.deepEqual(all.json.items.map((i) => i.id), [c2.json.id, c.json.id]);

    await llm.addRules({ match: { last_user: 'in a conversation' }, reply: { content: 'ok' } });
    const t1 = await runTask(A, w, 'STREAMING_CHAT_COMPLETION', { streamingChatCompletionTask: chat('in a conversation 1') }, { conversationId: c.json.id });
    const t2 = await runTask(A, w, 'STREAMING_CHAT_COMPLETION', { streamingChatCompletionTask: chat('in a conversation 2') }, { conversationId: c.json.id });
    await settled(A, w, t2.id);
    const l = await A.get(`/fency/v1/agent-tasks?conversationId=${c.json.id}`, { key: w.sk });
    assert.equal(l.status, 200, l.body);
    assert.deepEqual(l.json.items.map((t) => t.id), [t2.id, t1.id]);
    for (const t of l.json.items) assert.deepEqual(Object.keys(t).sort(), [...TASK_KEYS].sort());
    // Pages of one over every task, forwards then back.
    const p1 = await A.get('/fency/v1/agent-tasks?limit=1', { key: w.sk });
    assert.equal(p1.json.items[0].id, t2.id);
    assert.equal(p1.json.pagination.previousPageToken, null);
    const p2 = await A.get(`/fency/v1/agent-tasks?limit=1&nextPageToken=${p1.json.pagination.nextPageToken}`, { key: w.sk });
    assert.equal(p2.json.items[0].id, t1.id);
    const back = await A.get(`/fency/v1/agent-tasks?limit=1&previousPageToken=${p2.json.pagination.previousPageToken}`, { key: w.sk });
    assert.equal(back.json.items[0].id, t2.id);
    assert.equal((await A.get('/fency/v1/agent-tasks?nextPageToken=a&previousPageToken=b', { key: w.sk })).status, 400);
    assert.equal((await A.get(`/fency/v1/agent-tasks/ata_${'0'.repeat(32)}`, { key: w.sk })).status, 404);
    assert.equal((await A.get('/fency/v1/agent-tasks/nope', { key: w.sk })).status, 404);
    assert.equal((await A.get('/fency/v1/agent-tasks')).status, 401);
    // A task naming an unknown conversation is refused.
    const ct = await token(A, w, { createAgentTask: { taskType: 'STREAMING_CHAT_COMPLETION', conversationId: `cnv_${'1'.repeat(32)}` } });
    const sct = await token(A, w, { createStream: {} });
    const st = await pub(A, '/fency/pub/ct/streams', { pk: w.pk, ct: sct });
    const bad = await pub(A, '/fency/pub/ct-st/agent-tasks', { pk: w.pk, ct, st: st.json.token, body: { streamingChatCompletionTask: chat('x') } });
    assert.ok(bad.status === 404 || bad.status === 400, `${bad.status} ${bad.body}`);
});

/* ---- crash safety ------------------------------------------------------------------------- */

test('kill -9 in the middle of a run: another engramd finishes it, one terminal event', async () => {
    // The first answer never comes in time: the engramd running it is killed meanwhile.
    await llm.addRules({ match: { last_user: 'slow story' }, times: 1, reply: { stream_chunks: ['a', 'b', 'c', 'd', 'e', 'f'], chunk_delay_ms: 1500 } });
    await llm.addRules({ match: { last_user: 'slow story' }, reply: { content: 'The end.' } });
    const victim = await startEngram({ redisUrl: redis.url, env: { ...ENV, ENGRAM_AGENT_TASK_VISIBILITY: '2s', ENGRAM_AGENT_LLM_PROVIDER: 'openai', ENGRAM_AGENT_LLM_BASE_URL: llm.url, ENGRAM_AGENT_LLM_MODEL: 'mock-model' } });
    // A is busy too; stop it taking the job first by posting to the victim and waiting for its
    // model call, whoever runs it.
    await A.stop();
    try {
        const t = await runTask(victim, w, 'STREAMING_CHAT_COMPLETION', { streamingChatCompletionTask: chat('slow story') }, {}, { wait: false });
        await waitFor(async () => (await llm.requests()).some((q) => JSON.stringify(q.body).includes('slow story')), { what: 'model call' });
        await sleep(500);
        victim.signal('SIGKILL');
        await victim.exitPromise;
        A = await startEngram({ redisUrl: redis.url, env: { ...ENV, ENGRAM_AGENT_LLM_PROVIDER: 'openai', ENGRAM_AGENT_LLM_BASE_URL: llm.url, ENGRAM_AGENT_LLM_MODEL: 'mock-model' } });
        // The SSE connection died with the victim: read the stream again on the survivor.
        t.sse = Sse.open(A, t.stream.id, w.pk, t.stream.token);
        await finish(t, 30000);
        assert.equal(t.terminal.eventType, 'Completed');
        assert.equal(t.terminal.response.textResponse, 'The end.');
        const task = await settled(A, w, t.id);
        assert.equal(task.status, 'SUCCEEDED');
        await sleep(500);
        assert.deepEqual((await taskEvents(A, w, t.id)).map((e) => e.type), ['agent.task.created', 'agent.task.updated']);
    } finally {
        await victim.stop('SIGKILL');
    }
});
