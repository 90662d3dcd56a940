// Embeddings from a model (ENGRAM_EMBEDDINGS_PROVIDER=openai) through tools/mock-llm: retain
// stores the model's vectors, recall embeds its query with the same model, a memory edit
// re-embeds its new text, and an embeddings outage fails the request cleanly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, startEngram } from './harness.mjs';
import { startMockLlm } from './mock_llm.mjs';
import { bank, caller } from './hindsight_http.mjs';

const DIM = 256;
let mock, srv, A, a;

before(async () => {
    mock = await startMockLlm({ dim: DIM });
    srv = await startEngram({
        env: {
            ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8',
            ENGRAM_EMBEDDINGS_PROVIDER: 'openai',
            ENGRAM_EMBEDDINGS_BASE_URL: mock.url,
            ENGRAM_EMBEDDINGS_MODEL: 'mock-embed',
            ENGRAM_EMBEDDINGS_DIMENSIONS: String(DIM),
            ENGRAM_LLM_MAX_RETRIES: '0',
        },
    });
    A = await workspaceWithKey('embA');
    const call = caller(srv);
    a = (method, path, body) => call(A.key, method, path, body);
});

after(async () => {
    if (srv) await srv.stop();
    if (mock) await mock.stop();
});

const embeddingInputs = async () =>
    (await mock.requests())
        .filter((r) => r.path === '/v1/embeddings')
        .flatMap((r) => (Array.isArray(r.body.input) ? r.body.input : [r.body.input]));

test('retain, recall and a memory edit embed through the configured model', async () => {
    const id = uniqueName('emb');
    await mock.clearRequests();
    let r = await a('POST', `${bank(id)}/memories`, {
        items: [
            { content: 'Alice works at Google in Zurich as a site reliability engineer.' },
            { content: 'Bob adopted a beagle named Pixel last spring.' },
            { content: 'Carol is allergic to peanuts and shellfish.' },
        ],
    });
    assert.equal(r.status, 200, r.body);
    const retained = await embeddingInputs();
    assert.ok(retained.some((t) => /beagle named Pixel/.test(t)), JSON.stringify(retained));
    const reqs = (await mock.requests()).filter((x) => x.path === '/v1/embeddings');
    assert.ok(reqs.every((x) => x.body.model === 'mock-embed' && x.body.dimensions === DIM));

    await mock.clearRequests();
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'Who adopted a beagle?', include: { entities: null } });
    assert.equal(r.status, 200, r.body);
    assert.match(r.json.results[0].text, /beagle/);
    assert.ok(r.json.results[0].scores.semantic > 0.3, JSON.stringify(r.json.results[0].scores));
    assert.deepEqual(await embeddingInputs(), ['Who adopted a beagle?'], 'the query went to the model');

    // A new text is re-embedded by the model; recall then finds the fact by its new words.
    const list = (await a('GET', `${bank(id)}/memories/list?q=peanuts`)).json.items;
    assert.equal(list.length, 1);
    await mock.clearRequests();
    r = await a('PATCH', `${bank(id)}/memories/${list[0].id}`, { text: 'Carol cannot eat strawberries or kiwi fruit.' });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(await embeddingInputs(), ['Carol cannot eat strawberries or kiwi fruit.']);
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'strawberries kiwi', budget: 'low' });
    assert.equal(r.status, 200, r.body);
    assert.match(r.json.results[0].text, /strawberries/);
    assert.ok(r.json.results[0].scores.semantic > 0.3);
});

test('an embeddings outage fails recall and retain with an error, writes nothing, and passes', async () => {
    const id = uniqueName('embdown');
    let r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Dana plays the cello in an orchestra.' }] });
    assert.equal(r.status, 200, r.body);
    const ids = await mock.addRules([{ match: { path: '/v1/embeddings' }, reply: { status: 500 } }]);
    try {
        r = await a('POST', `${bank(id)}/memories/recall`, { query: 'cello' });
        assert.equal(r.status, 502, r.body);
        assert.match(r.json.detail, /recall failed: the model provider failed/);
        r = await a('POST', `${bank(id)}/memories`, { items: [{ content: 'Eve sails on Lake Geneva.' }] });
        assert.ok(r.status >= 500, `${r.status} ${r.body}`);
        assert.equal(typeof r.json.detail, 'string', r.body);
    } finally {
        await mock.setRules([]);
    }
    assert.ok(ids);
    r = await a('GET', `${bank(id)}/memories/list`);
    assert.deepEqual(r.json.items.map((x) => x.text), ['Dana plays the cello in an orchestra.'], 'nothing half-written');
    r = await a('POST', `${bank(id)}/memories/recall`, { query: 'cello' });
    assert.equal(r.status, 200, r.body);
    assert.match(r.json.results[0].text, /cello/);
});
