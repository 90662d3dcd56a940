// Hindsight face: consolidation and observations. With the builtin provider: retained repeats
// become an observation (proof_count, source_memory_ids, the earliest fact's text) once the run
// queued after retain finishes; stats go from pending to 0; the routes (consolidate with its
// dedup, recover, observation scopes, one memory's observations, clearing them, history); bad
// input; another workspace's bank of the same id; the consolidation.completed event; recall's
// include.source_facts (the observations' sources keyed by id, budgets, bad input). With a model
// (tools/mock-llm scripting the consolidation answers): creates, updates and deletes applied,
// ids the model invents ignored, a model 500 failing the facts and the operation, then recover.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, startEngram, waitFor, PrivateRedis, cli } from './harness.mjs';
import { bank, caller, ISO, UUID } from './hindsight_http.mjs';
import { startMockLlm } from './mock_llm.mjs';

// A Redis of this file's own: every engramd on a Redis reads its "consolidation" queue, and one
// of another test file with a chat model configured would take these builtin runs.
const own = new PrivateRedis();
const opts = {};
let A;
let B;
let eng0;
const srv = { request: (...args) => eng0.request(...args) };
before(async () => {
    await own.start();
    opts.redisUrl = own.url;
    eng0 = await startEngram(opts);
    // Once engramd has made the default account on the fresh Redis (the CLI would race it).
    await waitFor(async () => (await cli(['workspaces', 'list'], opts)).stdout.includes('default'),
        { timeoutMs: 10000, what: 'the default workspace' });
    A = await workspaceWithKey('hscA', opts);
    B = await workspaceWithKey('hscB', opts);
});
after(async () => {
    if (eng0) await eng0.stop();
    await own.destroy();
});

const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);
const b = (method, path, body) => call(B.key, method, path, body);

function ok(res) {
    assert.equal(res.status, 200, res.body);
    return res.json;
}

async function retain(fn, id, content, tags) {
    ok(await fn('POST', `${bank(id)}/memories`, { items: [{ content, tags }] }));
}

async function settled(fn, id) {
    let st;
    await waitFor(async () => {
        st = ok(await fn('GET', `${bank(id)}/stats`));
        return st.pending_consolidation === 0 && st.pending_operations === 0 &&
            !st.operations_by_status.processing;
    }, { timeoutMs: 15000, what: 'consolidation to settle' });
    return st;
}

async function opDone(fn, id, opId) {
    let op;
    await waitFor(async () => {
        op = ok(await fn('GET', `${bank(id)}/operations/${opId}`));
        return op.status === 'completed' || op.status === 'failed';
    }, { timeoutMs: 15000, what: `operation ${opId}` });
    return op;
}

const list = async (fn, id, q) => ok(await fn('GET', `${bank(id)}/memories/list?${q}`));

