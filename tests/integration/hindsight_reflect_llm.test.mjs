// Hindsight face: reflect's agent loop against a scripted model (tools/mock-llm): the forced tool
// order, a malformed tool call recovered, done's citations as based_on, directives first and last
// in the system prompt, response_schema as structured_output, the per-budget turn cap, the 504
// timeout, and a mental-model refresh (worker and dry run) run by the loop.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, supervisedEngram, waitFor, startEngram } from './harness.mjs';
import { bank, caller } from './hindsight_http.mjs';
import { startMockLlm } from './mock_llm.mjs';

let llm;
const env = {};
const srv = supervisedEngram({
    before: (fn) => before(async () => {
        llm = await startMockLlm();
        Object.assign(env, {
            ENGRAM_LLM_PROVIDER: 'openai',
            ENGRAM_LLM_BASE_URL: llm.url,
            ENGRAM_LLM_MODEL: 'mock-model',
            // Retain keeps its builtin extractor: only reflect talks to the mock.
            ENGRAM_RETAIN_LLM_PROVIDER: 'builtin',
            ENGRAM_CONSOLIDATION_LLM_PROVIDER: 'builtin',
            ENGRAM_REFLECT_TIMEOUT: '4s',
        });
        await fn();
    }),
    after: (fn) => after(async () => {
        await fn();
        if (llm) await llm.stop();
    }),
    beforeEach,
    afterEach,
}, { env });

let A;
let ID; // a bank of A with facts
let ALICE; // the id of Alice's fact
const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);

before(async () => {
    A = await workspaceWithKey('rflA');
    ID = uniqueName('rfl');
    const r = await a('POST', `${bank(ID)}/memories`, {
        items: [
            { content: 'Alice works at Google in Zurich as a site reliability engineer.', timestamp: '2024-03-01T09:00:00Z' },
            { content: 'Bob adopted a beagle named Pixel last spring.', timestamp: '2024-03-02T09:00:00Z' },
        ],
    });
    assert.equal(r.status, 200, r.body);
    const rc = await a('POST', `${bank(ID)}/memories/recall`, { query: 'Alice Google' });
    ALICE = rc.json.results.find((x) => /Alice/.test(x.text)).id;
});

beforeEach(async () => {
    await llm.clearRules();
    await llm.clearRequests();
});

const chats = async () => (await llm.requests('/v1/chat/completions')).map((r) => r.body);
// The forced function, or the tool_choice word (auto when the body leaves it out, as OpenAI defaults).
const forced = (body) => (typeof body.tool_choice === 'object' ? body.tool_choice.function.name : body.tool_choice ?? 'auto');

