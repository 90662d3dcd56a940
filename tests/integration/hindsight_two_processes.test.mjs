// Two engramd processes on one Redis: each keeps its own in-memory index of a bank, and a write
// acknowledged by one is seen by the other's very next read (the index catches up with the bank's
// change stream before every recall or listing). Retain, document replace and delete, memory
// curation, clearing and bank deletion are each checked from the other process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEngram, workspaceWithKey, uniqueName } from './harness.mjs';

let one, two, A;

before(async () => {
    A = await workspaceWithKey('twoProc');
    [one, two] = await Promise.all([
        startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } }),
        startEngram({ env: { ENGRAM_ACCESS_LOG: 'off' } }),
    ]);
});

after(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
});

const bank = (id) => `/hindsight/v1/default/banks/${encodeURIComponent(id)}`;
async function call(srv, method, path, body) {
    const opts = { key: A.key };
    if (body !== undefined) {
        opts.body = JSON.stringify(body);
        opts.headers = { 'content-type': 'application/json' };
    }
    const r = await srv.request(method, path, opts);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${r.body}`);
    return r.json;
}
const recallTexts = async (srv, id, query) =>
    (await call(srv, 'POST', `${bank(id)}/memories/recall`, { query, budget: 'high' })).results.map((r) => r.text);

test('a retain through one process is recalled and listed by the other at once', async () => {
    const id = uniqueName('two');
    // Both processes load the (empty) bank first, so the second must catch up, not load.
    assert.deepEqual(await recallTexts(one, id, 'anything'), []);
    assert.deepEqual(await recallTexts(two, id, 'anything'), []);
    await call(one, 'POST', `${bank(id)}/memories`, { items: [{ content: 'Ines keeps bees on her balcony.', document_id: 'ines' }] });
    assert.ok((await recallTexts(two, id, 'Who keeps bees?')).some((t) => /bees/.test(t)));
    const list = await call(two, 'GET', `${bank(id)}/memories/list`);
    assert.equal(list.total, 1);

    // Replace the document through the second process: the first sees only the new fact.
    await call(two, 'POST', `${bank(id)}/memories`, { items: [{ content: 'Ines keeps chickens in her garden.', document_id: 'ines' }] });
    let texts = await recallTexts(one, id, 'What does Ines keep?');
    assert.ok(texts.some((t) => /chickens/.test(t)), JSON.stringify(texts));
    assert.ok(!texts.some((t) => /bees/.test(t)), JSON.stringify(texts));

    // Curate through the first (invalidate), the second stops recalling it.
    const unit = (await call(one, 'GET', `${bank(id)}/memories/list`)).items[0];
    await call(one, 'PATCH', `${bank(id)}/memories/${unit.id}`, { state: 'invalidated', reason: 'moved away' });
    texts = await recallTexts(two, id, 'What does Ines keep?');
    assert.ok(!texts.some((t) => /chickens/.test(t)), JSON.stringify(texts));
    await call(two, 'PATCH', `${bank(id)}/memories/${unit.id}`, { state: 'valid' });
    assert.ok((await recallTexts(one, id, 'What does Ines keep?')).some((t) => /chickens/.test(t)));

    // Delete the document through the second: gone for the first.
    await call(two, 'DELETE', `${bank(id)}/documents/ines`);
    assert.deepEqual(await recallTexts(one, id, 'What does Ines keep?'), []);
    assert.equal((await call(one, 'GET', `${bank(id)}/memories/list`)).total, 0);
});

test('clearing and deleting a bank through one process empties it for the other', async () => {
    const id = uniqueName('two');
    await call(one, 'POST', `${bank(id)}/memories`, { items: [
        { content: 'Jonas collects vinyl records from the seventies.' },
        { content: 'Jonas learned to sail in Kiel.' },
    ] });
    assert.equal((await call(two, 'GET', `${bank(id)}/memories/list`)).total, 2);
    await call(two, 'DELETE', `${bank(id)}/memories`);
    assert.equal((await call(one, 'GET', `${bank(id)}/memories/list`)).total, 0);
    assert.deepEqual(await recallTexts(one, id, 'Jonas vinyl'), []);

    await call(one, 'POST', `${bank(id)}/memories`, { items: [{ content: 'Jonas moved to Hamburg.' }] });
    assert.ok((await recallTexts(two, id, 'Where did Jonas move?')).some((t) => /Hamburg/.test(t)));
    await call(one, 'DELETE', bank(id));
    assert.deepEqual(await recallTexts(two, id, 'Where did Jonas move?'), []);
    assert.equal((await call(two, 'GET', `${bank(id)}/memories/list`)).total, 0);
    // A new bank of the same id starts empty in both.
    await call(two, 'POST', `${bank(id)}/memories`, { items: [{ content: 'Jonas bought a kayak.' }] });
    const texts = await recallTexts(one, id, 'Jonas');
    assert.deepEqual(texts.filter((t) => /Hamburg/.test(t)), []);
    assert.ok(texts.some((t) => /kayak/.test(t)));
});