test('builtin: repeats become an observation after retain; stats and state filters', async () => {
    const id = uniqueName('cons');
    await retain(a, id, 'Alice drinks green tea every morning.', ['user:1']);
    await retain(a, id, 'Alice drinks green tea every morning.', ['user:1']);
    await retain(a, id, 'Bob repairs bicycles in his garage.', ['user:1']);
    await retain(a, id, 'Alice drinks green tea every morning.', ['user:2']); // another scope
    const st = await settled(a, id);
    assert.equal(st.failed_consolidation, 0);
    assert.equal(st.total_observations, 1);
    assert.match(st.last_consolidated_at, ISO);
    assert.equal(st.nodes_by_fact_type.observation, 1);

    const facts = await list(a, id, 'type=world');
    assert.equal(facts.total, 4);
    for (const f of facts.items) assert.match(f.consolidated_at, ISO, JSON.stringify(f));
    assert.equal((await list(a, id, 'consolidation_state=done')).total, 4);
    assert.equal((await list(a, id, 'consolidation_state=pending')).total, 0);
    assert.equal((await list(a, id, 'consolidation_state=failed')).total, 0);

    const obs = await list(a, id, 'type=observation');
    assert.equal(obs.total, 1);
    const o = obs.items[0];
    assert.equal(o.fact_type, 'observation');
    assert.equal(o.text, 'Alice drinks green tea every morning.');
    assert.equal(o.proof_count, 2);
    assert.deepEqual(o.tags, ['user:1']);
    const teaIds = facts.items.filter((f) => /tea/.test(f.text) && f.tags[0] === 'user:1').map((f) => f.id).sort();
    assert.deepEqual([...o.source_memory_ids].sort(), teaIds);

    const d = ok(await a('GET', `${bank(id)}/memories/${o.id}`));
    assert.equal(d.type, 'observation');
    assert.deepEqual(d.history, []);
    assert.equal(d.source_memories.length, 2);
    assert.deepEqual(ok(await a('GET', `${bank(id)}/memories/${o.id}/history`)), []);

    // The observation is about Alice: it is under her entity, in recall's entities section and in
    // GET B/entities/{id}.
    const alice = ok(await a('GET', `${bank(id)}/entities`)).items.find((e) => e.canonical_name === 'Alice');
    assert.ok(alice, 'an Alice entity');
    const ent = ok(await a('GET', `${bank(id)}/entities/${alice.id}`));
    assert.deepEqual(ent.observations.map((x) => x.text), [o.text]);
    const rec = ok(await a('POST', `${bank(id)}/memories/recall`, { query: 'What does Alice drink?' }));
    assert.deepEqual(rec.entities.Alice.observations.map((x) => x.text), [o.text], JSON.stringify(rec.entities));

    // prefer_observations: the observation's sources give way to it; without, they are there.
    const q = { query: 'Alice green tea morning', types: ['world', 'observation'] };
    const plain = ok(await a('POST', `${bank(id)}/memories/recall`, q)).results;
    assert.ok(plain.some((r) => r.id === o.id), JSON.stringify(plain));
    assert.ok(plain.some((r) => teaIds.includes(r.id)), JSON.stringify(plain));
    const pref = ok(await a('POST', `${bank(id)}/memories/recall`, { ...q, prefer_observations: true })).results;
    assert.ok(pref.some((r) => r.id === o.id), JSON.stringify(pref));
    assert.ok(!pref.some((r) => teaIds.includes(r.id)), JSON.stringify(pref));
    assert.ok(pref.some((r) => r.type === 'world'), 'facts that no observation holds stay');
    assert.deepEqual(pref.find((r) => r.id === o.id).source_fact_ids.sort(), teaIds);

    // A later repeat joins it: proof 3, one history entry.
    await retain(a, id, 'Alice drinks green tea every morning.', ['user:1']);
    await settled(a, id);
    const o2 = ok(await a('GET', `${bank(id)}/memories/${o.id}`));
    assert.equal(o2.source_memory_ids.length, 3);
    const h = ok(await a('GET', `${bank(id)}/memories/${o.id}/history`));
    assert.equal(h.length, 1, JSON.stringify(h));
    assert.equal(h[0].previous_text, o.text);
    assert.match(h[0].changed_at, ISO);
    assert.equal(typeof h[0].reason, 'string');

    // Scopes.
    assert.deepEqual(ok(await a('GET', `${bank(id)}/observations/scopes`)), { scopes: [{ tags: ['user:1'], count: 1 }] });

    // The event, in the workspace log.
    const log = ok(await srv.request('GET', '/engram/v1/events?type=consolidation.completed&limit=100', { key: A.key }));
    const ev = log.data.filter((e) => e.entity.bank_id === id);
    assert.ok(ev.length >= 1, JSON.stringify(log.data.slice(0, 3)));
    assert.equal(ev[0].entity.status, 'completed');
    assert.equal(typeof ev[0].entity.data.observations_created, 'number');
    assert.ok(ev.some((e) => e.entity.data.observations_created === 1), JSON.stringify(ev.map((e) => e.entity.data)));
});

