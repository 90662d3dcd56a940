// Hindsight face: directives (list with tags / tags_match / active_only / paging and the
// priority-then-newest order, create, get, PATCH, DELETE), mental models (create queueing a
// refresh_mental_model operation, list with tags and detail levels, get, PATCH, DELETE, history,
// refresh, clear), tags of mental models, the routes answered 501 (knowledge base, bank
// import/export, document transfer, audit and LLM-request logs), and POST B/health/llm. Bad
// inputs, unknown ids and another workspace's bank are checked on every route.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { workspaceWithKey, uniqueName, supervisedEngram, redisCommand, sharedRedisUrl, waitFor } from './harness.mjs';
import { P, bank, caller, ISO, UUID } from './hindsight_http.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('hsdmA'), workspaceWithKey('hsdmB')]);
});

const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);
const b = (method, path, body) => call(B.key, method, path, body);
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

/* ---- directives ------------------------------------------------------------------------------ */

test('directives: create, get, PATCH, DELETE and the Directive shape', async () => {
    const id = uniqueName('dir_bank');
    const d = ok(await a('POST', `${bank(id)}/directives`, { name: 'French', content: 'Answer in French.' }));
    assert.match(d.id, UUID);
    assert.equal(d.bank_id, id);
    assert.equal(d.name, 'French');
    assert.equal(d.content, 'Answer in French.');
    assert.equal(d.priority, 0);
    assert.equal(d.is_active, true);
    assert.deepEqual(d.tags, []);
    assert.match(d.created_at, ISO);
    assert.match(d.updated_at, ISO);
    assert.deepEqual(Object.keys(d).sort(), ['bank_id', 'content', 'created_at', 'id', 'is_active', 'name', 'priority', 'tags', 'updated_at']);

    // The bank was created by the write.
    ok(await a('GET', `${bank(id)}/profile`));

    assert.deepEqual(ok(await a('GET', `${bank(id)}/directives/${d.id}`)), d);
    const p = ok(await a('PATCH', `${bank(id)}/directives/${d.id}`, { priority: 7, is_active: false, tags: ['user:1'] }));
    assert.equal(p.name, 'French');
    assert.equal(p.priority, 7);
    assert.equal(p.is_active, false);
    assert.deepEqual(p.tags, ['user:1']);
    assert.equal(p.created_at, d.created_at);
    const p2 = ok(await a('PATCH', `${bank(id)}/directives/${d.id}`, { name: 'Fr', content: 'Réponds en français.', tags: null }));
    assert.equal(p2.name, 'Fr');
    assert.equal(p2.content, 'Réponds en français.');
    assert.deepEqual(p2.tags, ['user:1'], 'null leaves a field alone');

    assert.deepEqual(ok(await a('DELETE', `${bank(id)}/directives/${d.id}`)), { status: 'deleted' });
    assert.match(detail(await a('GET', `${bank(id)}/directives/${d.id}`), 404), /not found/);
    detail(await a('PATCH', `${bank(id)}/directives/${d.id}`, { name: 'x' }), 404);
    detail(await a('DELETE', `${bank(id)}/directives/${d.id}`), 404);
    detail(await a('GET', `${bank(id)}/directives/not-a-uuid`), 404);
});

