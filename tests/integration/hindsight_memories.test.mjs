// Hindsight face: memory units other than retain and recall — list (order, paging, every filter,
// ListUnit shape), get (MemoryDetail), PATCH (edits, entities, invalidate/revert, observation and
// bad input refused), DELETE one, history, clear by type — then the bank-wide views: graph, tags,
// entities (list, one, co-occurrence graph, regenerate 410), stats and the memories time series.
// Data goes in through POST B/memories (retain); every route's bad inputs are checked, and another
// workspace's bank of the same id reads as unknown.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, supervisedEngram } from './harness.mjs';
import { P, bank, caller, ISO, UUID } from './hindsight_http.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('hsmA'), workspaceWithKey('hsmB')]);
});

const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);

function ok(res) {
    assert.equal(res.status, 200, res.body);
    return res.json;
}
function detail(res, status) {
    assert.equal(res.status, status, res.body);
    assert.ok(res.json && 'detail' in res.json, res.body);
    return res.json.detail;
}
function validation(res) {
    const d = detail(res, 422);
    assert.ok(Array.isArray(d), res.body);
    return d;
}
const findErr = (d, loc) => d.find((e) => JSON.stringify(e.loc) === JSON.stringify(loc));

// A bank with three facts: Alice at Google (world, user:1 + team), Bob and Alice in the Alps
// (world, user:2), and a first-person repair (experience, untagged), mentioned a day apart.
async function seeded() {
    const id = uniqueName('mem');
    // No consolidation runs here (hindsight_consolidation.test.mjs covers it): the facts stay
    // pending and the operations list stays empty.
    ok(await a('PUT', bank(id), { enable_observations: false }));
    const r = await a('POST', `${bank(id)}/memories`, {
        items: [
            { content: 'Alice works at Google in Zurich.', context: 'work', tags: ['user:1', 'team'], document_id: 'doc-1', timestamp: '2024-06-01T10:00:00Z', metadata: { source: 'slack' } },
            { content: 'Bob hikes in the Alps with Alice.', tags: ['user:2'], document_id: 'doc-2', timestamp: '2024-06-02T10:00:00Z' },
            { content: 'I repaired my old bicycle yesterday.', document_id: 'doc-3', timestamp: '2024-06-03T10:00:00Z' },
        ],
    });
    ok(r);
    const items = ok(await a('GET', `${bank(id)}/memories/list`)).items;
    assert.equal(items.length, 3, JSON.stringify(items));
    const by = (re) => items.find((u) => re.test(u.text));
    return { id, items, alice: by(/Google/), hike: by(/Alps/), bike: by(/bicycle/) };
}
const texts = (items) => items.map((u) => u.text.split(' ')[0]);

test('list: ListUnit shape, newest first, paging', async () => {
    const s = await seeded();
    assert.deepEqual(texts(s.items), ['I', 'Bob', 'Alice'], 'mentioned_at descending');
    const u = s.alice;
    assert.match(u.id, UUID);
    assert.equal(u.context, 'work');
    assert.equal(u.fact_type, 'world');
    assert.equal(u.document_id, 'doc-1');
    assert.match(u.mentioned_at, ISO);
    assert.equal(u.date, u.mentioned_at, 'date: occurred_start, else mentioned_at');
    assert.equal(typeof u.entities, 'string');
    assert.equal(u.entities, 'Alice, Google, Zurich', 'one comma-joined string');
    assert.equal(u.chunk_id, `${s.id}_doc-1_0`);
    assert.equal(u.proof_count, 1);
    assert.deepEqual(u.tags, ['user:1', 'team']);
    assert.deepEqual(u.metadata, { source: 'slack' });
    assert.equal(u.state, 'valid');
    assert.deepEqual(u.source_memory_ids, []);
    assert.equal(s.hike.context, '', 'no context is ""');
    assert.ok(!('occurred_start' in s.hike) && !('invalidated_at' in u) && !('consolidated_at' in u), 'nulls dropped');
    assert.match(s.bike.occurred_start, ISO);
    assert.equal(s.bike.date, s.bike.occurred_start);

    let r = ok(await a('GET', `${bank(s.id)}/memories/list?limit=1&offset=1`));
    assert.deepEqual(texts(r.items), ['Bob']);
    assert.equal(r.total, 3);
    assert.equal(r.limit, 1);
    assert.equal(r.offset, 1);
    r = ok(await a('GET', `${bank(s.id)}/memories/list?offset=10`));
    assert.deepEqual(r.items, []);
    assert.equal(r.total, 3);
    r = ok(await a('GET', `${bank(s.id)}/memories/list?limit=0`));
    assert.deepEqual(r.items, []);
    assert.equal(r.total, 3);
});