test('routes: consolidate (dedup), recover, one memory\'s observations, clear, bad input', async () => {
    const id = uniqueName('cons');
    await retain(a, id, 'Carol sings in a choir on Sundays.', []);
    await retain(a, id, 'Carol sings in a choir on Sundays.', []);
    await settled(a, id);
    const obs = await list(a, id, 'type=observation');
    assert.equal(obs.total, 1);
    assert.deepEqual(obs.items[0].tags, []);

    // Two requests at once share one run.
    const [r1, r2] = await Promise.all([a('POST', `${bank(id)}/consolidate`), a('POST', `${bank(id)}/consolidate`, {})]);
    const j1 = ok(r1);
    const j2 = ok(r2);
    assert.match(j1.operation_id, UUID);
    assert.equal(j1.operation_id, j2.operation_id);
    assert.deepEqual([j1.deduplicated, j2.deduplicated].sort(), [false, true]);
    const op = await opDone(a, id, j1.operation_id);
    assert.equal(op.status, 'completed', JSON.stringify(op));
    // A scoped request, null body too.
    const j3 = ok(await a('POST', `${bank(id)}/consolidate`, { observation_scopes: [['user:9']] }));
    assert.equal((await opDone(a, id, j3.operation_id)).status, 'completed');
    const j4 = ok(await a('POST', `${bank(id)}/consolidate`, 'null'));
    // Finished before the next step, so it cannot re-consolidate facts the next step sets pending.
    assert.equal((await opDone(a, id, j4.operation_id)).status, 'completed');

    assert.deepEqual(ok(await a('POST', `${bank(id)}/consolidation/recover`)), { retried_count: 0 });

    // One memory's observations: deleted, its facts pending again, then consolidated again.
    const fact = obs.items[0].source_memory_ids[0];
    assert.deepEqual(ok(await a('DELETE', `${bank(id)}/memories/${fact}/observations`)), { deleted_count: 1 });
    assert.equal((await list(a, id, 'type=observation')).total, 0);
    const r404 = await a('DELETE', `${bank(id)}/memories/00000000-0000-4000-8000-000000000000/observations`);
    assert.equal(r404.status, 404, r404.body);
    assert.equal((await a('DELETE', `${bank(id)}/memories/not-a-uuid/observations`)).status, 404);
    ok(await a('POST', `${bank(id)}/consolidate`));
    await settled(a, id);
    assert.equal((await list(a, id, 'type=observation')).total, 1);

    // Clear every observation.
    const cl = ok(await a('DELETE', `${bank(id)}/observations`));
    assert.equal(cl.success, true);
    assert.equal(cl.deleted_count, 1);
    assert.equal((await list(a, id, 'type=observation')).total, 0);
    assert.deepEqual(ok(await a('GET', `${bank(id)}/observations/scopes`)), { scopes: [] });

    // Bad input.
    for (const body of [{ observation_scopes: 'x' }, { observation_scopes: [['a', 1]] }, { observation_scopes: ['a'] }, '[1]', '{']) {
        const r = await a('POST', `${bank(id)}/consolidate`, body);
        assert.equal(r.status, 422, `${JSON.stringify(body)}: ${r.body}`);
        assert.ok(Array.isArray(r.json.detail), r.body);
    }

    // Another workspace's bank of the same id is another bank.
    const jb = ok(await b('POST', `${bank(id)}/consolidate`));
    assert.notEqual(jb.operation_id, j1.operation_id);
    assert.deepEqual(ok(await b('GET', `${bank(id)}/observations/scopes`)), { scopes: [] });
    assert.equal((await b('DELETE', `${bank(id)}/memories/${fact}/observations`)).status, 404);
    assert.deepEqual(ok(await b('DELETE', `${bank(id)}/observations`)).deleted_count, 0);
    assert.equal((await list(a, id, 'type=world')).total, 2); // A's facts untouched
});

