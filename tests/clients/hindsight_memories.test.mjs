// The Hindsight face's memory, document, entity, stats and operation routes driven by the real
// TypeScript SDK (@vectorize-io/hindsight-client 0.9.1): the client's own methods (listMemories,
// listDocuments, getDocument → null on 404, updateDocument, deleteDocument) and its generated
// low-level functions for the rest, so that what the SDK parses is what engram answers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HindsightClient, HindsightError, sdk } from '@vectorize-io/hindsight-client';
import { startEngram, workspaceWithKey, uniqueName, waitFor } from '../integration/harness.mjs';

let srv;
let A; // {ws, key}
let hc;

before(async () => {
    A = await workspaceWithKey('hsSdkMem');
    srv = await startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } });
    hc = new HindsightClient({ baseUrl: `${srv.url}/hindsight`, apiKey: A.key });
});

after(async () => {
    await srv?.stop();
});

// A bank with two documents.
async function seeded() {
    const id = uniqueName('sdkmem');
    await hc.retainBatch(id, [
        { content: 'Alice works at Google in Zurich.', context: 'work', document_id: 'doc-1', tags: ['team'], timestamp: '2024-06-01T10:00:00Z' },
        { content: 'Bob hikes in the Alps with Alice.', document_id: 'doc-2', timestamp: '2024-06-02T10:00:00Z' },
    ]);
    return id;
}

const data = (r) => {
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    return r.data;
};

test('listMemories: items, filters, paging', async () => {
    const id = await seeded();
    let r = await hc.listMemories(id);
    assert.equal(r.total, 2);
    assert.equal(r.items[0].text, 'Bob hikes in the Alps with Alice.');
    assert.equal(r.items[1].entities, 'Alice, Google, Zurich');
    r = await hc.listMemories(id, { q: 'zurich', limit: 5 });
    assert.equal(r.total, 1);
    assert.equal(r.limit, 5);
    r = await hc.listMemories(id, { documentId: 'doc-2' });
    assert.equal(r.items.length, 1);
    r = await hc.listMemories(id, { state: 'invalidated' });
    assert.equal(r.total, 0);
    r = await hc.listMemories(uniqueName('none'));
    assert.equal(r.total, 0, 'an unknown bank lists nothing');
    await assert.rejects(hc.listMemories(id, { state: 'gone' }), (e) => e instanceof HindsightError && e.statusCode === 400);
});

test('getMemory / updateMemory / history through the generated client', async () => {
    const id = await seeded();
    const [u] = (await hc.listMemories(id, { documentId: 'doc-1' })).items;
    const path = { bank_id: id, memory_id: u.id };
    let m = data(await sdk.getMemory({ client: hc.client, path }));
    assert.deepEqual(m.entities, ['Alice', 'Google', 'Zurich']);
    m = data(await sdk.updateMemory({ client: hc.client, path, body: { state: 'invalidated', reason: 'moved on' } }));
    assert.equal(m.state, 'invalidated');
    assert.equal(m.invalidation_reason, 'moved on');
    assert.equal((await hc.listMemories(id)).total, 1);
    m = data(await sdk.updateMemory({ client: hc.client, path, body: { state: 'valid', text: 'Alice works at Google in Basel.' } }));
    assert.equal(m.text, 'Alice works at Google in Basel.');
    assert.deepEqual(data(await sdk.getObservationHistory({ client: hc.client, path })), []);
    const missing = await sdk.getMemory({ client: hc.client, path: { bank_id: id, memory_id: '4b9e4d4e-1111-4222-8333-944455556666' } });
    assert.equal(missing.response.status, 404);
});