test('list filters: type, q, document, entity, tags, state, consolidation_state', async () => {
    const s = await seeded();
    const list = async (qs) => ok(await a('GET', `${bank(s.id)}/memories/list?${qs}`));
    assert.deepEqual(texts((await list('type=world')).items), ['Bob', 'Alice']);
    assert.equal((await list('type=observation')).total, 0);
    assert.equal((await list('type=opinion')).total, 0, 'unknown types match nothing');
    assert.deepEqual(texts((await list('q=zurich')).items), ['Alice']);
    assert.deepEqual(texts((await list('q=WORK')).items), ['Alice'], 'context is searched too');
    assert.deepEqual(texts((await list('q=alice%20hiking')).items), ['Bob'], 'every word (stemmed)');
    assert.equal((await list('q=zebra')).total, 0);
    assert.deepEqual(texts((await list('document_id=doc-2')).items), ['Bob']);
    assert.equal((await list('document_id=nope')).total, 0);
    const ents = ok(await a('GET', `${bank(s.id)}/entities`)).items;
    const alice = ents.find((e) => e.canonical_name === 'Alice');
    assert.deepEqual(texts((await list(`entity_id=${alice.id}`)).items), ['Bob', 'Alice']);
    assert.equal((await list('entity_id=4b9e4d4e-1111-4222-8333-944455556666')).total, 0);
    assert.deepEqual(texts((await list('tags=user:1&tags_match=any_strict')).items), ['Alice']);
    assert.deepEqual(texts((await list('tags=user:1')).items), ['I', 'Alice'], 'any (the default) keeps the untagged');
    assert.deepEqual(texts((await list('tags=user:1&tags=team&tags_match=all_strict')).items), ['Alice']);
    assert.deepEqual(texts((await list('tags=user:1&tags=user:2&tags_match=any_strict')).items), ['Bob', 'Alice']);
    assert.deepEqual(texts((await list('tags_match=exact')).items), ['I'], 'exact without tags: the untagged');
    assert.equal((await list('state=valid')).total, 3);
    assert.equal((await list('state=invalidated')).total, 0);
    assert.equal((await list('consolidation_state=pending')).total, 3, 'nothing is consolidated yet');
    assert.equal((await list('consolidation_state=DONE')).total, 0);
    assert.equal((await list('consolidation_state=failed')).total, 0);
});

test('list: bad input', async () => {
    const id = uniqueName('mem');
    let d = validation(await a('GET', `${bank(id)}/memories/list?limit=x&offset=-2&tags_match=some`));
    assert.equal(findErr(d, ['query', 'limit']).type, 'int_parsing');
    assert.equal(findErr(d, ['query', 'offset']).type, 'greater_than_equal');
    const e = findErr(d, ['query', 'tags_match']);
    assert.equal(e.type, 'literal_error');
    assert.equal(e.msg, "Input should be 'any', 'all', 'any_strict', 'all_strict' or 'exact'");
    assert.equal(d[0].loc[1], 'tags_match', 'in declaration order');
    assert.equal(detail(await a('GET', `${bank(id)}/memories/list?state=gone`), 400),
        "Invalid state 'gone': expected 'valid' or 'invalidated'.");
    assert.equal(detail(await a('GET', `${bank(id)}/memories/list?consolidation_state=bogus`), 400),
        "Invalid consolidation_state 'bogus': expected 'failed', 'pending', or 'done'.");
    assert.equal(detail(await a('GET', `${bank(id)}/memories/list?entity_id=alice`), 400),
        "Invalid entity_id: 'alice' is not a valid UUID");
    d = validation(await a('GET', `${P}/v1/default/banks/a%01b/memories/list`));
    assert.deepEqual(d[0].loc, ['path', 'bank_id']);
});

