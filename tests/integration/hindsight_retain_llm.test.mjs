// Hindsight face: retain with LLM fact extraction, against a real engramd whose retain model is
// tools/mock-llm (ENGRAM_LLM_PROVIDER=openai). The scripted facts are stored with their text
// composition, dates, entities, fact types and caused_by links; the request to the model carries
// the fact schema, temperature 0.1 and the bank's retain mission; dry-run-extract previews facts
// and usage and stores nothing; a model failure fails sync and async retains with the reason and
// writes nothing; and without a model, dry-run-extract uses the builtin extractor.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, uniqueName, waitFor } from './harness.mjs';
import { startMockLlm } from './mock_llm.mjs';
import { bank, caller, ISO } from './hindsight_http.mjs';

let llm; // the mock model
let srv; // engramd with the model
let plain; // engramd without one (builtin extraction), only for the last test: processes sharing
// a Redis share the retain queue, and a builtin worker would take the model's async jobs
let A; // {ws, key}
let a; // call(method, path, body) as A on srv
let p; // the same on plain

const MISSION = 'Retain what happens to the family, jobs and money above all.';

const factsAnswer = {
    facts: [
        {
            what: 'Alice lost her job at Acme', when: 'Monday, June 3, 2024', where: 'Berlin',
            who: "Alice (user's sister)", why: 'N/A', fact_kind: 'event',
            occurred_start: '2024-06-03', occurred_end: null, fact_type: 'world',
            entities: ['Alice', 'Acme', 'alice'],
        },
        {
            what: 'Alice moved back in with her parents', when: 'N/A', where: 'N/A', who: 'Alice',
            why: 'she could not pay her rent', fact_kind: 'conversation', occurred_start: null,
            occurred_end: null, fact_type: 'world', entities: ['Alice'],
            causal_relations: [
                { target_index: 0, relation_type: 'caused_by' },
                { target_index: 1, relation_type: 'caused_by' }, // itself: dropped
                { target_index: 5, relation_type: 'caused_by' }, // ahead: dropped
            ],
        },
        {
            what: 'The assistant suggested a monthly budget plan', when: 'N/A', where: 'N/A',
            who: 'N/A', why: 'N/A', fact_kind: 'conversation', occurred_start: null,
            occurred_end: null, fact_type: 'assistant', entities: ['budget plan'],
        },
    ],
};

// A minimal valid fact for the schema.
function fact(what, extra = {}) {
    return {
        what, when: 'N/A', where: 'N/A', who: 'Erin', why: 'N/A', fact_kind: 'conversation',
        occurred_start: null, occurred_end: null, fact_type: 'world', entities: ['Erin'], ...extra,
    };
}

before(async () => {
    llm = await startMockLlm({
        rules: [
            { match: { schema_name: 'facts', last_user: 'LLMTEST-RETAIN' }, reply: { json: factsAnswer, usage: { prompt_tokens: 200, completion_tokens: 50 } } },
            {
                match: { schema_name: 'facts', last_user: 'LLMTEST-DRY' },
                reply: {
                    json: {
                        facts: [{
                            what: 'Bob adopted a beagle named Pixel', when: 'June 9, 2024', where: 'N/A',
                            who: 'Bob', why: 'N/A', fact_kind: 'event', occurred_start: '2024-06-09T10:00:00Z',
                            occurred_end: '2024-06-09T11:00:00Z', fact_type: 'world', entities: ['Bob', 'Pixel'],
                        }],
                    },
                    usage: { prompt_tokens: 120, completion_tokens: 30 },
                },
            },
            { match: { schema_name: 'facts', last_user: 'LLMTEST-FAIL' }, reply: { status: 500 } },
            // three chunks answered out of order: the first slowest
            { match: { schema_name: 'facts', last_user_regex: 'Chunk: 1/3[\\s\\S]*LLMTEST-PAR one' }, reply: { delay_ms: 700, json: { facts: [fact('Erin started a new job at Initech')] } } },
            {
                match: { schema_name: 'facts', last_user_regex: 'Chunk: 2/3[\\s\\S]*LLMTEST-PAR two' },
                reply: {
                    delay_ms: 50,
                    json: {
                        facts: [fact('Erin needed a way to commute'),
                            fact('Erin bought a red bicycle', { causal_relations: [{ target_index: 0, relation_type: 'caused_by' }] })],
                    },
                },
            },
            { match: { schema_name: 'facts', last_user_regex: 'Chunk: 3/3[\\s\\S]*LLMTEST-PAR three' }, reply: { delay_ms: 300, json: { facts: [fact('Erin rides the bicycle to work')] } } },
        ],
    });
    const env = {
        ENGRAM_LLM_PROVIDER: 'openai',
        ENGRAM_LLM_BASE_URL: llm.url,
        ENGRAM_LLM_MODEL: 'mock-model',
        ENGRAM_LLM_MAX_RETRIES: '1',
    };
    [srv, A] = await Promise.all([startEngram({ env }), workspaceWithKey('rllm')]);
    a = (method, path, body) => caller(srv)(A.key, method, path, body);
    p = (method, path, body) => caller(plain)(A.key, method, path, body);
});

