// Hindsight face: documents (list, get, PATCH tags, DELETE cascading, chunks), chunks by id alone,
// and a bank's operations (list with filters, get with children and payload, cancel / retry /
// delete refused in the wrong state, unknown and malformed ids). Data goes in through
// POST B/memories; bad inputs and another workspace's bank are checked on every route.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, supervisedEngram, waitFor } from './harness.mjs';
import { P, bank, caller, ISO, UUID } from './hindsight_http.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('hsdA'), workspaceWithKey('hsdB')]);
});

const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);
const MISSING = '4b9e4d4e-1111-4222-8333-944455556666';

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

// Three documents, written one after the other (so listed newest first: notes, trip, a_b).
async function seeded(id = uniqueName('doc_bank')) {
    const docs = [
        { content: 'Alice works at Google in Zurich. Alice likes green tea.', document_id: 'a_b', tags: ['team'], context: 'work', timestamp: '2024-06-01T10:00:00Z' },
        { content: 'Bob hikes in the Alps.', document_id: 'trip', tags: ['user:2'] },
        { content: 'Carol repairs old bicycles.', document_id: 'notes' },
    ];
    for (const d of docs) ok(await a('POST', `${bank(id)}/memories`, { items: [d] }));
    return id;
}

test('documents: list shape, newest first, q, tags, paging', async () => {
    const id = await seeded();
    let r = ok(await a('GET', `${bank(id)}/documents`));
    assert.equal(r.total, 3);
    assert.equal(r.limit, 100);
    assert.equal(r.offset, 0);
    assert.deepEqual(r.items.map((d) => d.id), ['notes', 'trip', 'a_b']);
    const d = r.items[2];
    assert.equal(d.bank_id, id);
    assert.match(d.content_hash, /^[0-9a-f]{64}$/);
    assert.match(d.created_at, ISO);
    assert.match(d.updated_at, ISO);
    assert.equal(d.memory_unit_count, 2);
    assert.deepEqual(d.tags, ['team']);
    assert.equal(d.text_length, 'Alice works at Google in Zurich. Alice likes green tea.'.length);
    assert.deepEqual(ok(await a('GET', `${bank(id)}/documents?q=TRI`)).items.map((x) => x.id), ['trip']);
    assert.equal(ok(await a('GET', `${bank(id)}/documents?q=zzz`)).total, 0);
    assert.deepEqual(ok(await a('GET', `${bank(id)}/documents?tags=team`)).items.map((x) => x.id), ['a_b'], 'any_strict by default');
    assert.equal(ok(await a('GET', `${bank(id)}/documents?tags=team&tags_match=any`)).total, 2, 'any keeps the untagged');
    r = ok(await a('GET', `${bank(id)}/documents?limit=1&offset=1`));
    assert.deepEqual(r.items.map((x) => x.id), ['trip']);
    assert.equal(r.total, 3);
    let v = validation(await a('GET', `${bank(id)}/documents?limit=-1&offset=x`));
    assert.equal(findErr(v, ['query', 'limit']).type, 'greater_than_equal');
    assert.equal(findErr(v, ['query', 'offset']).type, 'int_parsing');
    assert.match(detail(await a('GET', `${bank(id)}/documents?tags_match=most`), 400), /Invalid tags_match 'most'/);
    assert.equal(ok(await call(B.key, 'GET', `${bank(id)}/documents`)).total, 0, "another workspace's bank");
});

test('documents: get; original_text and content_hash present; 404s', async () => {
    const id = await seeded();
    const d = ok(await a('GET', `${bank(id)}/documents/a_b`));
    assert.equal(d.id, 'a_b');
    assert.equal(d.bank_id, id);
    assert.equal(d.original_text, 'Alice works at Google in Zurich. Alice likes green tea.');
    assert.match(d.content_hash, /^[0-9a-f]{64}$/);
    assert.equal(d.memory_unit_count, 2);
    assert.deepEqual(d.nodes_by_fact_type, { world: 2 });
    assert.deepEqual(d.tags, ['team']);
    assert.equal(d.retain_params.context, 'work');
    assert.equal(detail(await a('GET', `${bank(id)}/documents/nope`), 404), 'Document not found');
    assert.equal(detail(await call(B.key, 'GET', `${bank(id)}/documents/a_b`), 404), 'Document not found');
    assert.equal(detail(await a('GET', `${bank(uniqueName('none'))}/documents/a_b`), 404), 'Document not found');
});