test('directives: list order, tags, tags_match, active_only, paging', async () => {
    const id = uniqueName('dir_list');
    const mk = async (name, extra) => ok(await a('POST', `${bank(id)}/directives`, { name, content: `rule ${name}`, ...extra }));
    await mk('g1');
    await mk('g2', { priority: 5 });
    await mk('ta', { priority: 1, tags: ['a'] });
    await mk('tab', { priority: 1, tags: ['a', 'b'] });
    await mk('off', { priority: 9, tags: ['b'], is_active: false });
    const names = (r) => r.items.map((x) => x.name);

    let r = ok(await a('GET', `${bank(id)}/directives`));
    assert.equal(r.total, 4);
    assert.equal(r.limit, 100);
    assert.equal(r.offset, 0);
    assert.deepEqual(names(r), ['g2', 'tab', 'ta', 'g1'], 'priority desc, then newest first; inactive hidden');
    r = ok(await a('GET', `${bank(id)}/directives?active_only=false`));
    assert.deepEqual(names(r), ['off', 'g2', 'tab', 'ta', 'g1']);
    r = ok(await a('GET', `${bank(id)}/directives?tags=b`));
    assert.deepEqual(names(r), ['g2', 'tab', 'g1'], 'untagged ones are always included');
    r = ok(await a('GET', `${bank(id)}/directives?tags=a&tags=b&tags_match=all`));
    assert.deepEqual(names(r), ['g2', 'tab', 'g1']);
    r = ok(await a('GET', `${bank(id)}/directives?tags=a&tags_match=exact`));
    assert.deepEqual(names(r), ['g2', 'ta', 'g1']);
    r = ok(await a('GET', `${bank(id)}/directives?limit=2&offset=1`));
    assert.equal(r.total, 4);
    assert.deepEqual(names(r), ['tab', 'ta']);
    assert.equal(r.limit, 2);
    assert.equal(r.offset, 1);

    // An unknown bank is an empty page; another workspace's bank too.
    assert.deepEqual(ok(await a('GET', `${bank(uniqueName('nobank'))}/directives`)), { items: [], total: 0, limit: 100, offset: 0 });
    assert.equal(ok(await b('GET', `${bank(id)}/directives`)).total, 0, "another workspace's bank");
    const first = ok(await a('GET', `${bank(id)}/directives`)).items[0];
    detail(await b('GET', `${bank(id)}/directives/${first.id}`), 404);
    detail(await b('PATCH', `${bank(id)}/directives/${first.id}`, { name: 'stolen' }), 404);
    detail(await b('DELETE', `${bank(id)}/directives/${first.id}`), 404);
    assert.equal(ok(await a('GET', `${bank(id)}/directives/${first.id}`)).name, 'g2');
});

test('directives: bad input', async () => {
    const id = uniqueName('dir_bad');
    let d = validation(await a('POST', `${bank(id)}/directives`, {}));
    assert.equal(findErr(d, ['body', 'name']).type, 'missing');
    assert.equal(findErr(d, ['body', 'content']).type, 'missing');
    d = validation(await a('POST', `${bank(id)}/directives`, { name: 5, content: 'x', priority: 'high', is_active: 'maybe', tags: 'a' }));
    assert.equal(findErr(d, ['body', 'name']).type, 'string_type');
    assert.equal(findErr(d, ['body', 'priority']).type, 'int_parsing');
    assert.equal(findErr(d, ['body', 'is_active']).type, 'bool_parsing');
    assert.equal(findErr(d, ['body', 'tags']).type, 'list_type');
    d = validation(await a('POST', `${bank(id)}/directives`, { name: 'n', content: 'c', tags: ['ok', 3] }));
    assert.equal(findErr(d, ['body', 'tags', 1]).type, 'string_type');
    validation(await a('POST', `${bank(id)}/directives`, '[1,2]'));
    validation(await a('POST', `${bank(id)}/directives`, '{"name":'));
    d = validation(await a('GET', `${bank(id)}/directives?limit=0&tags_match=some&active_only=perhaps`));
    assert.ok(findErr(d, ['query', 'limit']));
    assert.equal(findErr(d, ['query', 'tags_match']).type, 'literal_error');
    assert.ok(findErr(d, ['query', 'active_only']));
    const made = ok(await a('POST', `${bank(id)}/directives`, { name: 'n', content: 'c' }));
    d = validation(await a('PATCH', `${bank(id)}/directives/${made.id}`, { priority: 1.5 }));
    assert.ok(findErr(d, ['body', 'priority']));
    assert.equal((await call(null, 'GET', `${bank(id)}/directives`)).status, 401);
});

/* ---- mental models --------------------------------------------------------------------------- */

async function opOf(id, opId) {
    return ok(await a('GET', `${bank(id)}/operations/${opId}`));
}
// The refresh runs on reflect's worker: wait until the operation is final.
async function settled(id, opId) {
    let op;
    await waitFor(async () => ['completed', 'failed', 'cancelled'].includes((op = await opOf(id, opId)).status),
        { timeoutMs: 20000, what: `operation ${opId} final` });
    return op;
}