test('unknown banks, and another workspace\'s bank of the same id, list nothing', async () => {
    const s = await seeded();
    for (const key of [A.key, B.key]) {
        const id = key === A.key ? uniqueName('none') : s.id;
        for (const p of ['memories/list', 'graph', 'tags', 'entities', 'documents']) {
            const r = ok(await call(key, 'GET', `${bank(id)}/${p}`));
            assert.equal(r.total ?? r.total_units, 0, `${p}: ${JSON.stringify(r)}`);
        }
        const g = ok(await call(key, 'GET', `${bank(id)}/entities/graph`));
        assert.deepEqual(g.edges, []);
        const st = ok(await call(key, 'GET', `${bank(id)}/stats`));
        assert.equal(st.total_nodes, 0);
        assert.equal(st.total_documents, 0);
        assert.equal(detail(await call(key, 'GET', `${bank(id)}/memories/${s.alice.id}`), 404),
            `Memory unit '${s.alice.id}' not found`);
        detail(await call(key, 'PATCH', `${bank(id)}/memories/${s.alice.id}`, { context: 'x' }), 404);
        detail(await call(key, 'DELETE', `${bank(id)}/memories/${s.alice.id}`), 404);
        detail(await call(key, 'GET', `${bank(id)}/memories/${s.alice.id}/history`), 404);
    }
    // B's DELETE of "its" bank's memories touched nothing of A's.
    ok(await call(B.key, 'DELETE', `${bank(s.id)}/memories`));
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/list`)).total, 3);
});

test('get: MemoryDetail; unknown ids 404; history is [] for facts', async () => {
    const s = await seeded();
    const m = ok(await a('GET', `${bank(s.id)}/memories/${s.alice.id}`));
    assert.equal(m.id, s.alice.id);
    assert.equal(m.type, 'world');
    assert.deepEqual(m.entities, ['Alice', 'Google', 'Zurich']);
    assert.equal(m.context, 'work');
    assert.equal(m.document_id, 'doc-1');
    assert.equal(m.chunk_id, `${s.id}_doc-1_0`);
    assert.deepEqual(m.tags, ['user:1', 'team']);
    assert.deepEqual(m.metadata, { source: 'slack' });
    assert.equal(m.state, 'valid');
    assert.match(m.mentioned_at, ISO);
    assert.ok(!('history' in m) && !('source_memories' in m), 'observation-only fields are absent');
    assert.deepEqual(ok(await a('GET', `${bank(s.id)}/memories/${s.alice.id}/history`)), []);
    for (const bad of ['4b9e4d4e-1111-4222-8333-944455556666', 'not-a-uuid']) {
        assert.equal(detail(await a('GET', `${bank(s.id)}/memories/${bad}`), 404), `Memory unit '${bad}' not found`);
        detail(await a('GET', `${bank(s.id)}/memories/${bad}/history`), 404);
    }
});

test('PATCH: text, context, dates, type, entities; the edit is what reads and search see', async () => {
    const s = await seeded();
    const url = `${bank(s.id)}/memories/${s.hike.id}`;
    let m = ok(await a('PATCH', url, {
        text: 'Bob climbs the Matterhorn with Alice.', context: 'trip', occurred_start: '2024-05-30',
        occurred_end: '2024-05-31T18:00:00+02:00', fact_type: 'experience',
    }));
    assert.equal(m.text, 'Bob climbs the Matterhorn with Alice.');
    assert.equal(m.context, 'trip');
    assert.equal(m.type, 'experience');
    assert.equal(m.occurred_start, '2024-05-30T00:00:00+00:00');
    assert.equal(m.occurred_end, '2024-05-31T16:00:00+00:00');
    assert.match(m.edited_at, ISO);
    assert.deepEqual(m.entities, ['Bob', 'Alps', 'Alice'], 'entities stay unless given');
    let r = ok(await a('GET', `${bank(s.id)}/memories/list?q=matterhorn`));
    assert.deepEqual(texts(r.items), ['Bob'], 'the new text is searchable');
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/list?q=hikes`)).total, 0);
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/list?type=experience`)).total, 2);

    // "" clears context and dates; entities are matched by folded name; [] detaches all.
    m = ok(await a('PATCH', url, { context: '', occurred_start: '', occurred_end: '', entities: ['zurich', 'ALICE', 'Alice'] }));
    assert.equal(m.context, '');
    assert.ok(!('occurred_start' in m) && !('occurred_end' in m));
    assert.deepEqual(m.entities, ['Zurich', 'Alice']);
    const ents = ok(await a('GET', `${bank(s.id)}/entities`)).items;
    assert.equal(ents.find((e) => e.canonical_name === 'Zurich').mention_count, 2);
    assert.equal(ents.find((e) => e.canonical_name === 'Bob'), undefined, 'an entity goes with its last mention');
    // A name the bank lacks is a new entity; a near spelling resolves as retain would, unless
    // resolve_entities is false (names taken literally).
    m = ok(await a('PATCH', url, { entities: ['Matterhorn', 'Zurch'] }));
    assert.deepEqual(m.entities, ['Matterhorn', 'Zurich']);
    let made = ok(await a('GET', `${bank(s.id)}/entities`)).items.find((e) => e.canonical_name === 'Matterhorn');
    assert.equal(made.mention_count, 1);
    m = ok(await a('PATCH', url, { entities: ['Zurch'], resolve_entities: false }));
    assert.deepEqual(m.entities, ['Zurch']);
    assert.equal(ok(await a('GET', `${bank(s.id)}/entities`)).items.find((e) => e.canonical_name === 'Matterhorn'), undefined);
    m = ok(await a('PATCH', url, { entities: [] }));
    assert.deepEqual(m.entities, []);
    r = ok(await a('GET', `${bank(s.id)}/memories/${s.hike.id}`));
    assert.deepEqual(r.entities, []);
    assert.equal(r.text, 'Bob climbs the Matterhorn with Alice.');
});

test('PATCH: invalidate and revert; invalidated memories leave the listing and the graph', async () => {
    const s = await seeded();
    const url = `${bank(s.id)}/memories/${s.alice.id}`;
    let m = ok(await a('PATCH', url, { state: 'invalidated', reason: 'superseded' }));
    assert.equal(m.state, 'invalidated');
    assert.equal(m.invalidation_reason, 'superseded');
    assert.match(m.invalidated_at, ISO);
    assert.ok(!('edited_at' in m), 'a state change is no content edit');
    assert.deepEqual(texts(ok(await a('GET', `${bank(s.id)}/memories/list`)).items), ['I', 'Bob']);
    const inv = ok(await a('GET', `${bank(s.id)}/memories/list?state=invalidated`));
    assert.deepEqual(texts(inv.items), ['Alice']);
    assert.equal(inv.items[0].state, 'invalidated');
    assert.equal(inv.items[0].invalidation_reason, 'superseded');
    const g = ok(await a('GET', `${bank(s.id)}/graph`));
    assert.equal(g.total_units, 2);
    assert.ok(!g.nodes.some((n) => n.id === s.alice.id));
    assert.equal(ok(await a('GET', `${bank(s.id)}/stats`)).total_nodes, 2);
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/${s.alice.id}`)).state, 'invalidated', 'still readable by id');
    m = ok(await a('PATCH', url, { state: 'valid' }));
    assert.equal(m.state, 'valid');
    assert.ok(!('invalidation_reason' in m) && !('invalidated_at' in m));
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/list`)).total, 3);
});

test('PATCH: bad input', async () => {
    const s = await seeded();
    const url = `${bank(s.id)}/memories/${s.alice.id}`;
    let d = validation(await a('PATCH', url, { text: 5, entities: ['a', 3], resolve_entities: 'maybe', state: [] }));
    assert.equal(findErr(d, ['body', 'text']).type, 'string_type');
    assert.equal(findErr(d, ['body', 'entities', 1]).type, 'string_type');
    assert.equal(findErr(d, ['body', 'resolve_entities']).type, 'bool_parsing');
    assert.equal(findErr(d, ['body', 'state']).type, 'string_type');
    d = validation(await a('PATCH', url, { entities: 'Alice' }));
    assert.equal(d[0].type, 'list_type');
    assert.equal(typeof detail(await a('PATCH', url, {}), 422), 'string', 'no field to update');
    assert.equal(typeof detail(await a('PATCH', url, { reason: 'only a reason' }), 422), 'string');
    validation(await a('PATCH', url));
    validation(await a('PATCH', url, '{"text":'));
    assert.match(detail(await a('PATCH', url, { fact_type: 'observation' }), 400), /Invalid fact_type 'observation'/);
    assert.match(detail(await a('PATCH', url, { state: 'deleted' }), 400), /Invalid state 'deleted'/);
    assert.match(detail(await a('PATCH', url, { occurred_start: 'last tuesday' }), 400), /occurred_start/);
    assert.equal(detail(await a('PATCH', url, { text: '' }), 400), 'text must not be empty');
    // Nothing of it was written.
    const m = ok(await a('GET', url));
    assert.equal(m.text, s.alice.text);
    assert.deepEqual(m.entities, ['Alice', 'Google', 'Zurich']);
    assert.equal(detail(await a('PATCH', `${bank(s.id)}/memories/4b9e4d4e-1111-4222-8333-944455556666`, { context: 'x' }), 404),
        "Memory unit '4b9e4d4e-1111-4222-8333-944455556666' not found");
});

test('DELETE one memory; DELETE B/memories clears by type and keeps the bank', async () => {
    const s = await seeded();
    let r = ok(await a('DELETE', `${bank(s.id)}/memories/${s.hike.id}`));
    assert.equal(r.success, true);
    assert.equal(r.unit_id, s.hike.id);
    detail(await a('DELETE', `${bank(s.id)}/memories/${s.hike.id}`), 404);
    detail(await a('GET', `${bank(s.id)}/memories/${s.hike.id}`), 404);
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/list`)).total, 2);

    r = ok(await a('DELETE', `${bank(s.id)}/memories?type=opinion`));
    assert.deepEqual(r, { success: true, message: 'Deleted 0 memory units', deleted_count: 0 });
    r = ok(await a('DELETE', `${bank(s.id)}/memories?type=experience`));
    assert.equal(r.deleted_count, 1);
    assert.deepEqual(texts(ok(await a('GET', `${bank(s.id)}/memories/list`)).items), ['Alice']);
    r = ok(await a('DELETE', `${bank(s.id)}/memories`));
    assert.equal(r.success, true);
    assert.equal(r.deleted_count, 1);
    assert.equal(ok(await a('GET', `${bank(s.id)}/memories/list`)).total, 0);
    assert.equal(ok(await a('GET', `${bank(s.id)}/entities`)).total, 0, 'everything goes with every type');
    assert.equal(ok(await a('GET', `${bank(s.id)}/profile`)).bank_id, s.id, 'the profile stays');
    r = ok(await a('DELETE', `${bank(uniqueName('none'))}/memories`));
    assert.equal(r.deleted_count, 0, 'clearing an unknown bank succeeds');
});