test('documents: PATCH tags reaches the units; bad bodies; 404', async () => {
    const id = await seeded();
    assert.deepEqual(ok(await a('PATCH', `${bank(id)}/documents/a_b`, { tags: ['x', 'y'] })), { success: true });
    assert.deepEqual(ok(await a('GET', `${bank(id)}/documents/a_b`)).tags, ['x', 'y']);
    const units = ok(await a('GET', `${bank(id)}/memories/list?document_id=a_b`)).items;
    assert.equal(units.length, 2);
    for (const u of units) assert.deepEqual(u.tags, ['x', 'y']);
    assert.equal(ok(await a('GET', `${bank(id)}/memories/list?tags=team&tags_match=any_strict`)).total, 0);
    assert.deepEqual(ok(await a('PATCH', `${bank(id)}/documents/a_b`, { tags: [] })), { success: true });
    assert.deepEqual(ok(await a('GET', `${bank(id)}/documents/a_b`)).tags, []);

    assert.equal(detail(await a('PATCH', `${bank(id)}/documents/a_b`, {}), 422), 'At least one field (tags) must be provided');
    assert.equal(detail(await a('PATCH', `${bank(id)}/documents/a_b`, { tags: null }), 422), 'At least one field (tags) must be provided');
    let v = validation(await a('PATCH', `${bank(id)}/documents/a_b`, { tags: 'x' }));
    assert.equal(v[0].type, 'list_type');
    v = validation(await a('PATCH', `${bank(id)}/documents/a_b`, { tags: ['ok', 5] }));
    assert.deepEqual(v[0].loc, ['body', 'tags', 1]);
    assert.equal(v[0].type, 'string_type');
    validation(await a('PATCH', `${bank(id)}/documents/a_b`));
    assert.equal(detail(await a('PATCH', `${bank(id)}/documents/nope`, { tags: [] }), 404), 'Document not found');
    detail(await call(B.key, 'PATCH', `${bank(id)}/documents/a_b`, { tags: ['b'] }), 404);
    assert.deepEqual(ok(await a('GET', `${bank(id)}/documents/a_b`)).tags, [], "B's PATCH changed nothing");
});

test('documents: DELETE cascades to units and chunks', async () => {
    const id = await seeded();
    const chunk = `${id}_a_b_0`;
    ok(await a('GET', `${P}/v1/default/chunks/${encodeURIComponent(chunk)}`));
    detail(await call(B.key, 'DELETE', `${bank(id)}/documents/a_b`), 404);
    const r = ok(await a('DELETE', `${bank(id)}/documents/a_b`));
    assert.deepEqual(r, {
        success: true, message: "Document 'a_b' and 2 associated memory units deleted successfully",
        document_id: 'a_b', memory_units_deleted: 2,
    });
    detail(await a('GET', `${bank(id)}/documents/a_b`), 404);
    detail(await a('DELETE', `${bank(id)}/documents/a_b`), 404);
    assert.equal(ok(await a('GET', `${bank(id)}/memories/list?document_id=a_b`)).total, 0);
    assert.equal(ok(await a('GET', `${bank(id)}/memories/list`)).total, 2);
    assert.equal(ok(await a('GET', `${bank(id)}/documents`)).total, 2);
    detail(await a('GET', `${P}/v1/default/chunks/${encodeURIComponent(chunk)}`), 404);
    assert.equal(ok(await a('GET', `${bank(id)}/entities`)).items.find((e) => e.canonical_name === 'Google'), undefined,
        'entities only the document mentioned go with it');
});

