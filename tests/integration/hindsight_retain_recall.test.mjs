// Hindsight face: retain (POST B/memories, sync and async) and recall (POST B/memories/recall)
// over HTTP against a real engramd and Redis: shapes, options, filters, upserts, isolation and
// every kind of bad input.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, supervisedEngram, waitFor } from './harness.mjs';
import { bank, caller, ISO } from './hindsight_http.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('rrA'), workspaceWithKey('rrB')]);
});

const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);
const b = (method, path, body) => call(B.key, method, path, body);

function validation(res) {
    assert.equal(res.status, 422, res.body);
    assert.ok(Array.isArray(res.json.detail), res.body);
    return res.json.detail;
}
const findErr = (d, loc) => d.find((e) => JSON.stringify(e.loc) === JSON.stringify(loc));

async function retain(id, items, extra = {}) {
    const r = await a('POST', `${bank(id)}/memories`, { items, ...extra });
    assert.equal(r.status, 200, r.body);
    return r.json;
}
async function recall(id, query, extra = {}, who = a) {
    const r = await who('POST', `${bank(id)}/memories/recall`, { query, ...extra });
    assert.equal(r.status, 200, r.body);
    return r.json;
}

const facts = [
    { content: 'Alice works at Google in Zurich as a site reliability engineer.', timestamp: '2024-03-01T09:00:00Z', tags: ['user:alice'] },
    { content: 'Bob adopted a beagle named Pixel last spring.', timestamp: '2024-03-02T09:00:00Z', tags: ['user:bob'] },
    { content: 'Carol is allergic to peanuts and shellfish.', timestamp: '2024-03-03T09:00:00Z', tags: ['user:carol', 'health'] },
    { content: 'The quarterly planning meeting moved to Thursday.', timestamp: '2024-03-04T09:00:00Z' },
];

test('sync retain creates the bank lazily and answers RetainResponse with usage', async () => {
    const id = uniqueName('rr');
    const res = await retain(id, facts);
    assert.equal(res.success, true);
    assert.equal(res.bank_id, id);
    assert.equal(res.items_count, 4);
    assert.equal(res.async, false);
    assert.deepEqual(Object.keys(res.usage).sort(), ['cached_tokens', 'input_tokens', 'output_tokens', 'thoughts_tokens', 'total_tokens']);
    assert.equal('operation_id' in res, false);
    const p = await a('GET', `${bank(id)}/profile`);
    assert.equal(p.status, 200, p.body);
    assert.equal(p.json.name, id);
});

test('recall finds the right fact first, with scores, entities on by default, nulls dropped', async () => {
    const id = uniqueName('rr');
    await retain(id, facts);
    const res = await recall(id, 'Where does Alice work?');
    assert.ok(res.results.length >= 1, JSON.stringify(res));
    const top = res.results[0];
    assert.match(top.text, /Alice works at Google/);
    assert.equal(top.type, 'world');
    assert.ok(top.entities.includes('Alice') && top.entities.includes('Google'), JSON.stringify(top));
    assert.match(top.mentioned_at, ISO);
    assert.deepEqual(top.tags, ['user:alice']);
    assert.equal(typeof top.scores.final, 'number');
    assert.equal(typeof top.scores.semantic, 'number');
    assert.equal(typeof top.scores.keyword, 'number');
    assert.ok(res.entities && res.entities.Alice, JSON.stringify(res.entities));
    assert.equal(res.entities.Alice.canonical_name, 'Alice');
    assert.deepEqual(res.entities.Alice.observations, []);
    assert.equal('trace' in res, false);
    assert.equal('chunks' in res, false);
    assert.equal('context' in top, false); // no context: dropped, not null
    for (let i = 1; i < res.results.length; i++) {
        assert.ok(res.results[i - 1].scores.final >= res.results[i].scores.final);
    }
});