test('graph: nodes, edges among them, table rows, filters', async () => {
    const s = await seeded();
    let g = ok(await a('GET', `${bank(s.id)}/graph`));
    assert.equal(g.limit, 1000);
    assert.equal(g.total_units, 3);
    assert.deepEqual(g.nodes.map((n) => n.id), [s.bike.id, s.hike.id, s.alice.id]);
    assert.deepEqual(g.nodes[1], { id: s.hike.id, label: 'Bob hikes in the Alps with Ali...', type: 'world' });
    const edge = (x, y, type) => g.edges.find((e) => e.from === x && e.to === y && e.type === type);
    assert.ok(edge(s.hike.id, s.alice.id, 'entity'), 'they share Alice');
    assert.ok(edge(s.bike.id, s.hike.id, 'temporal'), JSON.stringify(g.edges));
    for (const e of g.edges) assert.equal(typeof e.weight, 'number');
    const row = g.table_rows.find((t) => t.id === s.alice.id);
    assert.equal(row.text, 'Alice works at Google in Zurich.');
    assert.equal(row.context, 'work');
    assert.equal(row.date, '2024-06-01 10:00');
    assert.equal(row.entities, 'Alice, Google, Zurich');
    assert.equal(g.table_rows.find((t) => t.id === s.hike.id).context, 'N/A');

    g = ok(await a('GET', `${bank(s.id)}/graph?limit=1`));
    assert.equal(g.nodes.length, 1);
    assert.equal(g.total_units, 3);
    assert.equal(g.limit, 1);
    g = ok(await a('GET', `${bank(s.id)}/graph?type=world&q=alice`));
    assert.equal(g.total_units, 2);
    g = ok(await a('GET', `${bank(s.id)}/graph?tags=user:2`));
    assert.deepEqual(g.nodes.map((n) => n.id), [s.hike.id], 'all_strict by default');
    g = ok(await a('GET', `${bank(s.id)}/graph?tags=user:2&tags_match=any`));
    assert.equal(g.total_units, 2);
    g = ok(await a('GET', `${bank(s.id)}/graph?document_id=doc-1`));
    assert.deepEqual(g.nodes.map((n) => n.id), [s.alice.id]);
    g = ok(await a('GET', `${bank(s.id)}/graph?chunk_id=${encodeURIComponent(`${s.id}_doc-2_0`)}`));
    assert.deepEqual(g.nodes.map((n) => n.id), [s.hike.id]);
    assert.equal(ok(await a('GET', `${bank(s.id)}/graph?chunk_id=nope_0`)).total_units, 0);
    assert.equal(ok(await a('GET', `${bank(s.id)}/graph?type=nope`)).total_units, 0);
    assert.equal(validation(await a('GET', `${bank(s.id)}/graph?limit=-1`))[0].type, 'greater_than_equal');
    assert.match(detail(await a('GET', `${bank(s.id)}/graph?tags_match=some`), 400), /Invalid tags_match 'some'/);
});

