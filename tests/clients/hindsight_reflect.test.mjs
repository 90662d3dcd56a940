// Reflect through the real TypeScript SDK (@vectorize-io/hindsight-client 0.9.1) under the builtin
// provider: the call shape the SDK sends (include built from includeFacts / includeToolCalls,
// budget, tags, factTypes, responseSchema) and the response it validates.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HindsightClient, HindsightError } from '@vectorize-io/hindsight-client';
import { startEngram, workspaceWithKey, uniqueName } from '../integration/harness.mjs';

let srv;
let hc;
let id;

before(async () => {
    const A = await workspaceWithKey('hsRefl');
    srv = await startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } });
    hc = new HindsightClient({ baseUrl: `${srv.url}/hindsight`, apiKey: A.key });
    id = uniqueName('sdkrefl');
    await hc.retainBatch(id, [
        { content: 'Alice works at Google in Zurich as a site reliability engineer.', tags: ['user:alice'] },
        { content: 'Bob adopted a beagle named Pixel last spring.', tags: ['user:bob'] },
    ]);
});

after(async () => {
    await srv?.stop();
});

test('reflect answers with text and usage; includeFacts gives based_on', async () => {
    const r = await hc.reflect(id, 'Where does Alice work?');
    assert.match(r.text, /without a language model/);
    assert.match(r.text, /Alice works at Google/);
    assert.equal(r.usage.total_tokens, 0);
    assert.equal(r.based_on, undefined);
    const f = await hc.reflect(id, 'Where does Alice work?', { includeFacts: true, includeToolCalls: true, budget: 'mid' });
    assert.match(f.based_on.memories[0].text, /Alice works at Google/);
    assert.deepEqual(f.trace, { tool_calls: [], llm_calls: [] });
});

test('reflect scopes by tags and fact types', async () => {
    const r = await hc.reflect(id, 'Alice Bob', { includeFacts: true, tags: ['user:bob'], tagsMatch: 'any_strict' });
    assert.ok(r.based_on.memories.length >= 1);
    assert.ok(r.based_on.memories.every((m) => /Bob/.test(m.text)));
    const none = await hc.reflect(id, 'Alice Bob', { includeFacts: true, factTypes: ['observation'] });
    assert.deepEqual(none.based_on.memories, []);
});

test('reflect with a responseSchema under the builtin provider has no structured_output', async () => {
    const r = await hc.reflect(id, 'Where does Alice work?', { responseSchema: { type: 'object', properties: { employer: { type: 'string' } } } });
    assert.equal(r.structured_output, undefined);
    assert.match(r.text, /response_schema needs a language model/);
});

test('a bad budget is a HindsightError with status 422', async () => {
    await assert.rejects(hc.reflect(id, 'q', { budget: 'huge' }), (e) => e instanceof HindsightError && e.statusCode === 422);
});
