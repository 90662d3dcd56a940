// The real browser SDK against engram: a page bundling @fencyai/js 0.1.208 (esbuild, from
// node_modules) served from its own origin and driven in headless Debian Chromium
// (/usr/bin/chromium, apt package "chromium") with playwright-core. The page creates a stream and
// runs each task type — streaming chat completion, structured chat completion, memory chat,
// memory search, explore memories — against engramd + tools/mock-llm, over the SDK's own SSE
// reader (a Web Worker in Chromium) and its own parsers, which drop any message that does not
// fit the SDK's schemas. Client tokens come from this test's backend step (POST /v1/sessions
// with the secret key), handed to the page as the backend of a real app would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startEngram, PrivateRedis, createWorkspace, createKey, uniqueName, waitFor } from '../integration/harness.mjs';
import { startMockLlm } from '../integration/mock_llm.mjs';
import { startPageServer } from './fency-browser/serve.mjs';

const CHROMIUM = process.env.ENGRAM_CHROMIUM || '/usr/bin/chromium';
// Running as root in a container: no sandbox, no GPU, no /dev/shm.
const CHROMIUM_ARGS = ['--no-sandbox', '--headless=new', '--disable-gpu', '--disable-dev-shm-usage'];

let redis, llm, srv, site, browser, page, ws, sk, pk, hrType, itType, memHoliday, memVpn;
const sessions = []; // the session types the backend step issued
const browserLog = []; // console messages and page errors, shown when a test fails

before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
    redis = await new PrivateRedis().start();
    llm = await startMockLlm();
    srv = await startEngram({
        redisUrl: redis.url,
        env: {
            ENGRAM_ACCESS_LOG: 'off',
            ENGRAM_AGENT_LLM_PROVIDER: 'openai',
            ENGRAM_AGENT_LLM_BASE_URL: llm.url,
            ENGRAM_AGENT_LLM_MODEL: 'mock-model',
            ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
            ENGRAM_AGENT_TASK_VISIBILITY: '2s',
            ENGRAM_LIBRARY_VISIBILITY: '2s',
        },
    });
    const w = await createWorkspace(uniqueName('fyBrowser'), { redisUrl: redis.url });
    ws = w;
    sk = await createKey({ workspace: w.name, redisUrl: redis.url });
    pk = await createKey({ workspace: w.name, publishable: true, redisUrl: redis.url });

    // The library the memory tasks read: two types, two TEXT memories, synchronized.
    hrType = await v1('POST', '/fency/v1/memory-types', { name: 'HR policies', description: 'HR' });
    itType = await v1('POST', '/fency/v1/memory-types', { name: 'IT guides', description: 'IT' });
    memHoliday = await v1('POST', '/fency/v1/memories', {
        memoryTypeId: hrType.id, sourceType: 'TEXT', title: 'Holiday policy',
        text: 'Employees get 25 days of paid holiday per year. Holiday requests go to the line manager two weeks ahead.',
        metadata: { department: 'hr' },
    });
    memVpn = await v1('POST', '/fency/v1/memories', {
        memoryTypeId: itType.id, sourceType: 'TEXT', title: 'VPN setup',
        text: 'To connect to the VPN install WireGuard and import the profile from the IT portal.',
        metadata: { department: 'it' },
    });
    for (const m of [memHoliday, memVpn]) {
        await waitFor(async () => {
            const r = await srv.request('GET', `/fency/v1/memories/${m.id}`, { key: sk });
            if (r.json?.contentStatus === 'SYNCHRONIZATION_ERROR') throw new Error(r.body);
            return r.json?.contentStatus === 'SYNCHRONIZED';
        }, { timeoutMs: 20000, what: `memory ${m.id} SYNCHRONIZED` });
    }

    site = await startPageServer();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage();
    page.on('console', (m) => browserLog.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => browserLog.push(`pageerror: ${e.message}`));
    // The app's backend: a client token for exactly one action, made with the secret key.
    await page.exposeFunction('fencyClientToken', async (body) => {
        const r = await srv.request('POST', '/fency/v1/sessions', { key: sk, body });
        if (r.status !== 200) throw new Error(`POST /v1/sessions ${r.status}: ${r.body}`);
        sessions.push(r.json.type);
        return r.json.clientToken;
    });
    await page.goto(site.url);
    await page.waitForFunction(() => typeof window.fencySetup === 'function');
    const setup = await page.evaluate((o) => window.fencySetup(o), { publishableKey: pk, baseUrl: `http://127.0.0.1:${srv.port}/fency` });
    assert.equal(setup.publishableKey, pk);
    assert.equal(setup.worker, true, 'Chromium reads the SSE stream in the SDK\'s Web Worker');
    assert.deepEqual(site.requests.slice(0, 2), ['/', '/bundle.js']);
});