test('mental models: create queues a refresh, get, detail levels, list', async () => {
    const id = uniqueName('mm_bank');
    const c = ok(await a('POST', `${bank(id)}/mental-models`, {
        id: 'team-communication', name: 'Team communication', source_query: 'How does the team prefer to communicate?',
        tags: ['team'], trigger: { refresh_after_consolidation: true, mode: 'delta', unknown_key: 1 },
    }));
    assert.deepEqual(Object.keys(c).sort(), ['mental_model_id', 'operation_id']);
    assert.equal(c.mental_model_id, 'team-communication');
    assert.match(c.operation_id, UUID);
    const op = await opOf(id, c.operation_id);
    assert.equal(op.operation_type, 'refresh_mental_model');
    assert.ok(['pending', 'processing', 'completed', 'failed'].includes(op.status), op.status);
    const ops = ok(await a('GET', `${bank(id)}/operations?type=refresh_mental_model`));
    assert.equal(ops.operations[0].mental_model_id, 'team-communication');

    const before = ok(await a('GET', `${bank(id)}/mental-models/team-communication`));
    const done = await settled(id, c.operation_id);
    const m = ok(await a('GET', `${bank(id)}/mental-models/team-communication`));
    assert.equal(m.id, 'team-communication');
    assert.equal(m.bank_id, id);
    assert.equal(m.name, 'Team communication');
    assert.equal(m.source_query, 'How does the team prefer to communicate?');
    assert.equal(typeof m.content, 'string');
    assert.deepEqual(m.tags, ['team']);
    assert.equal(m.max_tokens, 2048);
    assert.deepEqual(m.trigger, { mode: 'delta', refresh_after_consolidation: true, exclude_mental_models: false, keep_trace: false });
    assert.match(m.created_at, ISO);
    assert.equal(m.is_stale, false);
    assert.equal(before.created_at, m.created_at);
    if (done.status === 'completed') {
        assert.match(m.last_refreshed_at, ISO, 'a finished refresh stamps last_refreshed_at');
    } else {
        assert.ok(!('last_refreshed_at' in m), 'never refreshed: null dropped');
    }

    const meta = ok(await a('GET', `${bank(id)}/mental-models/team-communication?detail=metadata`));
    assert.ok(!('content' in meta) && !('source_query' in meta) && !('trigger' in meta));
    assert.equal(meta.name, 'Team communication');
    const content = ok(await a('GET', `${bank(id)}/mental-models/team-communication?detail=content`));
    assert.equal(typeof content.content, 'string');
    assert.equal(content.max_tokens, 2048);
    validation(await a('GET', `${bank(id)}/mental-models/team-communication?detail=everything`));

    // Without an id: a UUID; defaults for the rest.
    const c2 = ok(await a('POST', `${bank(id)}/mental-models`, { name: 'Anon', source_query: 'what?' }));
    assert.match(c2.mental_model_id, UUID);
    const m2 = ok(await a('GET', `${bank(id)}/mental-models/${c2.mental_model_id}`));
    assert.deepEqual(m2.tags, []);
    assert.deepEqual(m2.trigger, { mode: 'full', refresh_after_consolidation: false, exclude_mental_models: false, keep_trace: false });

    // A taken id.
    detail(await a('POST', `${bank(id)}/mental-models`, { id: 'team-communication', name: 'x', source_query: 'y' }), 409);

    let r = ok(await a('GET', `${bank(id)}/mental-models`));
    assert.equal(r.total, 2);
    assert.deepEqual(r.items.map((x) => x.id), [c2.mental_model_id, 'team-communication'], 'newest first');
    r = ok(await a('GET', `${bank(id)}/mental-models?tags=team&tags_match=exact`));
    assert.deepEqual(r.items.map((x) => x.id), ['team-communication']);
    r = ok(await a('GET', `${bank(id)}/mental-models?tags=other`));
    assert.deepEqual(r.items.map((x) => x.id), [c2.mental_model_id], 'untagged pass any');
    r = ok(await a('GET', `${bank(id)}/mental-models?limit=1&offset=1&detail=metadata`));
    assert.equal(r.total, 2);
    assert.deepEqual(r.items.map((x) => x.id), ['team-communication']);
    assert.ok(!('content' in r.items[0]));

    // Tags of mental models.
    const t = ok(await a('GET', `${bank(id)}/tags?source=mental_models`));
    assert.deepEqual(t.items, [{ tag: 'team', count: 1 }]);
    assert.equal(t.total, 1);
});

