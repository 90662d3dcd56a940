// The Hindsight face driven by the real TypeScript SDK (@vectorize-io/hindsight-client 0.9.1):
// version, bank create/profile/mission/config/list/delete, errors as HindsightError, and the SDK
// without an apiKey against ENGRAM_ANONYMOUS_WORKSPACE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HindsightClient, HindsightError, sdk } from '@vectorize-io/hindsight-client';
import { startEngram, workspaceWithKey, createWorkspace, uniqueName, waitFor } from '../integration/harness.mjs';

let srv; // engramd with anonymous access to one workspace
let A; // {ws, key}
let anonWs;
let hc; // SDK client with A's key

before(async () => {
    A = await workspaceWithKey('hsSdk');
    anonWs = await createWorkspace(uniqueName('hsAnon'));
    srv = await startEngram({ env: { ENGRAM_ACCESS_LOG: 'off', ENGRAM_ANONYMOUS_WORKSPACE: anonWs.name } });
    hc = new HindsightClient({ baseUrl: `${srv.url}/hindsight`, apiKey: A.key });
});

after(async () => {
    await srv?.stop();
});

test('getVersion', async () => {
    const v = await hc.getVersion();
    assert.equal(v.api_version, '0.9.1');
    assert.equal(v.features.bank_config_api, true);
});

test('createBank + getBankProfile round-trip name and background', async () => {
    const id = uniqueName('sdk');
    const created = await hc.createBank(id, { name: 'Alice', background: 'I am a helpful assistant' });
    assert.equal(created.bank_id, id);
    const p = await hc.getBankProfile(id);
    assert.equal(p.name, 'Alice');
    assert.equal(p.background, 'I am a helpful assistant');
    assert.equal(p.mission, 'I am a helpful assistant');
    assert.deepEqual(p.disposition, { skepticism: 3, literalism: 3, empathy: 3 });
});

test('createBank with disposition and config fields; setMission', async () => {
    const id = uniqueName('sdk');
    const p = await hc.createBank(id, {
        disposition: { skepticism: 5, literalism: 4, empathy: 1 }, retainMission: 'tech only', enableObservations: false,
    });
    assert.deepEqual(p.disposition, { skepticism: 5, literalism: 4, empathy: 1 });
    const m = await hc.setMission(id, 'Keep notes short');
    assert.equal(m.mission, 'Keep notes short');
    const cfg = await hc.getBankConfig(id);
    assert.equal(cfg.bank_id, id);
    assert.equal(cfg.config.retain_mission, 'tech only');
    assert.equal(cfg.config.enable_observations, false);
    assert.equal(cfg.config.reflect_mission, 'Keep notes short');
});

test('updateBankConfig / resetBankConfig', async () => {
    const id = uniqueName('sdk');
    await hc.createBank(id);
    let cfg = await hc.updateBankConfig(id, { retainChunkSize: 1500, enableReranking: false, dispositionEmpathy: 2 });
    assert.equal(cfg.overrides.retain_chunk_size, 1500);
    assert.equal(cfg.config.enable_reranking, false);
    assert.equal((await hc.getBankProfile(id)).disposition.empathy, 2);
    cfg = await hc.resetBankConfig(id);
    assert.deepEqual(cfg.overrides, {});
    assert.equal(cfg.config.retain_chunk_size, 3000);
});

test('listBanks (generated SDK call) and deleteBank', async () => {
    const tag = uniqueName('sdkl').toLowerCase();
    await hc.createBank(`${tag}-a`, { name: 'First' });
    await hc.createBank(`${tag}-b`, { name: 'Second' });
    const r = await sdk.listBanks({ client: hc.client, query: { q: tag } });
    assert.equal(r.error, undefined, JSON.stringify(r.error));
    assert.equal(r.data.total, 2);
    assert.deepEqual(r.data.banks.map((b) => b.bank_id).sort(), [`${tag}-a`, `${tag}-b`]);
    await hc.deleteBank(`${tag}-a`);
    const after = await sdk.listBanks({ client: hc.client, query: { q: tag } });
    assert.deepEqual(after.data.banks.map((b) => b.bank_id), [`${tag}-b`]);
});

test('a missing bank raises HindsightError with status 404 and the detail', async () => {
    const id = uniqueName('nobank');
    await assert.rejects(hc.getBankProfile(id), (e) => {
        assert.ok(e instanceof HindsightError, String(e));
        assert.equal(e.statusCode ?? e.status, 404);
        assert.match(JSON.stringify(e.details ?? e.message), /not found/);
        return true;
    });
});

test('a wrong key is refused (401)', async () => {
    const bad = new HindsightClient({ baseUrl: `${srv.url}/hindsight`, apiKey: 'sk_nope' });
    await assert.rejects(bad.getBankProfile('x'), (e) => {
        assert.equal(e.statusCode ?? e.status, 401);
        return true;
    });
});

test('without apiKey the SDK works on the anonymous workspace, isolated from keyed ones', async () => {
    const anon = new HindsightClient({ baseUrl: `${srv.url}/hindsight` });
    const id = uniqueName('anon');
    await waitFor(async () => {
        try { await anon.createBank(id, { name: 'anon' }); return true; } catch { return false; }
    }, { timeoutMs: 5000, what: 'anonymous workspace resolved' });
    assert.equal((await anon.getBankProfile(id)).name, 'anon');
    await assert.rejects(hc.getBankProfile(id), (e) => (e.statusCode ?? e.status) === 404);
    await anon.deleteBank(id);
});