test('the agent loop: forced order, a bad call recovered, done cited, directives first and last, structured output', async () => {
    const id = uniqueName('rfl-dir');
    let r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Alice works at Google in Zurich as a site reliability engineer.' }] });
    assert.equal(r.status, 200, r.body);
    const alice = (await a('POST', `${bank(id)}/memories/recall`, { query: 'Alice' })).json.results[0].id;
    r = await a('POST', `${bank(id)}/directives`, { name: 'Plain words', content: 'Never use jargon such as SRE.' });
    assert.equal(r.status, 200, r.body);
    const dir = r.json;

    await llm.setRules([
        { match: { tool_choice: 'search_mental_models' }, times: 1, reply: { tool_calls: [{ name: 'search_mental_models', arguments: { query: 'Alice', reason: 'curated summaries first' } }] } },
        { match: { tool_choice: 'search_observations' }, times: 1, reply: { tool_calls: [{ name: 'search_observations', arguments: { query: 'Alice', reason: 'consolidated knowledge' } }] } },
        { match: { tool_choice: 'recall' }, times: 1, reply: { tool_calls: [{ name: 'recall', arguments: { query: 'Alice employer', reason: 'the raw facts' } }] } },
        { match: { any_message: 'Invalid arguments for recall' }, times: 1, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Alice keeps Google\'s systems running in Zurich.', memory_ids: [alice, 'made-up-id'], directive_compliance: 'No jargon used.' } }] } },
        { match: { last_role: 'tool' }, times: 1, reply: { tool_calls: [{ name: 'recall', arguments: '{"query": "Alice' }] } },
        { match: { schema_name: 'reflect_response' }, times: 1, reply: { json: { employer: 'Google', city: 'Zurich' } } },
    ]);
    r = await a('POST', `${bank(id)}/reflect`, {
        query: 'What does Alice do?',
        budget: 'mid',
        include: { facts: {}, tool_calls: {} },
        response_schema: { type: 'object', properties: { employer: { type: 'string' }, city: { type: 'string' } }, required: ['employer', 'city'] },
    });
    assert.equal(r.status, 200, r.body);
    const res = r.json;
    assert.equal(res.text, 'Alice keeps Google\'s systems running in Zurich.');
    assert.deepEqual(res.structured_output, { employer: 'Google', city: 'Zurich' });
    // done's ids become based_on; an id no tool returned is dropped.
    assert.deepEqual(res.based_on.memories.map((m) => m.id), [alice]);
    assert.deepEqual(res.based_on.directives, [{ id: dir.id, name: 'Plain words', content: 'Never use jargon such as SRE.' }]);
    assert.deepEqual(res.trace.tool_calls.map((t) => t.tool), ['search_mental_models', 'search_observations', 'recall', 'recall']);
    assert.deepEqual(res.trace.tool_calls.map((t) => t.iteration), [1, 2, 3, 4]);
    assert.match(res.trace.tool_calls[3].output.error, /Invalid arguments for recall/);
    assert.deepEqual(res.trace.tool_calls[3].input, { raw: '{"query": "Alice' });
    assert.deepEqual(res.trace.llm_calls.map((c) => c.scope), ['agent_1', 'agent_2', 'agent_3', 'agent_4', 'agent_5', 'structured']);
    assert.ok(res.usage.input_tokens > 0 && res.usage.output_tokens > 0, JSON.stringify(res.usage));
    assert.equal(res.usage.total_tokens, res.usage.input_tokens + res.usage.output_tokens);

    const log = await chats();
    assert.equal(log.length, 6);
    // The first turns force the tools in order, then the model chooses.
    assert.deepEqual(log.slice(0, 4).map(forced), ['search_mental_models', 'search_observations', 'recall', 'auto']);
    for (const body of log.slice(0, 5)) assert.equal(body.temperature, 0.9);
    // Directives open and close the system prompt; done must carry directive_compliance.
    const sys = log[0].messages[0];
    assert.equal(sys.role, 'system');
    assert.ok(sys.content.startsWith('## DIRECTIVES (MANDATORY)'), sys.content);
    const first = sys.content.indexOf('Never use jargon such as SRE.');
    const last = sys.content.lastIndexOf('Never use jargon such as SRE.');
    assert.ok(first >= 0 && last > first, sys.content);
    assert.ok(sys.content.indexOf('## DIRECTIVES (REMINDER)') > sys.content.indexOf('## Answering'));
    assert.match(sys.content, /Disposition: skepticism=3, literalism=3, empathy=3/);
    const done = log[0].tools.find((t) => t.function.name === 'done');
    assert.ok(done.function.parameters.required.includes('directive_compliance'));
    assert.ok(log[0].tools.filter((t) => t.function.name !== 'done').every((t) => t.function.parameters.required.includes('reason')));
    assert.equal(log[0].messages[1].content, 'What does Alice do?');
    // The recall tool's facts reached the model; the malformed call came back as a tool error.
    assert.ok(log[3].messages.some((m) => m.role === 'tool' && m.content.includes('Alice works at Google')));
    assert.ok(log[4].messages.some((m) => m.role === 'tool' && m.content.includes('Invalid arguments for recall')));
    // The structured call sees the answer and the schema.
    assert.equal(log[5].response_format.json_schema.name, 'reflect_response');
    assert.ok(log[5].messages[1].content.includes('Alice keeps Google'));
});

test('turns are capped per budget (5 low, 10 mid), the last one forced to done', async () => {
    await llm.setRules([
        { match: { tool_choice: 'done' }, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Forced answer.', memory_ids: [ALICE] } }] } },
        { match: {}, reply: { tool_calls: [{ name: 'recall', arguments: { query: 'Alice', reason: 'keep looking' } }] } },
    ]);
    for (const [budget, turns] of [['low', 5], ['mid', 10]]) {
        await llm.clearRequests();
        const r = await a('POST', `${bank(ID)}/reflect`, { query: 'Tell me about Alice', budget, include: { facts: {} } });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.text, 'Forced answer.');
        assert.deepEqual(r.json.based_on.memories.map((m) => m.id), [ALICE]);
        const log = await chats();
        assert.equal(log.length, turns, budget);
        assert.equal(forced(log[turns - 1]), 'done');
        assert.ok(log.slice(3, turns - 1).every((b) => forced(b) === 'auto'), budget);
    }
});