test('include: entities null turns them off, chunks on, trace on', async () => {
    const id = uniqueName('rr');
    await retain(id, facts);
    let res = await recall(id, 'peanut allergy', { include: { entities: null } });
    assert.equal('entities' in res, false);
    res = await recall(id, 'peanut allergy', { include: { chunks: { max_tokens: 5 } }, trace: true });
    const top = res.results[0];
    assert.match(top.text, /peanuts/);
    assert.ok(top.chunk_id, JSON.stringify(top));
    const ch = res.chunks[top.chunk_id];
    assert.equal(ch.id, top.chunk_id);
    assert.equal(typeof ch.chunk_index, 'number');
    assert.equal(ch.truncated, true, JSON.stringify(res.chunks)); // 5 tokens cannot hold it
    assert.ok(res.trace && typeof res.trace.total_ms === 'number', JSON.stringify(res.trace));
    assert.ok(Array.isArray(res.trace.candidates));
    assert.ok(res.trace.retrieval.semantic && res.trace.retrieval.keyword);
});

test('types, tags/tags_match and tag_groups filter', async () => {
    const id = uniqueName('rr');
    await retain(id, facts);
    let res = await recall(id, 'Alice Google Zurich', { types: ['experience'] });
    assert.deepEqual(res.results, []);
    res = await recall(id, 'Alice Google Zurich', { types: ['opinion'] });
    assert.deepEqual(res.results, []);
    // any_strict: only units carrying user:bob
    res = await recall(id, 'Alice Google beagle peanuts meeting', { tags: ['user:bob'], tags_match: 'any_strict', budget: 'high' });
    assert.ok(res.results.length >= 1);
    for (const r of res.results) assert.deepEqual(r.tags, ['user:bob']);
    // any (default) includes untagged units too, but never another tag
    res = await recall(id, 'Alice Google beagle peanuts meeting Thursday', { tags: ['user:bob'] });
    for (const r of res.results) assert.ok(r.tags.length === 0 || r.tags.includes('user:bob'), JSON.stringify(r));
    assert.ok(res.results.some((r) => r.tags.length === 0));
    // tag_groups: health AND NOT user:bob
    res = await recall(id, 'Alice Google beagle peanuts meeting', {
        tag_groups: [{ tags: ['health'] }, { not: { tags: ['user:bob'] } }],
    });
    assert.ok(res.results.length >= 1);
    for (const r of res.results) assert.ok(r.tags.includes('health'), JSON.stringify(r));
});

test('document upsert: retaining the same document_id replaces its facts', async () => {
    const id = uniqueName('rr');
    await retain(id, [{ content: 'Dana drives a red Volvo.', document_id: 'car' }]);
    let res = await recall(id, 'What car does Dana drive?');
    assert.match(res.results[0].text, /red Volvo/);
    assert.equal(res.results[0].document_id, 'car');
    await retain(id, [{ content: 'Dana drives a blue Tesla.', document_id: 'car' }]);
    res = await recall(id, 'What car does Dana drive?', { budget: 'high' });
    assert.ok(res.results.some((r) => /blue Tesla/.test(r.text)));
    assert.ok(!res.results.some((r) => /red Volvo/.test(r.text)), JSON.stringify(res.results));
});

test('timestamps: relative dates resolve against the item timestamp; "unset" stores no date', async () => {
    const id = uniqueName('rr');
    await retain(id, [
        { content: 'Erin flew to Lisbon yesterday.', timestamp: '2024-05-10T15:00:00Z' },
        { content: 'The Iliad is an epic poem attributed to Homer.', timestamp: 'unset' },
    ]);
    let res = await recall(id, 'Erin Lisbon flight');
    const erin = res.results.find((r) => /Erin/.test(r.text));
    assert.ok(erin.occurred_start.startsWith('2024-05-09T00:00:00'), erin.occurred_start);
    res = await recall(id, 'Homer Iliad epic poem');
    const iliad = res.results.find((r) => /Iliad/.test(r.text));
    assert.equal('mentioned_at' in iliad, false, JSON.stringify(iliad));
    assert.equal('occurred_start' in iliad, false);
});