test('recall include.source_facts: the sources of observation results, keyed by id, within budget', async () => {
    const id = uniqueName('cons');
    const text = 'Hana plays the cello in a string quartet.';
    await retain(a, id, text, ['u:h']);
    await retain(a, id, text, ['u:h']);
    await retain(a, id, 'Ivan collects old sea charts.', ['u:h']);
    await settled(a, id);
    const obs = (await list(a, id, 'type=observation')).items;
    assert.equal(obs.length, 1, JSON.stringify(obs));
    const srcIds = [...obs[0].source_memory_ids].sort();
    assert.equal(srcIds.length, 2);
    const recall = async (extra) => ok(await a('POST', `${bank(id)}/memories/recall`,
        { query: 'Hana cello quartet', types: ['observation'], ...extra }));

    // Without the include there is no source_facts key; the observation lists its sources anyway.
    const plain = await recall({});
    assert.ok(!('source_facts' in plain) && !('source_facts_truncated' in plain), JSON.stringify(plain));
    const r0 = plain.results.find((r) => r.id === obs[0].id);
    assert.ok(r0, JSON.stringify(plain.results));
    assert.deepEqual([...r0.source_fact_ids].sort(), srcIds);
    assert.ok(!('source_facts' in await recall({ include: { source_facts: null } })));

    // {} takes the defaults (4096 tokens): both sources, as RecallResults keyed by their ids.
    const full = await recall({ include: { source_facts: {} } });
    assert.deepEqual(Object.keys(full.source_facts).sort(), srcIds, JSON.stringify(full));
    assert.equal(full.source_facts_truncated, false);
    for (const [k, f] of Object.entries(full.source_facts)) {
        assert.equal(f.id, k);
        assert.equal(f.text, text);
        assert.equal(f.type, 'world');
        assert.deepEqual(f.tags, ['u:h']);
        assert.match(f.mentioned_at, ISO);
        assert.ok(!('scores' in f) && !('source_fact_ids' in f), JSON.stringify(f));
    }
    assert.deepEqual([...full.results.find((r) => r.id === obs[0].id).source_fact_ids].sort(), srcIds);
    // Unlimited, and a per-observation budget that replaces a total of 0.
    assert.deepEqual(Object.keys((await recall({ include: { source_facts: { max_tokens: -1 } } })).source_facts).sort(), srcIds);
    const per = await recall({ include: { source_facts: { max_tokens: 0, max_tokens_per_observation: 500 } } });
    assert.deepEqual(Object.keys(per.source_facts).sort(), srcIds);
    assert.equal(per.source_facts_truncated, false);

    // A budget too small for any source: none, and the response says the map was cut.
    for (const sf of [{ max_tokens: 1 }, { max_tokens: -1, max_tokens_per_observation: 1 }]) {
        const tiny = await recall({ include: { source_facts: sf } });
        assert.deepEqual(tiny.source_facts, {}, JSON.stringify(sf));
        assert.equal(tiny.source_facts_truncated, true, JSON.stringify(sf));
        assert.deepEqual([...tiny.results.find((r) => r.id === obs[0].id).source_fact_ids].sort(), srcIds);
    }

    // No observation among the results: no map, and nothing was cut.
    const facts = await recall({ types: ['world'], include: { source_facts: {} } });
    assert.ok(facts.results.length > 0);
    assert.ok(!('source_facts' in facts), JSON.stringify(facts));
    assert.equal(facts.source_facts_truncated, false);

    // Facts among the results are in the map too.
    const both = await recall({ types: ['world', 'observation'], include: { source_facts: {} } });
    assert.ok(both.results.some((r) => srcIds.includes(r.id)), JSON.stringify(both.results));
    assert.deepEqual(Object.keys(both.source_facts).sort(), srcIds);

    // Wrong types: pydantic's 422 with the field's location.
    for (const [sf, type, field] of [
        [{ max_tokens: 'many' }, 'int_parsing', 'max_tokens'],
        [{ max_tokens: 1.5 }, 'int_from_float', 'max_tokens'],
        [{ max_tokens_per_observation: null }, 'int_type', 'max_tokens_per_observation'],
        [{ max_tokens_per_observation: [1] }, 'int_type', 'max_tokens_per_observation'],
        ['all', 'model_attributes_type', null],
    ]) {
        const r = await a('POST', `${bank(id)}/memories/recall`, { query: 'Hana', include: { source_facts: sf } });
        assert.equal(r.status, 422, `${JSON.stringify(sf)}: ${r.body}`);
        const d = r.json.detail[0];
        assert.equal(d.type, type, r.body);
        assert.deepEqual(d.loc, ['body', 'include', 'source_facts', ...(field ? [field] : [])], r.body);
    }
    // Lax ints, as pydantic reads them.
    assert.equal((await recall({ include: { source_facts: { max_tokens: '1' } } })).source_facts_truncated, true);
});