test('done before any evidence is refused, unknown tools are errors for the model, plain text answers', async () => {
    await llm.setRules([
        { match: { tool_choice: 'search_mental_models' }, times: 1, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Too early.' } }] } },
        { match: { tool_choice: 'search_observations' }, times: 1, reply: { tool_calls: [{ name: 'learn', arguments: { what: 'x' } }] } },
        { match: { tool_choice: 'recall' }, times: 1, reply: { tool_calls: [{ name: 'expand', arguments: { memory_ids: ['00000000-0000-4000-8000-000000000000'], reason: 'context' } }] } },
        { match: { last_role: 'tool' }, times: 1, reply: { content: 'Nothing is known about that.' } },
    ]);
    const r = await a('POST', `${bank(ID)}/reflect`, { query: 'Who is Zed?', include: { tool_calls: { output: false }, facts: {} } });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.text, 'Nothing is known about that.');
    assert.deepEqual(r.json.based_on.memories, []);
    assert.deepEqual(r.json.trace.tool_calls.map((t) => t.tool), ['done', 'learn', 'expand']);
    assert.ok(r.json.trace.tool_calls.every((t) => !('output' in t)));
    const log = await chats();
    const toolMsgs = log[3].messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(m.content).error);
    assert.match(toolMsgs[0], /must search for information first/);
    assert.match(toolMsgs[1], /Unknown tool: learn/);
    assert.match(toolMsgs[2], /Unknown memory ids/);
});

