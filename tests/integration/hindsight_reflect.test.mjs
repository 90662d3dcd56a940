// Hindsight face: reflect (POST B/reflect) under the builtin provider (no language model) over a
// real engramd and Redis: the extractive answer and what it is based on, budgets, fact types,
// tags, bad input, unknown banks and workspace isolation.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, supervisedEngram, waitFor } from './harness.mjs';
import { bank, caller } from './hindsight_http.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;


const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);
const b = (method, path, body) => call(B.key, method, path, body);

const facts = [
    { content: 'Alice works at Google in Zurich as a site reliability engineer.', timestamp: '2024-03-01T09:00:00Z', tags: ['user:alice'] },
    { content: 'Bob adopted a beagle named Pixel last spring.', timestamp: '2024-03-02T09:00:00Z', tags: ['user:bob'] },
    { content: 'Carol is allergic to peanuts and shellfish.', timestamp: '2024-03-03T09:00:00Z', tags: ['user:carol'] },
    { content: 'The quarterly planning meeting moved to Thursday.', timestamp: '2024-03-04T09:00:00Z' },
];

let ID; // a bank of A holding the facts
before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('rfA'), workspaceWithKey('rfB')]);
    ID = uniqueName('rf');
    const r = await a('POST', `${bank(ID)}/memories`, { items: facts });
    assert.equal(r.status, 200, r.body);
});