test('chunks of a document; a chunk by id alone (bank ids with "_" too)', async () => {
    const id = await seeded();
    // A bank whose id is a prefix of the first one up to a '_': the longest existing one wins.
    const shorter = id.slice(0, id.indexOf('_'));
    ok(await a('POST', `${bank(shorter)}/memories`, { items: [{ content: 'Dan paints houses.', document_id: 'x' }] }));
    let r = ok(await a('GET', `${bank(id)}/documents/a_b/chunks`));
    assert.equal(r.total, 1);
    assert.deepEqual(r.items[0], {
        chunk_id: `${id}_a_b_0`, document_id: 'a_b', bank_id: id, chunk_index: 0,
        chunk_text: 'Alice works at Google in Zurich. Alice likes green tea.', created_at: r.items[0].created_at,
    });
    assert.match(r.items[0].created_at, ISO);
    r = ok(await a('GET', `${bank(id)}/documents/a_b/chunks?limit=1&offset=1`));
    assert.deepEqual(r.items, []);
    assert.equal(r.total, 1);
    assert.equal(r.limit, 1);
    let v = validation(await a('GET', `${bank(id)}/documents/a_b/chunks?limit=0`));
    assert.equal(v[0].type, 'greater_than_equal');
    v = validation(await a('GET', `${bank(id)}/documents/a_b/chunks?limit=1001&offset=-1`));
    assert.equal(findErr(v, ['query', 'limit']).type, 'less_than_equal');
    assert.equal(findErr(v, ['query', 'limit']).msg, 'Input should be less than or equal to 1000');
    assert.equal(findErr(v, ['query', 'offset']).type, 'greater_than_equal');
    assert.equal(detail(await a('GET', `${bank(id)}/documents/nope/chunks`), 404), 'Document not found');

    const c = ok(await a('GET', `${P}/v1/default/chunks/${encodeURIComponent(`${id}_a_b_0`)}`));
    assert.equal(c.bank_id, id);
    assert.equal(c.document_id, 'a_b');
    assert.equal(c.chunk_index, 0);
    const x = ok(await a('GET', `${P}/v1/default/chunks/${encodeURIComponent(`${shorter}_x_0`)}`));
    assert.equal(x.bank_id, shorter);
    assert.equal(x.chunk_text, 'Dan paints houses.');
    for (const bad of [`${id}_a_b_7`, `${id}_nope_0`, 'nounderscore', 'a_b_c', `${id}_a_b_`]) {
        assert.equal(detail(await a('GET', `${P}/v1/default/chunks/${encodeURIComponent(bad)}`), 404), 'Chunk not found', bad);
    }
    detail(await call(B.key, 'GET', `${P}/v1/default/chunks/${encodeURIComponent(`${id}_a_b_0`)}`), 404);
    detail(await call(null, 'GET', `${P}/v1/default/chunks/${encodeURIComponent(`${id}_a_b_0`)}`), 401);
});

/* ---- operations ------------------------------------------------------------------------------ */

// An asynchronous retain big enough to be split into sub-batches: a parent with children.
async function asyncRetain(id) {
    const para = 'Maria plants tomatoes in the garden every spring and waters them at dawn. ';
    const items = [0, 1, 2].map((i) => ({ content: para.repeat(350), document_id: `big-${i}` }));
    ok(await a('PUT', bank(id), { enable_observations: false })); // only retain operations here
    const r = ok(await a('POST', `${bank(id)}/memories`, { items, async: true }));
    assert.match(r.operation_id, UUID);
    await waitFor(async () => ok(await a('GET', `${bank(id)}/operations/${r.operation_id}`)).status === 'completed',
        { timeoutMs: 30000, what: 'the async retain to complete' });
    return r;
}