test('enable_observations false: retain queues nothing', async () => {
    const id = uniqueName('cons');
    ok(await a('PUT', bank(id), { enable_observations: false }));
    await retain(a, id, 'Dan feeds the cat at seven.', []);
    await retain(a, id, 'Dan feeds the cat at seven.', []);
    const st = ok(await a('GET', `${bank(id)}/stats`));
    assert.equal(st.pending_consolidation, 2);
    const ops = ok(await a('GET', `${bank(id)}/operations`));
    assert.equal(ops.operations.filter((o) => o.task_type === 'consolidation').length, 0, JSON.stringify(ops));
    ok(await a('POST', `${bank(id)}/consolidate`));
    await settled(a, id);
    assert.equal((await list(a, id, 'type=observation')).total, 1);
});

// ---- with a model --------------------------------------------------------------------------------

test('model: creates, updates, deletes; a model error fails the facts, recover retries', async (t) => {
    // Its own Redis: the shared one's "consolidation" queue is read by the builtin engramd too.
    const redis = await new PrivateRedis().start();
    t.after(() => redis.destroy());
    const llm = await startMockLlm();
    t.after(() => llm.stop());
    const eng = await startEngram({
        redisUrl: redis.url,
        env: {
            ENGRAM_CONSOLIDATION_LLM_PROVIDER: 'openai',
            ENGRAM_CONSOLIDATION_LLM_BASE_URL: llm.url,
            ENGRAM_CONSOLIDATION_LLM_MODEL: 'mock-model',
            ENGRAM_LLM_MAX_RETRIES: '0',
        },
    });
    t.after(() => eng.stop());
    await waitFor(async () => (await cli(['workspaces', 'list'], { redisUrl: redis.url })).stdout.includes('default'),
        { timeoutMs: 10000, what: 'the default workspace' });
    const W = await workspaceWithKey('hscM', { redisUrl: redis.url });
    const m = (method, path, body) => caller(eng)(W.key, method, path, body);
    const id = uniqueName('consm');
    const other = uniqueName('consm');
    // Retain without the automatic run, so the scripted answers can name the facts.
    ok(await m('PUT', bank(id), { enable_observations: false }));
    await retain(m, id, 'Erin runs five kilometres every Monday.', ['u:1']);
    await retain(m, id, 'Erin ran a half marathon in May.', ['u:1']);
    const facts = (await list(m, id, 'type=world')).items;
    const [f1, f2] = facts.map((f) => f.id);
    // An observation of another bank the model must not be able to touch.
    ok(await m('PUT', bank(other), { enable_observations: false }));
    await retain(m, other, 'Frank bakes bread.', []);
    await retain(m, other, 'Frank bakes bread.', []);
    ok(await m('POST', `${bank(other)}/consolidate`));
    await llm.addRules({
        match: { schema_name: 'consolidation', any_message: 'Frank' }, times: 1,
        reply: { json: { creates: [], updates: [], deletes: [] } },
    });
    await settled(m, other);

    await llm.addRules({
        match: { schema_name: 'consolidation', any_message: 'Erin' }, times: 1,
        reply: {
            json: {
                creates: [
                    { text: 'Erin is a regular runner.', source_fact_ids: [f1, f2, '00000000-0000-4000-8000-000000000000'], reason: 'both facts' },
                    { text: 'Invented sources only.', source_fact_ids: ['nope'], reason: 'ignored' },
                ],
                updates: [{ text: 'hijack', observation_id: '00000000-0000-4000-8000-000000000001', source_fact_ids: [f1], reason: 'x' }],
                deletes: [{ observation_id: f1, reason: 'a fact, not an observation' }],
            },
        },
    });
    let j = ok(await m('POST', `${bank(id)}/consolidate`));
    let op = await opDone(m, id, j.operation_id);
    assert.equal(op.status, 'completed', JSON.stringify(op));
    let obs = (await list(m, id, 'type=observation')).items;
    assert.equal(obs.length, 1, JSON.stringify(obs));
    assert.equal(obs[0].text, 'Erin is a regular runner.');
    assert.equal(obs[0].proof_count, 2);
    assert.deepEqual([...obs[0].source_memory_ids].sort(), [f1, f2].sort());
    assert.deepEqual(obs[0].tags, ['u:1']);
    assert.equal((await list(m, id, 'type=world')).total, 2, 'the fact named in deletes stays');
    const chat = (await llm.requests('/v1/chat/completions')).filter((r) => JSON.stringify(r.body).includes('Erin'));
    assert.equal(chat.length, 1);
    assert.equal(chat[0].body.temperature, 0);
    assert.equal(chat[0].body.response_format.json_schema.name, 'consolidation');
    const obsId = obs[0].id;

    // An update from a new fact: text, sources, history.
    await retain(m, id, 'Erin signed up for the Berlin marathon.', ['u:1']);
    const f3 = (await list(m, id, 'consolidation_state=pending')).items[0].id;
    await llm.addRules({
        match: { schema_name: 'consolidation', any_message: 'Berlin' }, times: 1,
        reply: { json: { creates: [], updates: [{ text: 'Erin is a committed marathon runner.', observation_id: obsId, source_fact_ids: [f3], reason: 'new race' }], deletes: [] } },
    });
    j = ok(await m('POST', `${bank(id)}/consolidate`));
    assert.equal((await opDone(m, id, j.operation_id)).status, 'completed');
    const d = ok(await m('GET', `${bank(id)}/memories/${obsId}`));
    assert.equal(d.text, 'Erin is a committed marathon runner.');
    assert.equal(d.source_memory_ids.length, 3);
    const h = ok(await m('GET', `${bank(id)}/memories/${obsId}/history`));
    assert.equal(h.length, 1);
    assert.equal(h[0].previous_text, 'Erin is a regular runner.');
    assert.equal(h[0].reason, 'new race');

    // A model 500: the facts fail, the operation fails with the message, the event says so.
    await retain(m, id, 'Erin injured her knee in June.', ['u:1']);
    await llm.addRules({ match: { schema_name: 'consolidation', any_message: 'knee' }, times: 1, reply: { status: 500 } });
    j = ok(await m('POST', `${bank(id)}/consolidate`));
    op = await opDone(m, id, j.operation_id);
    assert.equal(op.status, 'failed', JSON.stringify(op));
    assert.ok(op.error_message, JSON.stringify(op));
    const st = ok(await m('GET', `${bank(id)}/stats`));
    assert.equal(st.failed_consolidation, 1);
    assert.equal((await list(m, id, 'consolidation_state=failed')).total, 1);
    const log = ok(await eng.request('GET', '/engram/v1/events?type=consolidation.completed&limit=200', { key: W.key }));
    const ev = log.data.find((e) => e.entity.operation_id === j.operation_id);
    assert.ok(ev, 'failed event');
    assert.equal(ev.entity.status, 'failed');
    assert.ok(ev.entity.data.error_message);

    // Recover: back to pending, a run with a working model deletes the observation.
    await llm.addRules({
        match: { schema_name: 'consolidation', any_message: 'knee' }, times: 1,
        reply: { json: { creates: [], updates: [], deletes: [{ observation_id: obsId, reason: 'no longer runs' }] } },
    });
    assert.deepEqual(ok(await m('POST', `${bank(id)}/consolidation/recover`)), { retried_count: 1 });
    await settled(m, id);
    assert.equal((await list(m, id, 'consolidation_state=failed')).total, 0);
    assert.equal((await list(m, id, 'type=observation')).total, 0);
    assert.equal((await list(m, other, 'type=observation')).total, 0, 'the other bank untouched');
    const ev2 = ok(await eng.request('GET', '/engram/v1/events?type=consolidation.completed&limit=200', { key: W.key }))
        .data.filter((e) => e.entity.bank_id === id && e.entity.status === 'completed');
    assert.ok(ev2.some((e) => e.entity.data.observations_deleted === 1), JSON.stringify(ev2.map((e) => e.entity.data)));

    // A failed run retried through the operations API: its facts are taken up again under it.
    await retain(m, id, 'Erin started swimming lessons.', ['u:1']);
    await llm.addRules({ match: { schema_name: 'consolidation', any_message: 'swimming' }, times: 1, reply: { status: 500 } });
    j = ok(await m('POST', `${bank(id)}/consolidate`));
    assert.equal((await opDone(m, id, j.operation_id)).status, 'failed');
    await llm.addRules({
        match: { schema_name: 'consolidation', any_message: 'swimming' }, times: 1,
        reply: { json: { creates: [{ text: 'Erin swims.', source_fact_ids: [(await list(m, id, 'consolidation_state=failed')).items[0].id], reason: 'lessons' }], updates: [], deletes: [] } },
    });
    ok(await m('POST', `${bank(id)}/operations/${j.operation_id}/retry`));
    op = await opDone(m, id, j.operation_id);
    assert.equal(op.status, 'completed', JSON.stringify(op));
    assert.equal(op.retry_count, 1);
    assert.deepEqual((await list(m, id, 'type=observation')).items.map((x) => x.text), ['Erin swims.']);
    assert.equal((await list(m, id, 'consolidation_state=failed')).total, 0);

    // Nine facts of one scope take two calls; the second call's create repeats the first one's
    // observation (cosine >= 0.97) and is merged into it rather than added.
    const gid = uniqueName('consm');
    ok(await m('PUT', bank(gid), { enable_observations: false }));
    for (let i = 0; i < 9; i++) await retain(m, gid, `Gina trained at the gym on day ${i + 1}.`, ['g']);
    const gids = (await list(m, gid, 'type=world')).items.map((x) => x.id);
    assert.equal(gids.length, 9);
    await llm.addRules({
        match: { schema_name: 'consolidation', any_message: 'Gina' }, times: 2,
        reply: { json: { creates: [{ text: 'Gina trains at the gym regularly.', source_fact_ids: gids, reason: 'habit' }], updates: [], deletes: [] } },
    });
    j = ok(await m('POST', `${bank(gid)}/consolidate`));
    assert.equal((await opDone(m, gid, j.operation_id)).status, 'completed');
    const gobs = (await list(m, gid, 'type=observation')).items;
    assert.equal(gobs.length, 1, JSON.stringify(gobs.map((x) => x.text)));
    assert.equal(gobs[0].proof_count, 9);
});