async function reflect(id, body, who = a) {
    const r = await who('POST', `${bank(id)}/reflect`, body);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

function validation(res) {
    assert.equal(res.status, 422, res.body);
    assert.ok(Array.isArray(res.json.detail), res.body);
    return res.json.detail;
}

const ZERO = { input_tokens: 0, output_tokens: 0, total_tokens: 0, cached_tokens: 0, thoughts_tokens: 0 };

test('builtin reflect answers extractively, says it had no model, zero usage, no optional keys', async () => {
    const res = await reflect(ID, { query: 'Where does Alice work?' });
    assert.match(res.text, /without a language model/);
    assert.match(res.text, /1\. Alice works at Google in Zurich as a site reliability engineer\. \(2024-03-01\)/);
    assert.deepEqual(res.usage, ZERO);
    assert.deepEqual(Object.keys(res).sort(), ['text', 'usage']);
    // Deterministic: the same question gives the same text.
    const again = await reflect(ID, { query: 'Where does Alice work?' });
    assert.equal(again.text, res.text);
});

test('include.facts: based_on lists the facts the answer shows, in its order', async () => {
    const res = await reflect(ID, { query: 'Where does Alice work?', include: { facts: {} } });
    const bo = res.based_on;
    assert.deepEqual(Object.keys(bo).sort(), ['directives', 'memories', 'mental_models']);
    assert.ok(bo.memories.length >= 1, JSON.stringify(bo));
    const alice = bo.memories[0];
    assert.match(alice.text, /Alice works at Google/);
    assert.equal(alice.type, 'world');
    assert.match(alice.id, /^[0-9a-f-]{36}$/);
    // Every listed fact appears in the text, numbered in based_on's order.
    bo.memories.forEach((m, i) => assert.ok(res.text.includes(`${i + 1}. ${m.text}`), `${m.text} in ${res.text}`));
    assert.deepEqual(bo.mental_models, []);
    assert.deepEqual(bo.directives, []);
    // include.facts null is off.
    const off = await reflect(ID, { query: 'Alice', include: { facts: null } });
    assert.equal('based_on' in off, false);
});

test('budgets low, mid and high all answer; include.tool_calls gives an empty trace without a model', async () => {
    for (const budget of ['low', 'mid', 'high']) {
        const res = await reflect(ID, { query: 'Who adopted a dog?', budget, include: { facts: {}, tool_calls: {} } });
        assert.match(res.based_on.memories[0].text, /Bob adopted a beagle/, budget);
        assert.deepEqual(res.trace, { tool_calls: [], llm_calls: [] });
    }
});

test('fact_types and tags scope what reflect sees', async () => {
    const exp = await reflect(ID, { query: 'Alice Google Zurich', fact_types: ['experience'], include: { facts: {} } });
    assert.ok(exp.based_on.memories.every((m) => m.type === 'experience'), JSON.stringify(exp.based_on));
    const bob = await reflect(ID, { query: 'Alice Bob Carol', tags: ['user:bob'], tags_match: 'any_strict', include: { facts: {} } });
    assert.ok(bob.based_on.memories.length >= 1);
    assert.ok(bob.based_on.memories.every((m) => /Bob/.test(m.text)), JSON.stringify(bob.based_on));
    const groups = await reflect(ID, { query: 'Alice Bob Carol', tag_groups: [{ tags: ['user:carol'], match: 'any_strict' }], include: { facts: {} } });
    assert.ok(groups.based_on.memories.every((m) => /Carol/.test(m.text)), JSON.stringify(groups.based_on));
});

test('max_tokens bounds the answer: a small one lists fewer facts', async () => {
    const big = await reflect(ID, { query: 'Alice Bob Carol meeting', include: { facts: {} } });
    const small = await reflect(ID, { query: 'Alice Bob Carol meeting', max_tokens: 60, include: { facts: {} } });
    assert.ok(big.based_on.memories.length >= 2, JSON.stringify(big.based_on));
    assert.ok(small.based_on.memories.length < big.based_on.memories.length, `${small.text}`);
});

test('a response_schema without a model: no structured_output, and the text says why', async () => {
    const res = await reflect(ID, { query: 'Where does Alice work?', response_schema: { type: 'object', properties: { employer: { type: 'string' } } } });
    assert.equal('structured_output' in res, false);
    assert.match(res.text, /response_schema needs a language model/);
});

test('the deprecated context is appended to the query', async () => {
    const res = await reflect(ID, { query: 'Who', context: 'adopted a beagle named Pixel', include: { facts: {} } });
    assert.match(res.based_on.memories[0].text, /Bob adopted a beagle/);
    assert.match(res.text, /adopted a beagle named Pixel/);
});

test('bad input is 422 in pydantic shape', async () => {
    let d = validation(await a('POST', `${bank(ID)}/reflect`, {}));
    assert.deepEqual(d[0].loc, ['body', 'query']);
    assert.equal(d[0].type, 'missing');
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 5 }));
    assert.equal(d[0].type, 'string_type');
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', budget: 'huge' }));
    assert.deepEqual(d[0].loc, ['body', 'budget']);
    assert.equal(d[0].type, 'literal_error');
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', include: { facts: 'yes' } }));
    assert.deepEqual(d[0].loc, ['body', 'include', 'facts']);
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', fact_types: ['opinion'] }));
    assert.deepEqual(d[0].loc, ['body', 'fact_types', 0]);
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', response_schema: 'text' }));
    assert.deepEqual(d[0].loc, ['body', 'response_schema']);
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', tags: ['a'], tag_groups: [{ tags: ['b'] }] }));
    assert.match(d[0].msg, /mutually exclusive/);
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', max_tokens: 'many' }));
    assert.deepEqual(d[0].loc, ['body', 'max_tokens']);
    d = validation(await a('POST', `${bank(ID)}/reflect`, { query: 'q', tags_match: 'some' }));
    assert.deepEqual(d[0].loc, ['body', 'tags_match']);
    validation(await a('POST', `${bank(ID)}/reflect`, '{"query": '));
    validation(await a('POST', `${bank(ID)}/reflect`));
    const noauth = await call(null, 'POST', `${bank(ID)}/reflect`, { query: 'q' });
    assert.equal(noauth.status, 401, noauth.body);
});

test('an unknown bank answers that it found nothing, and is not created', async () => {
    const id = uniqueName('rf-none');
    const res = await reflect(id, { query: 'Where does Alice work?', include: { facts: {} } });
    assert.match(res.text, /I found no memories about "Where does Alice work\?"/);
    assert.deepEqual(res.based_on.memories, []);
    const p = await a('GET', `${bank(id)}/profile`);
    assert.equal(p.status, 404, p.body);
});

test("another workspace's bank of the same id is a different, empty bank", async () => {
    const res = await reflect(ID, { query: 'Where does Alice work?', include: { facts: {} } }, b);
    assert.deepEqual(res.based_on.memories, []);
    assert.match(res.text, /I found no memories/);
});

