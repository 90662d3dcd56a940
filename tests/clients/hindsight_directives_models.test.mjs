// Directives and mental models driven by the real TypeScript SDK (@vectorize-io/hindsight-client
// 0.9.1): createDirective / listDirectives (tags) / getDirective / updateDirective /
// deleteDirective, createMentalModel / listMentalModels (tags, detail, paging) / getMentalModel /
// updateMentalModel / refreshMentalModel / clearMentalModel / getMentalModelHistory /
// deleteMentalModel, their errors as HindsightError, and a 501 route (knowledge base).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HindsightClient, HindsightError, sdk } from '@vectorize-io/hindsight-client';
import { startEngram, workspaceWithKey, uniqueName } from '../integration/harness.mjs';

let srv;
let A; // {ws, key}
let hc;

before(async () => {
    A = await workspaceWithKey('hsSdkDm');
    srv = await startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } });
    hc = new HindsightClient({ baseUrl: `${srv.url}/hindsight`, apiKey: A.key });
});

after(async () => {
    await srv?.stop();
});

// The SDK raises HindsightError(msg, status, detail) from validateResponse; its delete methods
// raise a plain Error.
async function rejects(p, status) {
    await assert.rejects(p, (e) => {
        if (status === undefined) return e instanceof Error;
        assert.ok(e instanceof HindsightError, String(e));
        assert.equal(e.statusCode, status, String(e));
        return true;
    });
}

test('directives through the SDK', async () => {
    const id = uniqueName('sdkdir');
    const g = await hc.createDirective(id, 'Global', 'Always be polite.');
    assert.equal(g.name, 'Global');
    assert.equal(g.priority, 0);
    assert.equal(g.is_active, true);
    assert.deepEqual(g.tags, []);
    const t = await hc.createDirective(id, 'Scoped', 'Use metric units.', { priority: 3, tags: ['user:1'] });
    assert.deepEqual(t.tags, ['user:1']);

    let list = await hc.listDirectives(id);
    assert.equal(list.total, 2);
    assert.deepEqual(list.items.map((d) => d.name), ['Scoped', 'Global']);
    list = await hc.listDirectives(id, { tags: ['user:2'] });
    assert.deepEqual(list.items.map((d) => d.name), ['Global']);

    const got = await hc.getDirective(id, t.id);
    assert.equal(got.content, 'Use metric units.');
    const up = await hc.updateDirective(id, t.id, { isActive: false, content: 'Use imperial units.' });
    assert.equal(up.is_active, false);
    assert.equal(up.content, 'Use imperial units.');
    assert.equal(up.priority, 3);
    assert.deepEqual((await hc.listDirectives(id)).items.map((d) => d.name), ['Global']);

    await hc.deleteDirective(id, t.id);
    await rejects(hc.getDirective(id, t.id), 404);
    await rejects(hc.deleteDirective(id, t.id));
});

test('mental models through the SDK', async () => {
    const id = uniqueName('sdkmm');
    const c = await hc.createMentalModel(id, 'Team communication', 'How does the team communicate?', {
        id: 'team-comm', tags: ['team'], maxTokens: 1024, trigger: { refreshAfterConsolidation: true },
    });
    assert.equal(c.mental_model_id, 'team-comm');
    assert.ok(c.operation_id);
    const op = await sdk.getOperationStatus({ client: hc.client, path: { bank_id: id, operation_id: c.operation_id } });
    assert.equal(op.data.operation_type, 'refresh_mental_model');

    const m = await hc.getMentalModel(id, 'team-comm');
    assert.equal(m.name, 'Team communication');
    assert.equal(m.max_tokens, 1024);
    assert.equal(m.trigger.refresh_after_consolidation, true);
    assert.deepEqual(m.tags, ['team']);
    const meta = await hc.getMentalModel(id, 'team-comm', { detail: 'metadata' });
    assert.equal(meta.content, undefined);

    await hc.createMentalModel(id, 'Other', 'Anything else?');
    let list = await hc.listMentalModels(id);
    assert.equal(list.total, 2);
    list = await hc.listMentalModels(id, { tags: ['team'], tagsMatch: 'exact', detail: 'content', limit: 10 });
    assert.deepEqual(list.items.map((x) => x.id), ['team-comm']);

    const up = await hc.updateMentalModel(id, 'team-comm', { name: 'Comms', sourceQuery: 'How do we talk?' });
    assert.equal(up.name, 'Comms');
    assert.equal(up.source_query, 'How do we talk?');
    const rf = await hc.refreshMentalModel(id, 'team-comm');
    assert.ok(rf.operation_id);
    assert.equal(rf.status, 'queued');
    const cl = await hc.clearMentalModel(id, 'team-comm');
    assert.equal(cl.content, '');
    // Refreshes run on reflect's worker meanwhile: each that replaced content left a version.
    const hist = await hc.getMentalModelHistory(id, 'team-comm');
    assert.ok(Array.isArray(hist));
    for (const v of hist) assert.equal(typeof v.previous_content, 'string');

    await hc.deleteMentalModel(id, 'team-comm');
    await rejects(hc.getMentalModel(id, 'team-comm'), 404);
    await rejects(hc.createMentalModel(id, 'x', 'y', { maxTokens: 10 }), 422);
});

test('a knowledge-base call answers 501', async () => {
    await rejects(hc.getKnowledgeBaseTree(uniqueName('sdkkb')), 501);
});