test('expand shows the source chunk of a memory', async () => {
    await llm.setRules([
        { match: { tool_choice: 'search_mental_models' }, times: 1, reply: { tool_calls: [{ name: 'expand', arguments: { memory_ids: [ALICE], depth: 'chunk', reason: 'context' } }] } },
        { match: { last_role: 'tool' }, times: 1, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Alice is an engineer.', memory_ids: [ALICE] } }] } },
    ]);
    const r = await a('POST', `${bank(ID)}/reflect`, { query: 'Alice?', include: { tool_calls: {}, facts: {} } });
    assert.equal(r.status, 200, r.body);
    const out = r.json.trace.tool_calls[0].output;
    assert.equal(out.memories[0].memory_id, ALICE);
    assert.match(out.memories[0].chunk.text, /Alice works at Google/);
    assert.deepEqual(r.json.based_on.memories.map((m) => m.id), [ALICE]);
});

test('a reflect that outlives its timeout answers 504', async () => {
    await llm.setRules([{ match: {}, reply: { delay_ms: 8000, content: 'late' } }]);
    const r = await a('POST', `${bank(ID)}/reflect`, { query: 'Alice?' });
    assert.equal(r.status, 504, r.body);
    assert.match(r.json.detail, /^Request timed out while searching memories/);
});

test('a model error is 502 with a detail', async () => {
    await llm.setRules([{ match: {}, reply: { status: 400 } }]);
    const r = await a('POST', `${bank(ID)}/reflect`, { query: 'Alice?' });
    assert.equal(r.status, 502, r.body);
    assert.match(r.json.detail, /language model/);
});

test('a mental model is refreshed by the loop (worker), excluding itself; a dry run stores nothing', async () => {
    await llm.setRules([
        { match: { tool_choice: 'search_mental_models' }, reply: { tool_calls: [{ name: 'recall', arguments: { query: 'Alice work', reason: 'facts' } }] } },
        { match: { last_role: 'tool' }, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Alice is a site reliability engineer at Google.', memory_ids: [ALICE] } }] } },
    ]);
    let r = await a('POST', `${bank(ID)}/mental-models`, { id: uniqueName('mm'), name: 'Alice at work', source_query: 'What does Alice do for work?' });
    assert.equal(r.status, 200, r.body);
    const { mental_model_id: mm, operation_id: op } = r.json;
    await waitFor(async () => (await a('GET', `${bank(ID)}/operations/${op}`)).json.status === 'completed', { timeoutMs: 20000, what: 'refresh completed' });
    r = await a('GET', `${bank(ID)}/mental-models/${mm}`);
    assert.equal(r.json.content, 'Alice is a site reliability engineer at Google.');
    const log = await chats();
    assert.equal(log[0].messages[1].content, 'What does Alice do for work?');
    assert.equal(log[0].max_tokens, 2048);

    // The dry run: a new candidate, the diff, nothing stored.
    await llm.setRules([
        { match: { tool_choice: 'search_mental_models' }, reply: { tool_calls: [{ name: 'search_mental_models', arguments: { query: 'Alice', reason: 'other models' } }] } },
        { match: { tool_choice: 'search_observations' }, reply: { tool_calls: [{ name: 'recall', arguments: { query: 'Alice', reason: 'facts' } }] } },
        { match: { last_role: 'tool' }, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Alice runs Google systems in Zurich.', memory_ids: [ALICE] } }] } },
    ]);
    await llm.clearRequests();
    r = await a('POST', `${bank(ID)}/mental-models/${mm}/dry-run-refresh`);
    assert.equal(r.status, 200, r.body);
    const d = r.json;
    assert.equal(d.mental_model_id, mm);
    assert.equal(d.outcome, 'content_written');
    assert.equal(d.would_persist, true);
    assert.equal(d.current_content, 'Alice is a site reliability engineer at Google.');
    assert.equal(d.candidate_content, 'Alice runs Google systems in Zurich.');
    assert.equal(d.preview_content, d.candidate_content);
    assert.match(d.diff, /^--- current\n\+\+\+ preview\n/);
    assert.match(d.diff, /\n-Alice is a site reliability engineer at Google\.\n\+Alice runs Google systems in Zurich\.\n$/);
    assert.ok(d.scope.exclude_mental_model_ids.includes(mm));
    assert.deepEqual(d.facts.used, { world: 1 });
    assert.equal(d.based_on.world[0].id, ALICE);
    // The model itself is never a source of its own refresh.
    const mmOut = d.trace.tool_calls[0].output;
    assert.ok(mmOut.mental_models.every((m) => m.id !== mm), JSON.stringify(mmOut));
    r = await a('GET', `${bank(ID)}/mental-models/${mm}`);
    assert.equal(r.json.content, 'Alice is a site reliability engineer at Google.');
    r = await a('POST', `${bank(ID)}/mental-models/nope/dry-run-refresh`);
    assert.equal(r.status, 404, r.body);
});

test('a refresh job whose engramd is killed mid-run is taken over and completes', async () => {
    // Only the processes of this test consume the queue: the file's engramd steps aside.
    srv.current.reported = true;
    await srv.current.stop();
    const crashEnv = { ...env, ENGRAM_MM_REFRESH_VISIBILITY: '2s' };
    await llm.setRules([
        { match: {}, times: 1, reply: { delay_ms: 3000, content: 'never read' } },
        { match: { tool_choice: 'search_mental_models' }, reply: { tool_calls: [{ name: 'recall', arguments: { query: 'Alice', reason: 'facts' } }] } },
        { match: { last_role: 'tool' }, reply: { tool_calls: [{ name: 'done', arguments: { answer: 'Written after the crash.', memory_ids: [ALICE] } }] } },
    ]);
    const e1 = await startEngram({ env: crashEnv });
    let e2 = null;
    try {
        const r = await caller(e1)(A.key, 'POST', `${bank(ID)}/mental-models`, { name: 'Crash', source_query: 'Where does Alice work?' });
        assert.equal(r.status, 200, r.body);
        const { mental_model_id: mm, operation_id: op } = r.json;
        await waitFor(async () => (await chats()).length >= 1, { timeoutMs: 10000, what: 'the first model call' });
        await e1.stop('SIGKILL');
        e2 = await startEngram({ env: crashEnv });
        const c2 = caller(e2);
        await waitFor(async () => (await c2(A.key, 'GET', `${bank(ID)}/operations/${op}`)).json.status === 'completed', { timeoutMs: 30000, what: 'refresh completed after takeover' });
        const m = await c2(A.key, 'GET', `${bank(ID)}/mental-models/${mm}`);
        assert.equal(m.json.content, 'Written after the crash.');
    } finally {
        await e1.stop('SIGKILL');
        if (e2) await e2.stop();
    }
});