test('async retain returns an operation that completes; the facts are then recallable', async () => {
    const id = uniqueName('rr');
    const res = await retain(id, facts, { async: true });
    assert.equal(res.async, true);
    assert.match(res.operation_id, /^[0-9a-f-]{36}$/);
    assert.ok(Array.isArray(res.operation_ids) && res.operation_ids.length >= 1);
    assert.equal('usage' in res, false);
    await waitFor(async () => {
        const op = await a('GET', `${bank(id)}/operations/${res.operation_id}`);
        return op.status === 200 && op.json.status === 'completed';
    }, { timeoutMs: 15000, what: 'async retain completed' });
    const r = await recall(id, 'beagle named Pixel');
    assert.match(r.results[0].text, /Pixel/);
});

test('async retain operation_id is idempotent; another payload with it is 409', async () => {
    const id = uniqueName('rr');
    const opId = '6f1c2a9e-2b7d-4c43-9a51-0d2f6b1e7c11';
    const first = await retain(id, facts.slice(0, 2), { async: true, operation_id: opId });
    assert.equal(first.operation_id, opId);
    const again = await retain(id, facts.slice(0, 2), { async: true, operation_id: opId });
    assert.equal(again.operation_id, opId);
    const other = await a('POST', `${bank(id)}/memories`, { items: facts.slice(2), async: true, operation_id: opId });
    assert.equal(other.status, 409, other.body);
    assert.equal(typeof other.json.detail, 'string');
    // items without timestamps ("now") re-sent later are still the same payload
    const op2 = '0b9d6c1e-5a4f-4e2b-8c7d-3e1f2a4b5c6d';
    const plain = [{ content: 'Frank prefers tea over coffee.' }];
    const p1 = await retain(id, plain, { async: true, operation_id: op2 });
    await new Promise((r) => setTimeout(r, 20));
    const p2 = await retain(id, plain, { async: true, operation_id: op2 });
    assert.equal(p2.operation_id, p1.operation_id);
    const bad = await a('POST', `${bank(id)}/memories`, { items: facts, async: true, operation_id: 'not-a-uuid' });
    assert.equal(bad.status, 400, bad.body);
});

test('unknown bank recalls an empty result; another workspace never sees the bank', async () => {
    const id = uniqueName('rr');
    let res = await recall(id, 'anything');
    assert.deepEqual(res.results, []);
    await retain(id, facts);
    res = await recall(id, 'Where does Alice work?', {}, b);
    assert.deepEqual(res.results, []);
    assert.deepEqual(res.entities ?? {}, {});
});

test('retain validation: pydantic-style 422s with precise locations, nothing written', async () => {
    const id = uniqueName('rr');
    let d = validation(await a('POST', `${bank(id)}/memories`, {}));
    assert.ok(findErr(d, ['body', 'items']));
    assert.equal(findErr(d, ['body', 'items']).type, 'missing');
    d = validation(await a('POST', `${bank(id)}/memories`, { items: [] }));
    assert.equal(findErr(d, ['body', 'items']).type, 'too_short');
    d = validation(await a('POST', `${bank(id)}/memories`, { items: 'x' }));
    assert.equal(findErr(d, ['body', 'items']).type, 'list_type');
    d = validation(await a('POST', `${bank(id)}/memories`, {
        items: [{ content: 'ok' }, { context: 'no content' }, { content: 5 }, 7,
            { content: 'x', tags: ['a', 3], metadata: { k: 1 }, update_mode: 'merge', timestamp: 'soon' }],
    }));
    assert.equal(findErr(d, ['body', 'items', 1, 'content']).type, 'missing');
    assert.equal(findErr(d, ['body', 'items', 2, 'content']).type, 'string_type');
    assert.equal(findErr(d, ['body', 'items', 3]).type, 'model_attributes_type');
    assert.equal(findErr(d, ['body', 'items', 4, 'tags', 1]).type, 'string_type');
    assert.equal(findErr(d, ['body', 'items', 4, 'metadata', 'k']).type, 'string_type');
    assert.equal(findErr(d, ['body', 'items', 4, 'update_mode']).type, 'literal_error');
    assert.equal(findErr(d, ['body', 'items', 4, 'timestamp']).type, 'value_error');
    d = validation(await a('POST', `${bank(id)}/memories`, { items: [{ content: 'x' }], async: 'maybe' }));
    assert.equal(findErr(d, ['body', 'async']).type, 'bool_parsing');
    let r = await a('POST', `${bank(id)}/memories`, '{"items": [');
    assert.equal(validation(r)[0].type, 'json_invalid');
    // nothing was written by any of the refused requests: the bank does not even exist
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.status, 404, r.body);
    r = await call(null, 'POST', `${bank(id)}/memories`, { items: [{ content: 'x' }] });
    assert.equal(r.status, 401, r.body);
});