test('mental models: PATCH, refresh, clear, history, DELETE', async () => {
    const id = uniqueName('mm_edit');
    const c = ok(await a('POST', `${bank(id)}/mental-models`, { id: 'm1', name: 'M1', source_query: 'q1' }));
    await settled(id, c.operation_id);
    const p = ok(await a('PATCH', `${bank(id)}/mental-models/m1`, { name: 'Uno', max_tokens: 4096, tags: ['x'], trigger: { keep_trace: true } }));
    assert.equal(p.name, 'Uno');
    assert.equal(p.source_query, 'q1');
    assert.equal(p.max_tokens, 4096);
    assert.deepEqual(p.tags, ['x']);
    assert.equal(p.trigger.keep_trace, true);
    assert.equal(p.trigger.mode, 'full');

    const rf = ok(await a('POST', `${bank(id)}/mental-models/m1/refresh`));
    assert.deepEqual(Object.keys(rf).sort(), ['operation_id', 'status']);
    assert.match(rf.operation_id, UUID);
    assert.equal(rf.status, 'queued');
    assert.equal((await opOf(id, rf.operation_id)).operation_type, 'refresh_mental_model');
    await settled(id, rf.operation_id);

    const h0 = ok(await a('GET', `${bank(id)}/mental-models/m1/history`));
    assert.ok(Array.isArray(h0));
    // Content as a refresh would have written it (the refresh worker is reflect's), then a clear.
    const port = Number(new URL(await sharedRedisUrl()).port);
    assert.equal(await redisCommand(port, `HSET "eg:{b:${A.ws.id}/${id}}:mm:m1" content "old text"`), ':0');
    assert.equal(ok(await a('GET', `${bank(id)}/mental-models/m1`)).content, 'old text');
    const cl = ok(await a('POST', `${bank(id)}/mental-models/m1/clear`));
    assert.equal(cl.content, '');
    assert.equal(cl.id, 'm1');
    const h = ok(await a('GET', `${bank(id)}/mental-models/m1/history`));
    assert.equal(h.length, h0.length + 1);
    assert.equal(h[0].previous_content, 'old text');
    assert.match(h[0].changed_at, ISO);

    // Another workspace's bank: nothing.
    detail(await b('GET', `${bank(id)}/mental-models/m1`), 404);
    detail(await b('PATCH', `${bank(id)}/mental-models/m1`, { name: 'x' }), 404);
    detail(await b('POST', `${bank(id)}/mental-models/m1/refresh`), 404);
    detail(await b('POST', `${bank(id)}/mental-models/m1/clear`), 404);
    detail(await b('GET', `${bank(id)}/mental-models/m1/history`), 404);
    detail(await b('DELETE', `${bank(id)}/mental-models/m1`), 404);
    assert.equal(ok(await b('GET', `${bank(id)}/mental-models`)).total, 0);
    assert.equal(ok(await b('GET', `${bank(id)}/tags?source=mental_models`)).total, 0);

    assert.deepEqual(ok(await a('DELETE', `${bank(id)}/mental-models/m1`)), { status: 'deleted' });
    for (const [m, path] of [['GET', 'm1'], ['PATCH', 'm1'], ['DELETE', 'm1'], ['GET', 'm1/history'], ['POST', 'm1/refresh'], ['POST', 'm1/clear']]) {
        const res = await a(m, `${bank(id)}/mental-models/${path}`, m === 'PATCH' ? { name: 'x' } : undefined);
        assert.match(detail(res, 404), /Mental model 'm1' not found/, `${m} ${path}`);
    }
    assert.deepEqual(ok(await a('GET', `${bank(uniqueName('nobank'))}/mental-models`)), { items: [], total: 0, limit: 100, offset: 0 });
    detail(await a('GET', `${bank(uniqueName('nobank'))}/mental-models/${MISSING}`), 404);
});

test('mental models: bad input', async () => {
    const id = uniqueName('mm_bad');
    let d = validation(await a('POST', `${bank(id)}/mental-models`, {}));
    assert.equal(findErr(d, ['body', 'name']).type, 'missing');
    assert.equal(findErr(d, ['body', 'source_query']).type, 'missing');
    d = validation(await a('POST', `${bank(id)}/mental-models`, { name: 'n', source_query: 'q', max_tokens: 100 }));
    assert.equal(findErr(d, ['body', 'max_tokens']).type, 'greater_than_equal');
    d = validation(await a('POST', `${bank(id)}/mental-models`, { name: 'n', source_query: 'q', max_tokens: 9000 }));
    assert.equal(findErr(d, ['body', 'max_tokens']).type, 'less_than_equal');
    d = validation(await a('POST', `${bank(id)}/mental-models`, { name: ['n'], source_query: 1, tags: [1], max_tokens: 'lots', trigger: 'daily' }));
    assert.equal(findErr(d, ['body', 'name']).type, 'string_type');
    assert.equal(findErr(d, ['body', 'source_query']).type, 'string_type');
    assert.equal(findErr(d, ['body', 'tags', 0]).type, 'string_type');
    assert.equal(findErr(d, ['body', 'max_tokens']).type, 'int_parsing');
    assert.equal(findErr(d, ['body', 'trigger']).type, 'model_attributes_type');
    d = validation(await a('POST', `${bank(id)}/mental-models`, { name: 'n', source_query: 'q', trigger: { mode: 'sometimes', refresh_after_consolidation: 'maybe' } }));
    assert.equal(findErr(d, ['body', 'trigger', 'mode']).type, 'literal_error');
    assert.ok(findErr(d, ['body', 'trigger', 'refresh_after_consolidation']));
    detail(await a('POST', `${bank(id)}/mental-models`, { id: 'has space', name: 'n', source_query: 'q' }), 400);
    ok(await a('POST', `${bank(id)}/mental-models`, { id: 'ok', name: 'n', source_query: 'q' }));
    d = validation(await a('PATCH', `${bank(id)}/mental-models/ok`, { max_tokens: 255 }));
    assert.ok(findErr(d, ['body', 'max_tokens']));
    d = validation(await a('GET', `${bank(id)}/mental-models?limit=5000&tags_match=any_strict`));
    assert.ok(findErr(d, ['query', 'limit']));
    assert.equal(findErr(d, ['query', 'tags_match']).type, 'literal_error');
    d = validation(await a('GET', `${bank(id)}/tags?source=models`));
    assert.ok(findErr(d, ['query', 'source']));
});