// ---- the memory path through the SDK: retain, recall, list, documents, entities, operations ----

const sdkFacts = [
    { content: 'Alice works at Google in Zurich as a site reliability engineer.', timestamp: '2024-03-01T09:00:00Z', tags: ['user:alice'], document_id: 'profile-alice' },
    { content: 'Bob adopted a beagle named Pixel.', timestamp: new Date('2024-03-02T09:00:00Z'), tags: ['user:bob'], context: 'chat with Bob' },
    { content: 'Carol is allergic to peanuts.', timestamp: '2024-03-03T09:00:00Z', tags: ['user:carol'] },
];

test('retain (single) and retainBatch with tags, timestamps and document ids; recall finds them', async () => {
    const id = uniqueName('sdkmem');
    const one = await hc.retain(id, 'Dana drives a red Volvo.', { timestamp: '2024-02-01T10:00:00Z', documentId: 'car', tags: ['user:dana'], context: 'garage' });
    assert.equal(one.success, true);
    assert.equal(one.items_count, 1);
    const batch = await hc.retainBatch(id, sdkFacts);
    assert.equal(batch.items_count, 3);
    assert.equal(batch.async, false);

    const r = await hc.recall(id, 'What car does Dana drive?');
    assert.match(r.results[0].text, /red Volvo/);
    assert.equal(r.results[0].document_id, 'car');
    assert.equal(r.results[0].context, 'garage');
    assert.deepEqual(r.results[0].tags, ['user:dana']);
    assert.ok(r.entities && r.entities.Dana, JSON.stringify(r.entities)); // entities on by default

    const noEnt = await hc.recall(id, 'beagle', { includeEntities: false, budget: 'low' });
    assert.equal(noEnt.entities, undefined);
    assert.match(noEnt.results[0].text, /Pixel/);

    const chunks = await hc.recall(id, 'peanuts', { includeChunks: true, maxChunkTokens: 1000, trace: true, budget: 'high' });
    const top = chunks.results[0];
    assert.match(top.text, /peanuts/);
    assert.ok(chunks.chunks[top.chunk_id], JSON.stringify(chunks.chunks));
    assert.ok(chunks.trace);

    const typed = await hc.recall(id, 'Alice Google', { types: ['experience'] });
    assert.deepEqual(typed.results, []);
    const tagged = await hc.recall(id, 'Alice Google beagle peanuts Volvo', { tags: ['user:carol'], tagsMatch: 'any_strict' });
    assert.ok(tagged.results.length >= 1);
    for (const x of tagged.results) assert.deepEqual(x.tags, ['user:carol']);
});

test('async retain through the SDK completes as an operation', async () => {
    const id = uniqueName('sdkasync');
    const res = await hc.retainBatch(id, sdkFacts, { async: true });
    assert.equal(res.async, true);
    assert.ok(res.operation_id);
    await waitFor(async () => {
        const op = await sdk.getOperationStatus({ client: hc.client, path: { bank_id: id, operation_id: res.operation_id } });
        return op.data?.status === 'completed';
    }, { timeoutMs: 15000, what: 'operation completed' });
    const ops = await sdk.listOperations({ client: hc.client, path: { bank_id: id } });
    assert.ok(ops.data.operations.some((o) => o.id === res.operation_id), JSON.stringify(ops.data));
    const r = await hc.recall(id, 'Who adopted a beagle?');
    assert.match(r.results[0].text, /Bob adopted/);
});

test('listMemories, documents, entities and bank stats through the SDK; deleteBank empties it', async () => {
    const id = uniqueName('sdklist');
    await hc.retainBatch(id, sdkFacts);
    const list = await hc.listMemories(id, { limit: 10 });
    assert.equal(list.total, 3);
    assert.equal(list.items.length, 3);
    assert.equal(typeof list.items[0].entities, 'string'); // one comma-joined string, as Hindsight
    const byDoc = await hc.listMemories(id, { documentId: 'profile-alice' });
    assert.equal(byDoc.total, 1);
    assert.match(byDoc.items[0].text, /Alice/);

    const docs = await hc.listDocuments(id);
    assert.ok(docs.items.some((d) => d.id === 'profile-alice'), JSON.stringify(docs));
    const doc = await hc.getDocument(id, 'profile-alice');
    assert.equal(doc.id, 'profile-alice');
    assert.equal(doc.memory_unit_count, 1);
    assert.equal(await hc.getDocument(id, 'no-such-document'), null);

    const ents = await sdk.listEntities({ client: hc.client, path: { bank_id: id } });
    assert.ok(ents.data.items.some((e) => e.canonical_name === 'Alice'), JSON.stringify(ents.data));
    const stats = await sdk.getAgentStats({ client: hc.client, path: { bank_id: id } });
    assert.equal(stats.data.bank_id, id);
    assert.equal(stats.data.total_nodes, 3);
    assert.equal(stats.data.total_documents, 2); // profile-alice, and one generated for the batch's other items

    await hc.deleteDocument(id, 'profile-alice');
    assert.equal((await hc.listMemories(id)).total, 2);
    await hc.deleteBank(id);
    const after = await hc.listMemories(id);
    assert.equal(after.total, 0);
    const r = await hc.recall(id, 'Alice');
    assert.deepEqual(r.results, []);
});