test('recall validation: 422 shapes, 400 for a query over 500 tokens, bad enums', async () => {
    const id = uniqueName('rr');
    let d = validation(await a('POST', `${bank(id)}/memories/recall`, {}));
    assert.equal(findErr(d, ['body', 'query']).type, 'missing');
    d = validation(await a('POST', `${bank(id)}/memories/recall`, { query: 3 }));
    assert.equal(findErr(d, ['body', 'query']).type, 'string_type');
    d = validation(await a('POST', `${bank(id)}/memories/recall`, { query: 'q', budget: 'huge', tags_match: 'some' }));
    assert.equal(findErr(d, ['body', 'budget']).type, 'literal_error');
    assert.equal(findErr(d, ['body', 'tags_match']).type, 'literal_error');
    d = validation(await a('POST', `${bank(id)}/memories/recall`, { query: 'q', max_tokens: 'lots', trace: 'x' }));
    assert.ok(findErr(d, ['body', 'max_tokens']));
    assert.ok(findErr(d, ['body', 'trace']));
    d = validation(await a('POST', `${bank(id)}/memories/recall`, {
        query: 'q', temporal_window: { start: 'yesterday' }, min_scores: { final: 'high' }, query_timestamp: 'noon',
    }));
    assert.ok(findErr(d, ['body', 'temporal_window', 'start']));
    assert.equal(findErr(d, ['body', 'temporal_window', 'end']).type, 'missing');
    assert.equal(findErr(d, ['body', 'min_scores', 'final']).type, 'float_type');
    assert.ok(findErr(d, ['body', 'query_timestamp']));
    d = validation(await a('POST', `${bank(id)}/memories/recall`, { query: 'q', tag_groups: [{ nope: 1 }] }));
    assert.equal(findErr(d, ['body', 'tag_groups']).type, 'value_error');
    let r = await a('POST', `${bank(id)}/memories/recall`, { query: 'word '.repeat(600) });
    assert.equal(r.status, 400, r.body);
    assert.match(r.json.detail, /Query too long/);
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'q', types: ['feelings'] });
    assert.equal(r.status, 400, r.body);
    assert.match(r.json.detail, /feelings/);
});

test('min_scores.final and max_tokens cut the results', async () => {
    const id = uniqueName('rr');
    await retain(id, facts);
    let res = await recall(id, 'Alice Google Zurich engineer', { min_scores: { final: 0.99 } });
    for (const r of res.results) assert.ok(r.scores.final >= 0.99, JSON.stringify(r));
    res = await recall(id, 'Alice Google Zurich engineer', { max_tokens: 1 });
    assert.deepEqual(res.results, []); // the first fact does not fit: nothing follows it
    res = await recall(id, 'Alice Google Zurich engineer', { max_tokens: 14 });
    assert.equal(res.results.length, 1, JSON.stringify(res.results));
});

test('an oversize retain body is 413 in Hindsight\'s error shape and writes nothing', async () => {
    const id = uniqueName('rr');
    const big = { items: [{ content: 'x'.repeat(10 * 1024 * 1024 + 16) }] };
    const r = await a('POST', `${bank(id)}/memories`, big);
    assert.equal(r.status, 413, r.body.slice(0, 200));
    assert.match(r.json.detail, /exceeds the limit/);
    const p = await a('GET', `${bank(id)}/profile`);
    assert.equal(p.status, 404, p.body);
});