test('a mental model refreshes without a model (worker), then informs reflect; a dry run of it is unchanged', async () => {
    let r = await a('POST', `${bank(ID)}/mental-models`, { name: 'Where Alice works', source_query: 'Where does Alice work?', max_tokens: 512 });
    assert.equal(r.status, 200, r.body);
    const { mental_model_id: mm, operation_id: op } = r.json;
    await waitFor(async () => (await a('GET', `${bank(ID)}/operations/${op}`)).json.status === 'completed', { timeoutMs: 20000, what: 'refresh completed' });
    r = await a('GET', `${bank(ID)}/mental-models/${mm}`);
    assert.match(r.json.content, /without a language model/);
    assert.match(r.json.content, /1\. Alice works at Google in Zurich/);

    // Reflect shows the model's content first and lists it in based_on; excluded, it is gone.
    const res = await reflect(ID, { query: 'Where does Alice work?', include: { facts: {} } });
    assert.deepEqual(res.based_on.mental_models.map((m) => m.id), [mm]);
    assert.equal(res.based_on.mental_models[0].context, 'Where Alice works');
    assert.ok(res.text.indexOf('**Where Alice works** (mental model)') < res.text.indexOf('Memories:'), res.text);
    for (const body of [{ exclude_mental_models: true }, { exclude_mental_model_ids: [mm] }]) {
        const ex = await reflect(ID, { query: 'Where does Alice work?', include: { facts: {} }, ...body });
        assert.deepEqual(ex.based_on.mental_models, [], JSON.stringify(body));
    }

    // The same memories give the same content: a dry run would change nothing.
    r = await a('POST', `${bank(ID)}/mental-models/${mm}/dry-run-refresh`);
    assert.equal(r.status, 200, r.body);
    const d = r.json;
    assert.equal(d.mental_model_id, mm);
    assert.equal(d.name, 'Where Alice works');
    assert.equal(d.requested_mode, 'full');
    assert.equal(d.effective_mode, 'full');
    assert.equal(d.outcome, 'content_unchanged');
    assert.equal(d.would_persist, false);
    assert.equal(d.diff, '');
    assert.equal(d.candidate_content, d.current_content);
    assert.deepEqual(d.scope.exclude_mental_model_ids, [mm]);
    assert.equal(d.scope.tags_match, 'any');
    assert.equal(d.scope.exclude_mental_models, false);
    assert.ok(d.facts.retrieved.world >= 1 && d.facts.used.world >= 1, JSON.stringify(d.facts));
    assert.match(d.based_on.world[0].text, /Alice works at Google/);
    assert.deepEqual(d.usage, ZERO);
    assert.match(d.window.created_before, /^\d{4}-/);
    assert.deepEqual(d.trace.tool_calls, []);
    assert.equal(d.trace.outcome, 'content_unchanged');
    assert.ok(d.warnings.some((w) => /no language model/.test(w)), JSON.stringify(d.warnings));

    // New memories change the candidate: the diff shows the added line; nothing is stored.
    r = await a('POST', `${bank(ID)}/memories`, { items: [{ content: 'Alice works from the Google office on Brandschenkestrasse.' }] });
    assert.equal(r.status, 200, r.body);
    r = await a('POST', `${bank(ID)}/mental-models/${mm}/dry-run-refresh`);
    assert.equal(r.json.outcome, 'content_written');
    assert.equal(r.json.would_persist, true);
    assert.match(r.json.diff, /\n\+\d\. Alice works from the Google office on Brandschenkestrasse\. \(\d{4}-\d\d-\d\d\)\n/);
    const stored = await a('GET', `${bank(ID)}/mental-models/${mm}`);
    assert.equal(stored.json.content, d.current_content);
    r = await a('POST', `${bank(ID)}/mental-models/no-such-model/dry-run-refresh`);
    assert.equal(r.status, 404, r.body);
    assert.equal(r.json.detail, "Mental model 'no-such-model' not found");
    r = await b('POST', `${bank(ID)}/mental-models/${mm}/dry-run-refresh`);
    assert.equal(r.status, 404, r.body);
});