test('tags: counts, * wildcard (case-insensitive), paging, source', async () => {
    const s = await seeded();
    let r = ok(await a('GET', `${bank(s.id)}/tags`));
    assert.deepEqual(r, { items: [{ tag: 'team', count: 1 }, { tag: 'user:1', count: 1 }, { tag: 'user:2', count: 1 }], total: 3, limit: 100, offset: 0 });
    r = ok(await a('GET', `${bank(s.id)}/tags?q=USER:*`));
    assert.deepEqual(r.items.map((t) => t.tag), ['user:1', 'user:2']);
    r = ok(await a('GET', `${bank(s.id)}/tags?q=*2&limit=5`));
    assert.deepEqual(r.items.map((t) => t.tag), ['user:2']);
    r = ok(await a('GET', `${bank(s.id)}/tags?q=user&offset=0`));
    assert.equal(r.total, 0, 'without * the whole tag must match');
    r = ok(await a('GET', `${bank(s.id)}/tags?limit=1&offset=2`));
    assert.deepEqual(r.items, [{ tag: 'user:2', count: 1 }]);
    assert.equal(r.total, 3);
    r = ok(await a('GET', `${bank(s.id)}/tags?source=mental_models`));
    assert.equal(r.total, 0);
    const d = validation(await a('GET', `${bank(s.id)}/tags?source=docs&limit=-5`));
    assert.equal(findErr(d, ['query', 'source']).type, 'literal_error');
    assert.equal(findErr(d, ['query', 'source']).msg, "Input should be 'memories' or 'mental_models'");
});