test('builtin: a curated text edit and deletes of source facts keep observations consistent', async () => {
    const id = uniqueName('cons');
    const chess = 'Carol plays chess in the park every Sunday.';
    for (let i = 0; i < 4; i++) await retain(a, id, chess, ['user:7']);
    await settled(a, id);
    let obs = await list(a, id, 'type=observation');
    assert.equal(obs.total, 1);
    const oid = obs.items[0].id;
    const srcs = [...obs.items[0].source_memory_ids].sort();
    assert.equal(srcs.length, 4);
    // The listing's item (it carries proof_count), checked against GET B/memories/{id}.
    const getObs = async () => {
        const it = (await list(a, id, 'type=observation')).items.find((x) => x.id === oid);
        assert.ok(it, 'the observation is listed');
        const one = ok(await a('GET', `${bank(id)}/memories/${oid}`));
        assert.deepEqual([...one.source_memory_ids].sort(), [...it.source_memory_ids].sort());
        return it;
    };

    // With observations off no run is queued: the edit's own effects stay visible.
    ok(await a('PUT', bank(id), { enable_observations: false }));
    const edited = ok(await a('PATCH', `${bank(id)}/memories/${srcs[0]}`, { text: 'Carol collects stamps.' }));
    assert.equal(edited.text, 'Carol collects stamps.');
    const item = (await list(a, id, 'type=world')).items.find((f) => f.id === srcs[0]);
    assert.ok(!item.consolidated_at, JSON.stringify(item));
    let o = await getObs();
    assert.deepEqual([...o.source_memory_ids].sort(), srcs.slice(1));
    assert.equal(o.proof_count, 3);
    let st = ok(await a('GET', `${bank(id)}/stats`));
    assert.equal(st.pending_consolidation, 1);
    assert.equal((await list(a, id, 'consolidation_state=pending')).items[0].id, srcs[0]);

    // With observations on, an edit queues the run itself: nothing pending once it is done, and the
    // edited facts (no longer repeats) stay out of the observation.
    ok(await a('PUT', bank(id), { enable_observations: true }));
    ok(await a('PATCH', `${bank(id)}/memories/${srcs[1]}`, { text: 'Carol bakes bread on Mondays.' }));
    st = await settled(a, id);
    assert.equal(st.pending_consolidation, 0);
    const facts = await list(a, id, 'type=world');
    for (const f of facts.items) assert.match(f.consolidated_at, ISO, JSON.stringify(f));
    o = await getObs();
    assert.deepEqual([...o.source_memory_ids].sort(), srcs.slice(2));
    assert.equal(o.proof_count, 2);

    // Deleting a source removes it from the observation; deleting the last one deletes it.
    ok(await a('DELETE', `${bank(id)}/memories/${srcs[2]}`));
    o = await getObs();
    assert.deepEqual(o.source_memory_ids, [srcs[3]]);
    assert.equal(o.proof_count, 1);
    ok(await a('DELETE', `${bank(id)}/memories/${srcs[3]}`));
    assert.equal((await a('GET', `${bank(id)}/memories/${oid}`)).status, 404);
    obs = await list(a, id, 'type=observation');
    assert.equal(obs.total, 0);
    st = ok(await a('GET', `${bank(id)}/stats`));
    assert.equal(st.total_observations, 0);
    assert.equal(st.nodes_by_fact_type.observation ?? 0, 0);

    // Deleting a document cascades the same way.
    await retain(a, id, 'Dan runs along the river at dawn.', []);
    await retain(a, id, 'Dan runs along the river at dawn.', []);
    await settled(a, id);
    obs = await list(a, id, 'type=observation');
    assert.equal(obs.total, 1);
    const docOf = async (fid) => (await list(a, id, 'type=world')).items.find((f) => f.id === fid).document_id;
    const [d0, d1] = [await docOf(obs.items[0].source_memory_ids[0]), await docOf(obs.items[0].source_memory_ids[1])];
    ok(await a('DELETE', `${bank(id)}/documents/${encodeURIComponent(d0)}`));
    o = (await list(a, id, 'type=observation')).items[0];
    assert.equal(o.source_memory_ids.length, 1);
    assert.equal(o.proof_count, 1);
    ok(await a('DELETE', `${bank(id)}/documents/${encodeURIComponent(d1)}`));
    assert.equal((await list(a, id, 'type=observation')).total, 0);
});