after(async () => {
    await browser?.close();
    await site?.stop();
    await srv?.stop();
    await llm?.stop();
    await redis?.destroy();
});

async function v1(method, path, body) {
    const r = await srv.request(method, path, { key: sk, body });
    assert.equal(r.status, 200, `${method} ${path}: ${r.body}`);
    return r.json;
}

const chat = (text, extra = {}) => ({ messages: [{ role: 'USER', content: text }], model: 'openai/gpt-4.1', ...extra });

let firstStream = null;

// Run one task in the page; check what every task must satisfy and return the page's result.
async function run(params, session) {
    const r = await page.evaluate(([p, s]) => window.fencyRun(p, s), [params, session]);
    const why = () => JSON.stringify({ ...r, browserLog: browserLog.slice(-20) }, null, 1).slice(0, 6000);
    assert.equal(r.apiError, undefined, why());
    assert.equal(r.timedOut, false, `no terminal event reached the browser: ${why()}`);
    assert.deepEqual(r.streamErrors, [], why());
    // The stream: created once by the SDK, then reused by every task (it outlives each task).
    assert.equal(typeof r.stream.id, 'string');
    assert.equal(typeof r.stream.token, 'string');
    firstStream ??= r.stream.id;
    assert.equal(r.stream.id, firstStream, 'the SDK reuses its stream across tasks');
    assert.match(r.agentTask.id, /^ata_[0-9a-f]{32}$/);
    // Every message of the task passed the SDK's own schemas (it drops any that does not).
    assert.ok(r.messages.length >= 1);
    for (const m of r.messages) {
        assert.ok(m.parsed, `the SDK rejected ${JSON.stringify(m.raw)}`);
        assert.equal(m.raw.streamId, r.stream.id);
        assert.equal(typeof m.raw.data, 'string');
    }
    const inner = r.messages.map((m) => m.parsed.data);
    const terminals = inner.filter((d) => d.eventType === 'Completed' || d.eventType === 'Error');
    assert.equal(terminals.length, 1, inner.map((d) => d.eventType).join());
    assert.equal(inner.at(-1), terminals[0], 'nothing after the terminal event');
    assert.equal(r.loading, false);
    if (terminals[0].eventType === 'Completed') assert.equal(r.taskError, null);
    r.inner = inner;
    return r;
}

async function stored(id) {
    return waitFor(async () => {
        const r = await srv.request('GET', `/fency/v1/agent-tasks/${id}`, { key: sk });
        assert.equal(r.status, 200, r.body);
        return r.json.status !== 'IN_PROGRESS' && r.json;
    }, { timeoutMs: 10000, what: `task ${id} settled` });
}

// Streamed text: every Text event of one progress item, each the whole text so far.
function checkCumulative(r, taskType) {
    const texts = r.messages.filter((m) => m.parsed.data.eventType === 'Text');
    assert.ok(texts.length >= 1, 'text was streamed');
    assert.equal(new Set(texts.map((m) => m.parsed.progressItemId)).size, 1);
    let prev = '';
    for (const m of texts) {
        assert.equal(m.parsed.data.taskType, taskType);
        assert.ok(m.parsed.data.text.startsWith(prev), `cumulative: ${JSON.stringify(prev)} → ${JSON.stringify(m.parsed.data.text)}`);
        prev = m.parsed.data.text;
    }
    return prev;
}