test('entities: list by mentions, one, co-occurrence graph, regenerate is 410', async () => {
    const s = await seeded();
    let r = ok(await a('GET', `${bank(s.id)}/entities`));
    assert.equal(r.total, 5);
    assert.equal(r.items[0].canonical_name, 'Alice');
    assert.equal(r.items[0].mention_count, 2);
    assert.match(r.items[0].id, UUID);
    assert.match(r.items[0].first_seen, ISO);
    assert.match(r.items[0].last_seen, ISO);
    assert.deepEqual(r.items[0].metadata, {});
    const alice = r.items[0];
    r = ok(await a('GET', `${bank(s.id)}/entities?limit=2&offset=1`));
    assert.equal(r.items.length, 2);
    assert.equal(r.total, 5);
    const e = ok(await a('GET', `${bank(s.id)}/entities/${alice.id}`));
    assert.deepEqual(e, { ...alice, observations: [] });
    assert.equal(detail(await a('GET', `${bank(s.id)}/entities/4b9e4d4e-1111-4222-8333-944455556666`), 404),
        'Entity 4b9e4d4e-1111-4222-8333-944455556666 not found');
    detail(await a('GET', `${bank(s.id)}/entities/not-an-id`), 404);
    assert.match(detail(await a('POST', `${bank(s.id)}/entities/${alice.id}/regenerate`), 410), /deprecated/);

    let g = ok(await a('GET', `${bank(s.id)}/entities/graph`));
    assert.equal(g.limit, 1000);
    assert.equal(g.total_edges, 6, 'Alice-Google-Zurich and Bob-Alps-Alice');
    assert.equal(g.total_entities, 5);
    const ae = g.edges.map((x) => x.data).find((x) => [x.source, x.target].includes(alice.id));
    assert.equal(ae.linkType, 'cooccurrence');
    assert.equal(ae.weight, 1);
    assert.match(ae.lastCooccurred, ISO);
    assert.equal(ae.id, `${ae.source}-${ae.target}`);
    assert.ok(ae.source < ae.target);
    const an = g.nodes.map((x) => x.data).find((x) => x.id === alice.id);
    assert.deepEqual(an, { id: alice.id, label: 'Alice', mentionCount: 2, color: '#42a5f5' });
    g = ok(await a('GET', `${bank(s.id)}/entities/graph?limit=2`));
    assert.equal(g.edges.length, 2);
    g = ok(await a('GET', `${bank(s.id)}/entities/graph?min_count=2`));
    assert.deepEqual(g.edges, []);
    const d = validation(await a('GET', `${bank(s.id)}/entities/graph?limit=-1&min_count=x`));
    assert.equal(findErr(d, ['query', 'limit']).type, 'greater_than_equal');
    assert.equal(findErr(d, ['query', 'min_count']).type, 'int_parsing');
    assert.equal(validation(await a('GET', `${bank(s.id)}/entities?offset=x`))[0].type, 'int_parsing');
});