after(async () => {
    const exits = await Promise.all([srv && srv.stop(), plain && plain.stop()]);
    if (llm) await llm.stop();
    // A sanitizer report (a leak of the extractor's calls, say) makes engramd exit non-zero.
    for (const [e, x] of [[srv, exits[0]], [plain, exits[1]]]) {
        if (!e) continue;
        assert.doesNotMatch(e.stderr, /Sanitizer/, e.stderrTail(40));
        assert.equal(x.code, 0, e.stderrTail(40));
    }
});

// The chat requests the mock received whose last user message contains marker.
async function modelRequests(marker) {
    const log = await llm.requests('/v1/chat/completions');
    return log.filter((e) => {
        const msgs = e.body && e.body.messages;
        return Array.isArray(msgs) && msgs.some((m) => m.role === 'user' && String(m.content).includes(marker));
    });
}

async function listAll(id) {
    const r = await a('GET', `${bank(id)}/memories/list`);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

test('retain stores the model\'s facts: text, dates, entities, types, caused_by; the request carries schema, temperature and mission', async () => {
    const id = uniqueName('rllm');
    let r = await a('PUT', bank(id), {});
    assert.equal(r.status, 200, r.body);
    // (no consolidation: its model calls and observations are not this test's subject)
    r = await a('PATCH', `${bank(id)}/config`, { updates: { retain_mission: MISSION, enable_observations: false } });
    assert.equal(r.status, 200, r.body);

    r = await a('POST', `${bank(id)}/memories`, {
        items: [{
            content: 'LLMTEST-RETAIN My sister Alice lost her job at Acme on Monday and moved back home.',
            timestamp: '2024-06-10T09:30:00Z', context: 'a chat with the user',
            entities: [{ text: 'Dana', type: 'PERSON' }],
        }],
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.success, true);
    assert.deepEqual(r.json.usage, { input_tokens: 200, output_tokens: 50, total_tokens: 250, cached_tokens: 0, thoughts_tokens: 0 });

    // What was sent: one structured-output call for the one chunk.
    const reqs = await modelRequests('LLMTEST-RETAIN');
    assert.equal(reqs.length, 1, JSON.stringify(reqs.map((e) => e.body)));
    const body = reqs[0].body;
    assert.equal(body.model, 'mock-model');
    assert.equal(body.temperature, 0.1);
    assert.equal(body.response_format.type, 'json_schema');
    assert.equal(body.response_format.json_schema.name, 'facts');
    const fact = body.response_format.json_schema.schema.properties.facts.items;
    for (const k of ['what', 'when', 'where', 'who', 'why', 'fact_kind', 'occurred_start', 'occurred_end', 'fact_type', 'entities', 'causal_relations']) {
        assert.ok(k in fact.properties, `schema lacks ${k}`);
    }
    assert.deepEqual(fact.properties.fact_type.enum, ['world', 'assistant']);
    const system = body.messages.find((m) => m.role === 'system').content;
    assert.ok(system.includes(MISSION), system);
    const user = body.messages.filter((m) => m.role === 'user').pop().content;
    assert.match(user, /Chunk: 1\/1/);
    assert.match(user, /Event Date: Monday, June 10, 2024 \(2024-06-10T09:30:00\+00:00\)/);
    assert.match(user, /Context: a chat with the user/);
    assert.match(user, /Known entities: Dana/);

    // What was stored.
    const list = await listAll(id);
    assert.equal(list.total, 3, JSON.stringify(list));
    const byText = (re) => list.items.find((u) => re.test(u.text));
    const lost = byText(/^Alice lost her job/);
    const moved = byText(/^Alice moved back/);
    const budget = byText(/budget plan/);
    assert.ok(lost && moved && budget, JSON.stringify(list.items.map((u) => u.text)));
    assert.equal(lost.text, "Alice lost her job at Acme | When: Monday, June 3, 2024 | Involving: Alice (user's sister)");
    assert.equal(moved.text, 'Alice moved back in with her parents | Involving: Alice | she could not pay her rent');
    assert.equal(budget.text, 'The assistant suggested a monthly budget plan');
    assert.equal(lost.fact_type, 'world');
    assert.equal(moved.fact_type, 'world');
    assert.equal(budget.fact_type, 'experience');
    assert.equal(lost.occurred_start, '2024-06-03T00:00:00+00:00');
    assert.equal(lost.occurred_end, '2024-06-03T00:00:00+00:00');
    assert.ok(!moved.occurred_start, JSON.stringify(moved));
    assert.match(lost.mentioned_at, ISO);
    assert.equal(lost.context, 'a chat with the user');

    const detail = await a('GET', `${bank(id)}/memories/${lost.id}`);
    assert.equal(detail.status, 200, detail.body);
    const names = detail.json.entities.map((e) => e.toLowerCase()).sort();
    // the model's entities unique case-insensitively, plus the item's own
    assert.deepEqual(names, ['acme', 'alice', 'dana'], JSON.stringify(detail.json.entities));

    // The caused_by link between the two facts (only the one valid relation).
    const g = await a('GET', `${bank(id)}/graph`);
    assert.equal(g.status, 200, g.body);
    const causal = g.json.edges.filter((e) => e.type === 'caused_by');
    assert.equal(causal.length, 1, JSON.stringify(g.json.edges));
    assert.deepEqual([causal[0].from, causal[0].to].sort(), [lost.id, moved.id].sort());
});

test('the chunks of an item are extracted in parallel and their facts kept in chunk order', async () => {
    const id = uniqueName('rllm-par');
    let r = await a('PUT', bank(id), {});
    r = await a('PATCH', `${bank(id)}/config`, { updates: { retain_chunk_size: 60, enable_observations: false } });
    assert.equal(r.status, 200, r.body);
    r = await a('POST', `${bank(id)}/memories`, {
        items: [{
            content: 'LLMTEST-PAR one: Erin started a new job at Initech. LLMTEST-PAR two: Erin bought a red bicycle. LLMTEST-PAR three: Erin rides it to work daily.',
            timestamp: '2024-06-10T09:30:00Z',
        }],
    });
    assert.equal(r.status, 200, r.body);

    const reqs = (await modelRequests('LLMTEST-PAR')).sort((x, y) => x.seq - y.seq);
    assert.equal(reqs.length, 3, JSON.stringify(reqs.map((e) => e.body.messages.at(-1).content)));
    // All three were sent before the slowest (700 ms) answered; one after another they would be
    // at least 750 ms apart.
    const spread = Date.parse(reqs[2].time) - Date.parse(reqs[0].time);
    assert.ok(spread < 500, `requests spread over ${spread} ms`);

    const list = await listAll(id);
    assert.equal(list.total, 4, JSON.stringify(list));
    const order = [...list.items].sort((x, y) => Date.parse(x.mentioned_at) - Date.parse(y.mentioned_at)).map((u) => u.text.split(' | ')[0]);
    assert.deepEqual(order, ['Erin started a new job at Initech', 'Erin needed a way to commute', 'Erin bought a red bicycle', 'Erin rides the bicycle to work']);
    const g = await a('GET', `${bank(id)}/graph`);
    const byText = (t) => list.items.find((u) => u.text.startsWith(t)).id;
    const causal = g.json.edges.filter((e) => e.type === 'caused_by');
    assert.equal(causal.length, 1, JSON.stringify(g.json.edges));
    assert.deepEqual([causal[0].from, causal[0].to].sort(), [byText('Erin needed'), byText('Erin bought')].sort());
});

test('dry-run-extract returns the model\'s facts and usage, applies body overrides, stores nothing', async () => {
    const id = uniqueName('rllm-dry');
    const r = await a('POST', `${bank(id)}/memories/dry-run-extract`, {
        content: 'LLMTEST-DRY Bob adopted a beagle named Pixel yesterday.',
        timestamp: '2024-06-10T09:30:00Z',
        retain_mission: 'Only pets.',
        retain_extract_causal_links: false,
    });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.facts, [{
        text: 'Bob adopted a beagle named Pixel | When: June 9, 2024 | Involving: Bob',
        fact_type: 'world',
        occurred_start: '2024-06-09T10:00:00+00:00',
        occurred_end: '2024-06-09T11:00:00+00:00',
        entities: ['Bob', 'Pixel'],
    }]);
    assert.deepEqual(r.json.usage, { input_tokens: 120, output_tokens: 30, total_tokens: 150, cached_tokens: 0, thoughts_tokens: 0 });

    const reqs = await modelRequests('LLMTEST-DRY');
    assert.equal(reqs.length, 1);
    const body = reqs[0].body;
    assert.equal(body.temperature, 0.1);
    assert.ok(body.messages[0].content.includes('Only pets.'));
    // causal links off: no causal section, no causal_relations in the schema
    assert.ok(!body.messages[0].content.includes('CAUSAL'));
    assert.ok(!('causal_relations' in body.response_format.json_schema.schema.properties.facts.items.properties));

    // Nothing stored, and the bank was not even created.
    const prof = await a('GET', `${bank(id)}/profile`);
    assert.equal(prof.status, 404, prof.body);
    assert.equal((await listAll(id)).total, 0);

    // chunks mode makes no model call: the chunk is the fact.
    await llm.clearRequests();
    const c = await a('POST', `${bank(id)}/memories/dry-run-extract`, {
        content: 'LLMTEST-CHUNKS Alice moved to Berlin in 2021.', retain_extraction_mode: 'chunks',
    });
    assert.equal(c.status, 200, c.body);
    assert.deepEqual(c.json.facts, [{ text: 'LLMTEST-CHUNKS Alice moved to Berlin in 2021.', fact_type: 'world', entities: [] }]);
    assert.equal(c.json.usage.total_tokens, 0);
    assert.equal((await modelRequests('LLMTEST-CHUNKS')).length, 0);

    // validation
    const bad = await a('POST', `${bank(id)}/memories/dry-run-extract`, { content: '  ', retain_extraction_mode: 'loud', retain_chunk_size: 'x' });
    assert.equal(bad.status, 422, bad.body);
    const locs = bad.json.detail.map((d) => d.loc.join('.')).sort();
    assert.deepEqual(locs, ['body.content', 'body.retain_chunk_size', 'body.retain_extraction_mode']);
    const missing = await a('POST', `${bank(id)}/memories/dry-run-extract`, {});
    assert.equal(missing.status, 422, missing.body);
    assert.equal(missing.json.detail[0].type, 'missing');
});

test('a model error fails a sync retain (500 with the reason) and an async one (operation failed), writing nothing', async () => {
    const id = uniqueName('rllm-err');
    const item = { content: 'LLMTEST-FAIL Carol is allergic to peanuts.', timestamp: '2024-06-10T09:30:00Z', document_id: 'doc-fail' };

    // an item whose extraction succeeds is not written either when another one's fails
    const good = { content: 'LLMTEST-DRY Bob adopted a beagle.', document_id: 'doc-ok' };
    const r = await a('POST', `${bank(id)}/memories`, { items: [good, item] });
    assert.equal(r.status, 500, r.body);
    assert.equal(typeof r.json.detail, 'string');
    assert.match(r.json.detail, /^fact extraction failed: /);
    // retried once (ENGRAM_LLM_MAX_RETRIES=1), then failed
    assert.equal((await modelRequests('LLMTEST-FAIL')).length, 2);

    const q = await a('POST', `${bank(id)}/memories`, { items: [item], async: true });
    assert.equal(q.status, 200, q.body);
    const opId = q.json.operation_id;
    const op = await waitFor(async () => {
        const o = await a('GET', `${bank(id)}/operations/${opId}`);
        return o.status === 200 && ['failed', 'completed'].includes(o.json.status) ? o.json : null;
    }, { timeoutMs: 20000, what: 'the async retain to finish' });
    assert.equal(op.status, 'failed', JSON.stringify(op));
    assert.match(op.error_message, /^fact extraction failed: /);

    // dry-run-extract answers the same way
    const d = await a('POST', `${bank(id)}/memories/dry-run-extract`, { content: item.content });
    assert.equal(d.status, 500, d.body);
    assert.match(d.json.detail, /^fact extraction failed: /);

    assert.equal((await listAll(id)).total, 0);
    const docs = await a('GET', `${bank(id)}/documents`);
    assert.equal(docs.status, 200, docs.body);
    assert.equal(docs.json.total, 0);
    for (const d of ['doc-fail', 'doc-ok']) {
        const doc = await a('GET', `${bank(id)}/documents/${d}`);
        assert.equal(doc.status, 404, doc.body);
    }
});

test('without a model, dry-run-extract uses the builtin extractor', async () => {
    await srv.stop();
    plain = await startEngram({ env: { ENGRAM_LLM_PROVIDER: 'builtin' } });
    const id = uniqueName('rllm-builtin');
    const r = await p('POST', `${bank(id)}/memories/dry-run-extract`, {
        content: 'Alice moved to Berlin on 2021-05-03. Thanks!', timestamp: '2024-06-10T09:30:00Z',
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.facts.length, 1, JSON.stringify(r.json));
    const f = r.json.facts[0];
    assert.equal(f.text, 'Alice moved to Berlin on 2021-05-03.');
    assert.equal(f.fact_type, 'world');
    assert.equal(f.occurred_start, '2021-05-03T00:00:00+00:00');
    assert.ok(f.entities.includes('Alice') && f.entities.includes('Berlin'), JSON.stringify(f));
    assert.equal(r.json.usage.total_tokens, 0);
    const prof = await p('GET', `${bank(id)}/profile`);
    assert.equal(prof.status, 404, prof.body);

    // an existing bank's config applies (chunks mode), and body overrides win over it
    await p('PUT', bank(id), {});
    await p('PATCH', `${bank(id)}/config`, { updates: { retain_extraction_mode: 'chunks' } });
    const c = await p('POST', `${bank(id)}/memories/dry-run-extract`, { content: 'Alice moved to Berlin. Bob stayed.' });
    assert.deepEqual(c.json.facts.map((x) => x.text), ['Alice moved to Berlin. Bob stayed.']);
    const o = await p('POST', `${bank(id)}/memories/dry-run-extract`, { content: 'Alice moved to Berlin. Bob stayed.', retain_extraction_mode: 'concise' });
    assert.equal(o.json.facts.length, 2, JSON.stringify(o.json));
    const list = await p('GET', `${bank(id)}/memories/list`);
    assert.equal(list.json.total, 0);
});