test('streaming chat completion: text streams into one growing item, Completed with messages', async () => {
    await llm.addRules({ match: { last_user: 'tell me a story' }, reply: { stream_chunks: ['Once ', 'upon ', 'a ', 'time.'] } });
    const r = await run({ type: 'StreamingChatCompletion', ...chat('tell me a story', { temperature: 0.4 }) }, { metadata: { page: 'browser' } });
    assert.equal(checkCumulative(r, 'StreamingChatCompletion'), 'Once upon a time.');
    assert.equal(r.terminal.type, 'success');
    assert.equal(r.terminal.agentTaskId, r.agentTask.id);
    assert.deepEqual(r.terminal.response, {
        taskType: 'StreamingChatCompletion', eventType: 'Completed',
        response: { textResponse: 'Once upon a time.', messages: [{ role: 'USER', content: 'tell me a story' }, { role: 'ASSISTANT', content: 'Once upon a time.' }] },
    });
    // The SDK's reducer shows the streamed item with the whole text.
    assert.deepEqual(r.progressItems.map((p) => [p.data.eventType, p.data.text]), [['Text', 'Once upon a time.']]);
    const t = await stored(r.agentTask.id);
    assert.equal(t.status, 'SUCCEEDED');
    assert.equal(t.successResponse.text, 'Once upon a time.');
    assert.deepEqual(t.metadata, { page: 'browser' });
});

test('structured chat completion: the JSON answer as jsonResponse', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, population: { type: 'integer' } }, required: ['city', 'population'], additionalProperties: false };
    await llm.addRules({ match: { last_user: 'largest city', response_format: 'json_schema' }, reply: { json: { city: 'Oslo', population: 709000 } } });
    const r = await run({ type: 'StructuredChatCompletion', ...chat('What is the largest city in Norway?', { jsonSchema: JSON.stringify(schema) }) });
    assert.equal(r.terminal.type, 'success');
    const done = r.terminal.response;
    assert.equal(done.taskType, 'StructuredChatCompletion');
    assert.deepEqual(JSON.parse(done.response.jsonResponse), { city: 'Oslo', population: 709000 });
    assert.equal(done.response.messages.at(-1).role, 'ASSISTANT');
    // The SDK appends a structured Completed to the progress items.
    assert.equal(r.progressItems.at(-1).data.eventType, 'Completed');
    const t = await stored(r.agentTask.id);
    assert.equal(t.status, 'SUCCEEDED');
    assert.deepEqual(t.successResponse.json, { city: 'Oslo', population: 709000 });
});

test('memory search: the holiday policy found, with its chunk and score', async () => {
    await llm.addRules({ match: { schema_name: 'queries', last_user: 'holiday days' }, reply: { json: { queries: ['paid holiday per year'] } } });
    const r = await run({ type: 'MemorySearch', query: 'How many holiday days do I get?', model: 'openai/gpt-4.1-mini', chunkLimit: 5, contextExpansion: { before: 1, after: 1 }, queryExpansion: { queryCount: 1 } });
    assert.equal(r.terminal.type, 'success');
    const res = r.terminal.response.response;
    assert.equal(res.query, 'How many holiday days do I get?');
    const hit = res.items.find((i) => i.memoryId === memHoliday.id);
    assert.ok(hit, JSON.stringify(res.items));
    assert.equal(hit.memoryTitle, 'Holiday policy');
    assert.equal(hit.memoryTypeId, hrType.id);
    assert.equal(hit.memoryTypeName, 'HR policies');
    assert.ok(hit.matchingChunkScore > 0 && hit.matchingChunkScore <= 1);
    assert.match(hit.matchingChunk.content, /25 days/);
    assert.ok(r.inner.some((d) => d.eventType === 'GeneratingQueries'));
    assert.equal(r.progressItems.at(-1).data.eventType, 'Completed');
    const t = await stored(r.agentTask.id);
    assert.equal(t.status, 'SUCCEEDED');
    assert.deepEqual(t.successResponse.items, res.items);
});