test('stats: counts by type and link type, documents, last write', async () => {
    const s = await seeded();
    const st = ok(await a('GET', `${bank(s.id)}/stats`));
    assert.equal(st.bank_id, s.id);
    assert.equal(st.total_nodes, 3);
    assert.deepEqual(st.nodes_by_fact_type, { world: 2, experience: 1 });
    assert.equal(st.total_documents, 3);
    assert.equal(st.links_by_link_type.entity, 1, 'one pair shares Alice');
    assert.equal(st.total_links, Object.values(st.links_by_link_type).reduce((x, y) => x + y, 0));
    assert.equal(typeof st.links_by_fact_type, 'object');
    assert.equal(typeof st.links_breakdown, 'object');
    assert.equal(st.pending_operations, 0);
    assert.equal(st.failed_operations, 0);
    assert.deepEqual(st.operations_by_status, {});
    assert.match(st.last_memory_write_at, ISO);
    assert.equal(st.pending_consolidation, 3, 'observations are off in these banks');
    assert.equal(st.failed_consolidation, 0);
    assert.equal(st.total_observations, 0);
    ok(await a('GET', `${bank(s.id)}/stats?refresh=true`));
    assert.equal(validation(await a('GET', `${bank(s.id)}/stats?refresh=perhaps`))[0].type, 'bool_parsing');
});

test('memories time series: padded buckets per period, time fields, fallbacks', async () => {
    const s = await seeded();
    const periods = { '1h': [60, 'minute'], '12h': [12, 'hour'], '1d': [24, 'hour'], '7d': [7, 'day'], '30d': [30, 'day'], '90d': [90, 'day'] };
    for (const [p, [n, trunc]] of Object.entries(periods)) {
        const r = ok(await a('GET', `${bank(s.id)}/stats/memories-timeseries?period=${p}`));
        assert.equal(r.period, p);
        assert.equal(r.trunc, trunc);
        assert.equal(r.time_field, 'created_at');
        assert.equal(r.buckets.length, n);
        for (const b of r.buckets) {
            assert.match(b.time, ISO);
            for (const k of ['world', 'experience', 'observation']) assert.equal(typeof b[k], 'number');
        }
        const sum = r.buckets.reduce((x, b) => x + b.world + b.experience + b.observation, 0);
        assert.equal(sum, 3, `${p}: retained just now`);
        const last = r.buckets.slice(-2).reduce((x, b) => x + b.world + b.experience, 0);
        assert.equal(last, 3, `${p}: in the latest buckets`);
    }
    let r = ok(await a('GET', `${bank(s.id)}/stats/memories-timeseries?period=nonsense&time_field=nope`));
    assert.equal(r.period, '7d', 'unknown periods fall back to 7d');
    assert.equal(r.time_field, 'created_at', 'and unknown fields to created_at');
    assert.equal(r.buckets.length, 7);
    r = ok(await a('GET', `${bank(s.id)}/stats/memories-timeseries?time_field=mentioned_at`));
    assert.equal(r.time_field, 'mentioned_at');
    assert.equal(r.buckets.reduce((x, b) => x + b.world + b.experience, 0), 0, 'mentioned in 2024: outside the week');
    r = ok(await a('GET', `${bank(uniqueName('none'))}/stats/memories-timeseries`));
    assert.equal(r.buckets.length, 7);
    assert.ok(r.buckets.every((b) => b.world + b.experience + b.observation === 0));
});