test('operations: list, get with children and payload, filters', async () => {
    const id = uniqueName('ops');
    const r = await asyncRetain(id);
    const parent = r.operation_id;
    const op = ok(await a('GET', `${bank(id)}/operations/${parent}`));
    assert.equal(op.operation_id, parent);
    assert.equal(op.status, 'completed');
    assert.equal(op.operation_type, 'retain');
    assert.match(op.created_at, ISO);
    assert.match(op.updated_at, ISO);
    assert.match(op.completed_at, ISO);
    assert.equal(op.retry_count, 0);
    assert.ok(!('error_message' in op) && !('task_payload' in op));
    assert.ok(Array.isArray(op.child_operations) && op.child_operations.length >= 2, JSON.stringify(op));
    for (const c of op.child_operations) {
        assert.match(c.operation_id, UUID);
        assert.equal(c.status, 'completed');
        assert.equal(typeof c.sub_batch_index, 'number');
    }

    let l = ok(await a('GET', `${bank(id)}/operations`));
    assert.equal(l.bank_id, id);
    assert.equal(l.limit, 20);
    assert.equal(l.offset, 0);
    const n = op.child_operations.length + 1;
    assert.equal(l.total, n);
    assert.equal(l.operations.length, n);
    const item = l.operations.find((o) => o.id === parent);
    assert.equal(item.task_type, 'retain');
    assert.equal(item.status, 'completed');
    assert.equal(item.items_count, 3);
    assert.equal(item.error_message, null, 'error_message is required and nullable');
    assert.match(item.created_at, ISO);
    l = ok(await a('GET', `${bank(id)}/operations?exclude_parents=true`));
    assert.equal(l.total, n - 1);
    assert.ok(!l.operations.some((o) => o.id === parent));
    l = ok(await a('GET', `${bank(id)}/operations?limit=1&offset=1`));
    assert.equal(l.operations.length, 1);
    assert.equal(l.total, n);
    assert.equal(ok(await a('GET', `${bank(id)}/operations?status=completed&type=retain`)).total, n);
    assert.equal(ok(await a('GET', `${bank(id)}/operations?status=failed`)).total, 0);
    assert.equal(ok(await a('GET', `${bank(id)}/operations?status=bogus`)).total, 0);
    assert.equal(ok(await a('GET', `${bank(id)}/operations?type=consolidation`)).total, 0);
    const withPayload = ok(await a('GET', `${bank(id)}/operations/${op.child_operations[0].operation_id}?include_payload=true`));
    assert.equal(typeof withPayload.task_payload, 'object', JSON.stringify(withPayload));
    const st = ok(await a('GET', `${bank(id)}/stats`));
    assert.equal(st.operations_by_status.completed, n);
    assert.equal(st.pending_operations, 0);

    const v = validation(await a('GET', `${bank(id)}/operations?limit=0&offset=-1&exclude_parents=maybe`));
    assert.equal(findErr(v, ['query', 'limit']).type, 'greater_than_equal');
    assert.equal(findErr(v, ['query', 'offset']).type, 'greater_than_equal');
    assert.equal(findErr(v, ['query', 'exclude_parents']).type, 'bool_parsing');
    assert.equal(findErr(validation(await a('GET', `${bank(id)}/operations?limit=101`)), ['query', 'limit']).type, 'less_than_equal');
    assert.equal(validation(await a('GET', `${bank(id)}/operations/${parent}?include_payload=2`))[0].type, 'bool_parsing');

    // Another workspace's bank of the same id has none of them.
    assert.equal(ok(await call(B.key, 'GET', `${bank(id)}/operations`)).total, 0);
    assert.deepEqual(ok(await call(B.key, 'GET', `${bank(id)}/operations/${parent}`)), { operation_id: parent, status: 'not_found' });
});

test('operations: unknown ids, malformed ids, and moves in the wrong state', async () => {
    const id = uniqueName('ops');
    const r = await asyncRetain(id);
    const op = r.operation_id;
    assert.deepEqual(ok(await a('GET', `${bank(id)}/operations/${MISSING}`)), { operation_id: MISSING, status: 'not_found' });
    for (const [m, suffix] of [['GET', ''], ['DELETE', ''], ['POST', '/retry'], ['DELETE', '/delete']]) {
        assert.equal(detail(await a(m, `${bank(id)}/operations/not-a-uuid${suffix}`), 400), 'Invalid operation_id format: not-a-uuid');
        if (m !== 'GET') assert.equal(detail(await a(m, `${bank(id)}/operations/${MISSING}${suffix}`), 404), `Operation ${MISSING} not found`);
    }
    assert.match(detail(await a('DELETE', `${bank(id)}/operations/${op}`), 409), /is completed; only a pending operation can be cancelled/);
    assert.match(detail(await a('POST', `${bank(id)}/operations/${op}/retry`), 409), /is completed; only a failed operation can be retried/);
    detail(await call(B.key, 'DELETE', `${bank(id)}/operations/${op}/delete`), 404);
    const d = ok(await a('DELETE', `${bank(id)}/operations/${op}/delete`));
    assert.deepEqual(d, { success: true, message: `Operation ${op} deleted`, operation_id: op });
    assert.deepEqual(ok(await a('GET', `${bank(id)}/operations/${op}`)), { operation_id: op, status: 'not_found' });
    detail(await a('DELETE', `${bank(id)}/operations/${op}/delete`), 404);
    const l = ok(await a('GET', `${bank(id)}/operations`));
    assert.ok(!l.operations.some((o) => o.id === op));
});