test('memory chat: the answer streamed from the memories, with sources', async () => {
    await llm.addRules({ match: { last_user: 'VPN', system: 'Passages' }, reply: { stream_chunks: ['Install WireGuard ', 'and import the profile ', 'from the IT portal.'] } });
    const r = await run({ type: 'MemoryChat', messages: [{ role: 'USER', content: 'How do I set up the VPN?' }], model: 'google/gemini-2.5-flash' });
    assert.equal(checkCumulative(r, 'MemoryChat'), 'Install WireGuard and import the profile from the IT portal.');
    assert.equal(r.terminal.type, 'success');
    const res = r.terminal.response.response;
    assert.equal(res.textResponse, 'Install WireGuard and import the profile from the IT portal.');
    const src = res.sources.find((s) => s.memoryId === memVpn.id);
    assert.ok(src, JSON.stringify(res.sources));
    assert.deepEqual([src.memoryTitle, src.memoryTypeId, src.memoryTypeName], ['VPN setup', itType.id, 'IT guides']);
    const t = await stored(r.agentTask.id);
    assert.equal(t.status, 'SUCCEEDED');
    assert.equal(t.successResponse.text, res.textResponse);
});

test('explore memories: an answer over the allowed memories', async () => {
    await llm.addRules({ match: { last_user: 'what documents', system: 'Memories you may use' }, reply: { content: 'There is a holiday policy and a VPN guide.' } });
    const r = await run({ type: 'ExploreMemories', query: 'what documents do we have?', model: 'openai/gpt-5-mini' }, {
        guardRails: { memoryTypes: [{ memoryTypeId: hrType.id }, { memoryTypeId: itType.id }] },
    });
    assert.equal(r.terminal.type, 'success');
    const res = r.terminal.response.response;
    assert.equal(res.textResponse, 'There is a holiday policy and a VPN guide.');
    const found = r.inner.find((d) => d.eventType === 'FindMemoriesResult');
    assert.ok(found, r.inner.map((d) => d.eventType).join());
    const t = await stored(r.agentTask.id);
    assert.equal(t.status, 'SUCCEEDED');
    assert.equal(t.taskType, 'EXPLORE_MEMORIES');
});

test('a model error reaches the SDK as its AgentTaskError', async () => {
    await llm.addRules({ match: { last_user: 'please fail' }, reply: { status: 400, body: { error: { message: 'context length exceeded', type: 'invalid_request_error' } } } });
    const r = await run({ type: 'StreamingChatCompletion', ...chat('please fail') });
    assert.equal(r.terminal.type, 'error');
    assert.equal(r.terminal.error.code, 'AgentTaskError');
    assert.match(r.terminal.error.message, /context length exceeded/);
    assert.equal(r.taskError?.code, 'AgentTaskError');
    assert.equal((await stored(r.agentTask.id)).status, 'FAILED');
});

test('a request the server refuses comes back as the SDK\'s error with the server\'s message', async () => {
    const r = await page.evaluate(() => window.fencyRun({ type: 'MemorySearch', query: 'x', model: 'openai/gpt-4.1', chunkLimit: 1000 }));
    assert.equal(r.apiError?.code, 'UnknownError', JSON.stringify(r));
    assert.match(r.apiError.message, /chunkLimit/);
});

test('one stream served every task; one client token per action', async () => {
    assert.deepEqual(await page.evaluate(() => window.fencyActiveStreams()), [firstStream]);
    assert.equal(sessions.filter((s) => s === 'CREATE_STREAM').length, 1);
    assert.equal(sessions.filter((s) => s === 'CREATE_AGENT_TASK').length, 7);
    const pageErrors = browserLog.filter((l) => l.startsWith('pageerror'));
    assert.deepEqual(pageErrors, []);
});