test('documents: list, get (null when missing), update tags, delete, chunks', async () => {
    const id = await seeded();
    let r = await hc.listDocuments(id, { limit: 10 });
    assert.equal(r.total, 2);
    assert.deepEqual(r.items.map((d) => d.id).sort(), ['doc-1', 'doc-2']);
    const d = await hc.getDocument(id, 'doc-1');
    assert.equal(d.original_text, 'Alice works at Google in Zurich.');
    assert.deepEqual(d.tags, ['team']);
    assert.equal(await hc.getDocument(id, 'nope'), null);
    assert.deepEqual(await hc.updateDocument(id, 'doc-1', { tags: ['a', 'b'] }), { success: true });
    assert.deepEqual((await hc.getDocument(id, 'doc-1')).tags, ['a', 'b']);
    const chunks = data(await sdk.listDocumentChunks({ client: hc.client, path: { bank_id: id, document_id: 'doc-1' } }));
    assert.equal(chunks.total, 1);
    const c = data(await sdk.getChunk({ client: hc.client, path: { chunk_id: chunks.items[0].chunk_id } }));
    assert.equal(c.chunk_text, 'Alice works at Google in Zurich.');
    assert.equal(c.bank_id, id);
    await hc.deleteDocument(id, 'doc-1');
    assert.equal(await hc.getDocument(id, 'doc-1'), null);
    assert.equal((await hc.listMemories(id)).total, 1);
});

test('entities, graphs, tags, stats and the time series', async () => {
    const id = await seeded();
    const ents = data(await sdk.listEntities({ client: hc.client, path: { bank_id: id } }));
    assert.equal(ents.items[0].canonical_name, 'Alice');
    assert.equal(ents.items[0].mention_count, 2);
    const e = data(await sdk.getEntity({ client: hc.client, path: { bank_id: id, entity_id: ents.items[0].id } }));
    assert.deepEqual(e.observations, []);
    const eg = data(await sdk.getEntityGraph({ client: hc.client, path: { bank_id: id } }));
    assert.equal(eg.total_edges, 6);
    const g = data(await sdk.getGraph({ client: hc.client, path: { bank_id: id } }));
    assert.equal(g.total_units, 2);
    assert.equal(g.table_rows.length, 2);
    const tags = data(await sdk.listTags({ client: hc.client, path: { bank_id: id }, query: { q: 'te*' } }));
    assert.deepEqual(tags.items, [{ tag: 'team', count: 1 }]);
    const st = data(await sdk.getAgentStats({ client: hc.client, path: { bank_id: id } }));
    assert.equal(st.total_nodes, 2);
    assert.equal(st.total_documents, 2);
    const ts = data(await sdk.getMemoriesTimeseries({ client: hc.client, path: { bank_id: id }, query: { period: '1d' } }));
    assert.equal(ts.trunc, 'hour');
    assert.equal(ts.buckets.length, 24);
    const gone = await sdk.regenerateEntityObservations({ client: hc.client, path: { bank_id: id, entity_id: e.id } });
    assert.equal(gone.response.status, 410);
});

test('operations: an async retain is listed, read, and deleted once finished', async () => {
    const id = uniqueName('sdkops');
    const r = await hc.retain(id, 'Maria plants tomatoes every spring.', { async: true });
    const op = r.operation_id;
    await waitFor(async () => data(await sdk.getOperationStatus({ client: hc.client, path: { bank_id: id, operation_id: op } })).status === 'completed',
        { timeoutMs: 20000, what: 'the operation' });
    // type=retain: the retain also queued a consolidation run (observations are on by default).
    const list = data(await sdk.listOperations({ client: hc.client, path: { bank_id: id }, query: { type: 'retain' } }));
    assert.equal(list.total, 1);
    assert.equal(list.operations[0].id, op);
    assert.equal(list.operations[0].task_type, 'retain');
    const cancel = await sdk.cancelOperation({ client: hc.client, path: { bank_id: id, operation_id: op } });
    assert.equal(cancel.response.status, 409);
    const del = data(await sdk.deleteOperation({ client: hc.client, path: { bank_id: id, operation_id: op } }));
    assert.equal(del.success, true);
    const st = data(await sdk.getOperationStatus({ client: hc.client, path: { bank_id: id, operation_id: op } }));
    assert.equal(st.status, 'not_found');
});
