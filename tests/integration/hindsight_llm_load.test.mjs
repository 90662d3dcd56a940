// Model calls never block the loop, and a failing provider is survivable: 200 reflects in flight
// on one engramd while the model (tools/mock-llm) takes 1 s per answer; a 500 retried into a
// success; a provider that stays down fails an async retain with a clear error, and the
// operation succeeds when retried after the provider is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, startEngram, waitFor } from './harness.mjs';
import { startMockLlm } from './mock_llm.mjs';
import { bank, caller } from './hindsight_http.mjs';

const N = 200;
let llm, srv, A, a;

before(async () => {
    llm = await startMockLlm();
    srv = await startEngram({
        env: {
            ENGRAM_LLM_PROVIDER: 'openai',
            ENGRAM_LLM_BASE_URL: llm.url,
            ENGRAM_LLM_MODEL: 'mock-model',
            ENGRAM_CONSOLIDATION_LLM_PROVIDER: 'builtin',
            ENGRAM_LLM_MAX_CONCURRENCY: '256',
            ENGRAM_MAX_CONNECTIONS: '1000',
        },
    });
    A = await workspaceWithKey('llmload');
    const call = caller(srv);
    a = (method, path, body) => call(A.key, method, path, body);
});

after(async () => {
    if (srv) await srv.stop();
    if (llm) await llm.stop();
});

const fact = (what) => ({
    what, when: 'N/A', where: 'N/A', who: 'Dana', why: 'N/A', fact_kind: 'conversation',
    occurred_start: null, occurred_end: null, fact_type: 'world', entities: ['Dana'],
});

// The agent's three forced turns, then done; every answer takes delayMs.
function agentRules(delayMs) {
    const forced = ['search_mental_models', 'search_observations', 'recall'].map((name) => ({
        match: { tool_choice: name },
        reply: { delay_ms: delayMs, tool_calls: [{ name, arguments: { query: 'Dana', reason: 'look' } }] },
    }));
    return [
        ...forced,
        { match: { tool: 'done' }, reply: { delay_ms: delayMs, tool_calls: [{ name: 'done', arguments: { answer: 'Dana plays the cello.', memory_ids: [] } }] } },
    ];
}

test(`${N} reflects in flight while the model takes 1 s per answer all complete together`, async () => {
    const id = uniqueName('load');
    await llm.setRules([{ match: { schema_name: 'facts' }, reply: { json: { facts: [fact('Dana plays the cello')] } } }]);
    let r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Dana plays the cello.' }] });
    assert.equal(r.status, 200, r.body);
    await llm.setRules(agentRules(1000));
    await llm.clearRequests();

    const t0 = Date.now();
    const res = await Promise.all(Array.from({ length: N }, () =>
        a('POST', `${bank(id)}/reflect`, { query: 'What does Dana play?', budget: 'low' })));
    const elapsed = Date.now() - t0;
    for (const x of res) {
        assert.equal(x.status, 200, x.body);
        assert.equal(x.json.text, 'Dana plays the cello.');
    }
    // Every reflect's first model call arrived before any answer came back (1 s): all N were in
    // flight at once, so nothing queued behind the loop or a connection cap.
    const log = await llm.requests('/v1/chat/completions');
    assert.equal(log.length, 4 * N, 'three forced turns and done per reflect');
    const first = log.filter((q) => q.body.tool_choice?.function?.name === 'search_mental_models');
    const second = log.filter((q) => q.body.tool_choice?.function?.name === 'search_observations');
    assert.equal(first.length, N);
    const firstOfSecond = Math.min(...second.map((q) => Date.parse(q.time)));
    assert.equal(first.filter((q) => Date.parse(q.time) < firstOfSecond).length, N,
        'all first turns were sent before any second turn');
    // Four sequential 1 s answers per reflect: done together in seconds, not N x 4 s / cap.
    assert.ok(elapsed < 60000, `took ${elapsed} ms`);
});

test('a provider 500 is retried into a success', async () => {
    const id = uniqueName('retry');
    await llm.setRules([
        { match: { schema_name: 'facts' }, times: 1, reply: { status: 500, body: { error: { message: 'overloaded', type: 'server_error' } } } },
        { match: { schema_name: 'facts' }, reply: { json: { facts: [fact('Dana teaches music on Fridays')] } } },
    ]);
    await llm.clearRequests();
    const r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Dana teaches music on Fridays.' }] });
    assert.equal(r.status, 200, r.body);
    const calls = (await llm.requests('/v1/chat/completions')).filter((q) => q.body.response_format?.json_schema?.name === 'facts');
    assert.deepEqual(calls.map((q) => q.status), [500, 200]);
    const list = await a('GET', `${bank(id)}/memories/list`);
    assert.deepEqual(list.json.items.map((m) => m.text), ['Dana teaches music on Fridays | Involving: Dana']);
});

test('a provider that stays down fails the operation clearly; a retry after it is back succeeds', async () => {
    const id = uniqueName('down');
    await llm.setRules([{ match: { schema_name: 'facts' }, reply: { status: 503, body: { error: { message: 'model is down', type: 'server_error' } } } }]);
    let r = await a('POST', `${bank(id)}/memories`, { async: true, items: [{ content: 'Dana tours Japan in May.' }] });
    assert.equal(r.status, 200, r.body);
    const opId = r.json.operation_id;
    const finished = () => waitFor(async () => {
        const o = await a('GET', `${bank(id)}/operations/${opId}`);
        return o.status === 200 && ['failed', 'completed'].includes(o.json.status) ? o.json : null;
    }, { timeoutMs: 60000, what: 'the retain operation to finish' });
    let op = await finished();
    assert.equal(op.status, 'failed', JSON.stringify(op));
    assert.match(op.error_message, /^fact extraction failed: .*model is down/);
    assert.equal((await a('GET', `${bank(id)}/memories/list`)).json.total, 0, 'nothing written');

    await llm.setRules([{ match: { schema_name: 'facts' }, reply: { json: { facts: [fact('Dana tours Japan in May')] } } }]);
    r = await a('POST', `${bank(id)}/operations/${opId}/retry`);
    assert.equal(r.status, 200, r.body);
    op = await finished();
    assert.equal(op.status, 'completed', JSON.stringify(op));
    assert.equal(op.retry_count, 1);
    const list = await a('GET', `${bank(id)}/memories/list`);
    assert.deepEqual(list.json.items.map((m) => m.text), ['Dana tours Japan in May | Involving: Dana']);
});