test('mental models and directives survive a memory clear and go with the bank', async () => {
    const id = uniqueName('mm_life');
    ok(await a('POST', `${bank(id)}/mental-models`, { id: 'keep', name: 'K', source_query: 'q' }));
    const dir = ok(await a('POST', `${bank(id)}/directives`, { name: 'd', content: 'c' }));
    ok(await a('DELETE', `${bank(id)}/memories`));
    ok(await a('GET', `${bank(id)}/mental-models/keep`));
    ok(await a('GET', `${bank(id)}/directives/${dir.id}`));
    ok(await a('DELETE', bank(id)));
    detail(await a('GET', `${bank(id)}/mental-models/keep`), 404);
    detail(await a('GET', `${bank(id)}/directives/${dir.id}`), 404);
    assert.equal(ok(await a('GET', `${bank(id)}/mental-models`)).total, 0);
    assert.equal(ok(await a('GET', `${bank(id)}/directives?active_only=false`)).total, 0);
});

/* ---- 501 routes and LLM health --------------------------------------------------------------- */

test('unimplemented routes answer 501 in the error shape', async () => {
    const id = uniqueName('na_bank');
    const B_ = bank(id);
    const routes = [
        ['GET', `${B_}/knowledge-base/tree`], ['POST', `${B_}/knowledge-base/folders`, { name: 'f' }],
        ['POST', `${B_}/knowledge-base/pages`, { name: 'p', source_query: 'q' }], ['GET', `${B_}/knowledge-base/export`],
        ['GET', `${B_}/knowledge-base/search?q=x`], ['GET', `${B_}/knowledge-base/pages/p1`],
        ['PATCH', `${B_}/knowledge-base/nodes/n1`, { name: 'x' }], ['DELETE', `${B_}/knowledge-base/nodes/n1`],
        ['POST', `${B_}/import`, { version: '1' }], ['GET', `${B_}/export`],
        ['POST', `${B_}/document-transfer`], ['POST', `${B_}/document-transfer/export`],
        ['GET', `${P}/v1/default/files/download/abc`],
        ['GET', `${B_}/audit-logs`], ['GET', `${B_}/audit-logs/stats`],
        ['GET', `${B_}/llm-requests`], ['GET', `${B_}/llm-requests/stats`],
    ];
    for (const [m, path, body] of routes) {
        const d = detail(await a(m, path, body), 501);
        assert.match(d, /is not implemented by this server$/, `${m} ${path}`);
    }
    assert.match(detail(await a('GET', `${B_}/document-transfer`), 410), /removed/);
    assert.equal((await call(null, 'GET', `${B_}/knowledge-base/tree`)).status, 401);
});

test('POST B/health/llm reports each operation', async () => {
    const r = ok(await a('POST', `${bank(uniqueName('llm_bank'))}/health/llm`));
    assert.deepEqual(r.operations.map((o) => o.operation), ['retain', 'consolidation', 'reflect']);
    for (const o of r.operations) {
        assert.ok(['connected', 'not_configured', 'auth_failed', 'unreachable', 'timeout'].includes(o.status), o.status);
        assert.equal(o.ok, o.status === 'connected');
        if (o.status === 'not_configured') assert.ok(!('latency_ms' in o));
        else assert.equal(typeof o.latency_ms, 'number');
    }
    assert.match(r.bank_id, /^llm_bank/);
});
