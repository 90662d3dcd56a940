// Hindsight face: health/version, bank routes, validation shapes, auth, anonymous mode, isolation.
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
    startEngram, workspaceWithKey, createWorkspace, uniqueName, supervisedEngram,
} from './harness.mjs';
import { P, bank, caller, ISO } from './hindsight_http.mjs';

const srv = supervisedEngram({ before, after, beforeEach, afterEach });
let A; // {ws, key}
let B;

before(async () => {
    [A, B] = await Promise.all([workspaceWithKey('hsA'), workspaceWithKey('hsB')]);
});

const call = caller(srv);
const a = (method, path, body) => call(A.key, method, path, body);

function detail(res, status) {
    assert.equal(res.status, status, res.body);
    assert.ok(res.json && 'detail' in res.json, res.body);
    return res.json.detail;
}
function validation(res) {
    const d = detail(res, 422);
    assert.ok(Array.isArray(d), res.body);
    for (const e of d) {
        assert.ok(Array.isArray(e.loc) && typeof e.msg === 'string' && typeof e.type === 'string', res.body);
    }
    return d;
}
const findErr = (d, loc) => d.find((e) => JSON.stringify(e.loc) === JSON.stringify(loc));

test('health, liveness and version are face-local and public', async () => {
    let r = await srv.get(`${P}/health`);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { status: 'healthy', database: 'connected' });
    r = await srv.get(`${P}/health/ready`);
    assert.equal(r.status, 200);
    r = await srv.get(`${P}/health/live`);
    assert.equal(r.json.status, 'alive');
    assert.equal(typeof r.json.version, 'string');
    assert.equal(typeof r.json.uptime_seconds, 'number');
    r = await srv.get(`${P}/version`);
    assert.equal(r.json.api_version, '0.9.1');
    const f = r.json.features;
    for (const k of ['observations', 'mcp', 'worker', 'bank_config_api', 'bank_llm_health', 'file_upload_api',
        'document_export_api', 'document_import_api', 'audit_log', 'llm_trace', 'store_document_text']) {
        assert.equal(typeof f[k], 'boolean', k);
    }
    assert.equal(f.bank_config_api, true);
    assert.equal(f.worker, true); // async retain runs on the queue's workers
    assert.equal(f.store_document_text, true); // GET …/documents/{id} returns original_text
    assert.equal(f.observations, false);
});

test('unknown routes answer {"detail":"Not Found"}; unimplemented bank routes stay 404', async () => {
    assert.equal(detail(await a('GET', `${P}/nope`), 404), 'Not Found');
    assert.equal(detail(await a('GET', `${bank('x')}/reflections`), 404), 'Not Found'); // 0.1-era route, not served
    assert.equal((await a('POST', `${bank('x')}/reflect`, {})).status, 422); // served: no query is a validation error
});

test('401 {"detail":...} without a key or with a wrong key; bare key accepted', async () => {
    for (const [m, p] of [['GET', `${P}/v1/default/banks`], ['PUT', bank('x')], ['GET', `${bank('x')}/profile`],
        ['GET', `${bank('x')}/config`], ['DELETE', bank('x')]]) {
        const d = detail(await call(null, m, p, m === 'PUT' ? {} : undefined), 401);
        assert.equal(typeof d, 'string');
    }
    detail(await call('sk_' + 'x'.repeat(40), 'GET', `${P}/v1/default/banks`), 401);
    const r = await srv.get(`${P}/v1/default/banks`, { headers: { Authorization: A.key } });
    assert.equal(r.status, 200, r.body);
});

test('PUT creates a bank with defaults; GET profile; PUT again updates', async () => {
    const id = uniqueName('b');
    let r = await a('PUT', bank(id), {});
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { bank_id: id, name: id, disposition: { skepticism: 3, literalism: 3, empathy: 3 }, mission: '', background: '' });
    r = await a('PUT', bank(id), { name: 'Alice', background: 'I help', disposition: { skepticism: 5, literalism: 1, empathy: 4 }, disposition_empathy: 2 });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { bank_id: id, name: 'Alice', disposition: { skepticism: 5, literalism: 1, empathy: 2 }, mission: 'I help', background: 'I help' });
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'Alice');
    assert.equal(r.json.background, 'I help');
    // reflect_mission wins over mission and background (setMission sends reflect_mission).
    r = await a('PUT', bank(id), { reflect_mission: 'R', mission: 'M', background: 'G' });
    assert.equal(r.json.mission, 'R');
    assert.equal(r.json.name, 'Alice');
});

test('bank ids are any string: percent-decoded, unicode, spaces, braces', async () => {
    for (const id of ['with space', 'ümlaut/слово', 'a{b}c', '%41', 'x'.repeat(256)]) {
        let r = await a('PUT', bank(id), { name: 'n' });
        assert.equal(r.status, 200, `${id}: ${r.body}`);
        assert.equal(r.json.bank_id, id);
        r = await a('GET', `${bank(id)}/profile`);
        assert.equal(r.json.bank_id, id);
        r = await a('DELETE', bank(id));
        assert.equal(r.status, 200);
    }
});

test('oversize and control-character bank ids are 422', async () => {
    let d = validation(await a('PUT', bank('x'.repeat(257)), {}));
    assert.equal(d[0].type, 'string_too_long');
    assert.deepEqual(d[0].loc, ['path', 'bank_id']);
    assert.equal(d[0].msg, 'String should have at most 256 characters');
    d = validation(await a('GET', `${P}/v1/default/banks/a%01b/profile`));
    assert.deepEqual(d[0].loc, ['path', 'bank_id']);
});

test('GET profile and PATCH on a missing bank are 404 and create nothing', async () => {
    const id = uniqueName('missing');
    assert.equal(detail(await a('GET', `${bank(id)}/profile`), 404), `Bank '${id}' not found`);
    assert.equal(detail(await a('PATCH', bank(id), { name: 'x' }), 404), `Bank '${id}' not found`);
    const r = await a('GET', `${P}/v1/default/banks?q=${encodeURIComponent(id)}`);
    assert.equal(r.json.total, 0);
    detail(await a('GET', `${bank(id)}/profile`), 404);
});

test('PATCH updates only the given fields; an empty PATCH is 422', async () => {
    const id = uniqueName('p');
    await a('PUT', bank(id), { name: 'N', mission: 'M', disposition_skepticism: 4 });
    let r = await a('PATCH', bank(id), { disposition_literalism: 5 });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { bank_id: id, name: 'N', disposition: { skepticism: 4, literalism: 5, empathy: 3 }, mission: 'M', background: 'M' });
    r = await a('PATCH', bank(id), {});
    assert.equal(r.status, 422);
    assert.equal(typeof r.json.detail, 'string');
});

test('422 shapes: wrong types, ranges, missing fields, bad JSON, missing body', async () => {
    const id = uniqueName('v');
    let d = validation(await a('PUT', bank(id), { name: 5, disposition_skepticism: 6, enable_observations: 'maybe', retain_chunk_size: 'big', mission: [] }));
    assert.deepEqual(findErr(d, ['body', 'name']), { type: 'string_type', loc: ['body', 'name'], msg: 'Input should be a valid string', input: 5 });
    assert.deepEqual(findErr(d, ['body', 'disposition_skepticism']),
        { type: 'less_than_equal', loc: ['body', 'disposition_skepticism'], msg: 'Input should be less than or equal to 5', input: 6, ctx: { le: 5 } });
    assert.equal(findErr(d, ['body', 'enable_observations']).type, 'bool_parsing');
    assert.equal(findErr(d, ['body', 'retain_chunk_size']).type, 'int_parsing');
    assert.equal(findErr(d, ['body', 'mission']).type, 'string_type');
    // Nothing was written.
    detail(await a('GET', `${bank(id)}/profile`), 404);

    d = validation(await a('PUT', bank(id), { disposition: { skepticism: 0, literalism: 2.5 } }));
    assert.equal(findErr(d, ['body', 'disposition', 'skepticism']).type, 'greater_than_equal');
    assert.equal(findErr(d, ['body', 'disposition', 'literalism']).type, 'int_from_float');
    const miss = findErr(d, ['body', 'disposition', 'empathy']);
    assert.equal(miss.type, 'missing');
    assert.equal(miss.msg, 'Field required');

    d = validation(await a('PUT', `${bank(id)}/profile`, {}));
    assert.deepEqual(d[0].loc, ['body', 'disposition']);
    assert.equal(d[0].type, 'missing');
    d = validation(await a('POST', `${bank(id)}/background`, { update_disposition: false }));
    assert.deepEqual(d[0].loc, ['body', 'content']);
    d = validation(await a('POST', `${bank(id)}/background`, { content: 7 }));
    assert.equal(d[0].msg, 'Input should be a valid string');
    d = validation(await a('PUT', bank(id), '{"name":'));
    assert.equal(d[0].type, 'json_invalid');
    d = validation(await a('PUT', bank(id)));
    assert.deepEqual(d[0].loc, ['body']);
    assert.equal(d[0].type, 'missing');
    d = validation(await a('PUT', bank(id), '[1,2]'));
    assert.equal(d[0].type, 'model_attributes_type');
    d = validation(await a('GET', `${P}/v1/default/banks?limit=abc&offset=-1`));
    assert.equal(findErr(d, ['query', 'limit']).type, 'int_parsing');
    assert.equal(findErr(d, ['query', 'offset']).type, 'greater_than_equal');
});

test('PUT profile sets the disposition (creating the bank); POST background sets the mission', async () => {
    const id = uniqueName('d');
    let r = await a('PUT', `${bank(id)}/profile`, { disposition: { skepticism: 1, literalism: 2, empathy: 3 } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.disposition, { skepticism: 1, literalism: 2, empathy: 3 });
    assert.equal(r.json.name, id);
    r = await a('POST', `${bank(id)}/background`, { content: 'I was born in Texas' });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, { mission: 'I was born in Texas', background: 'I was born in Texas' });
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.json.mission, 'I was born in Texas');
    assert.deepEqual(r.json.disposition, { skepticism: 1, literalism: 2, empathy: 3 });
});

test('list: {banks,total,limit,offset}, q over id and name, paging, timestamps', async () => {
    const tag = uniqueName('L').toLowerCase();
    const ids = [`${tag}-1`, `${tag}-2`, `${tag}-3`];
    for (const id of ids) await a('PUT', bank(id), {});
    await a('PATCH', bank(ids[0]), { name: `Named ${tag.toUpperCase()} Zed` });
    let r = await a('GET', `${P}/v1/default/banks?q=${tag}`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.total, 3);
    assert.equal(r.json.limit, 100);
    assert.equal(r.json.offset, 0);
    assert.deepEqual(r.json.banks.map((b) => b.bank_id), [ids[2], ids[1], ids[0]]); // newest first
    const item = r.json.banks.find((b) => b.bank_id === ids[0]);
    assert.equal(item.name, `Named ${tag.toUpperCase()} Zed`);
    assert.deepEqual(item.disposition, { skepticism: 3, literalism: 3, empathy: 3 });
    assert.equal(item.mission, '');
    assert.equal(item.fact_count, 0);
    assert.match(item.created_at, ISO);
    assert.match(item.updated_at, ISO);
    assert.ok(!('last_write_at' in item) && !('last_document_at' in item), 'null keys are dropped');
    r = await a('GET', `${P}/v1/default/banks?q=zed`); // by name, case-insensitive
    assert.ok(r.json.banks.some((b) => b.bank_id === ids[0]));
    r = await a('GET', `${P}/v1/default/banks?q=${tag}&limit=1&offset=1`);
    assert.equal(r.json.total, 3);
    assert.deepEqual(r.json.banks.map((b) => b.bank_id), [ids[1]]);
    r = await a('GET', `${P}/v1/default/banks?q=${tag}&limit=0`);
    assert.equal(r.json.banks.length, 0);
    assert.equal(r.json.total, 3);
});

test('DELETE removes the bank and its index entry; deleting again succeeds', async () => {
    const id = uniqueName('del');
    await a('PUT', bank(id), { name: 'gone soon' });
    let r = await a('DELETE', bank(id));
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.success, true);
    assert.equal(r.json.deleted_count, 0);
    assert.equal(typeof r.json.message, 'string');
    detail(await a('GET', `${bank(id)}/profile`), 404);
    r = await a('GET', `${P}/v1/default/banks?q=${id}`);
    assert.equal(r.json.total, 0);
    r = await a('DELETE', bank(id));
    assert.equal(r.status, 200);
    assert.equal(r.json.success, true);
});

test('config: defaults, PATCH by field and env names, lax coercion, DELETE resets', async () => {
    const id = uniqueName('cfg');
    // A bank that does not exist has the defaults and reading creates nothing.
    let r = await a('GET', `${bank(id)}/config`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.bank_id, id);
    assert.equal(r.json.config.retain_chunk_size, 3000);
    assert.equal(r.json.config.retain_extraction_mode, 'concise');
    assert.equal(r.json.config.enable_observations, true);
    assert.deepEqual(r.json.overrides, {});
    detail(await a('GET', `${bank(id)}/profile`), 404);

    r = await a('PATCH', `${bank(id)}/config`, { updates: { HINDSIGHT_API_RETAIN_CHUNK_SIZE: '1200', retain_extraction_mode: 'verbose', enable_reranking: false, disposition_empathy: 5, reflect_mission: 'Be brief' } });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.overrides, { retain_chunk_size: 1200, retain_extraction_mode: 'verbose', enable_reranking: false, disposition_empathy: 5, reflect_mission: 'Be brief' });
    assert.equal(r.json.config.retain_chunk_size, 1200);
    assert.equal(r.json.config.enable_graph_retrieval, true);
    // Config and profile are the same values.
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.json.mission, 'Be brief');
    assert.equal(r.json.disposition.empathy, 5);
    // PUT B with config fields writes overrides too.
    await a('PUT', bank(id), { retain_mission: 'Only tech', enable_observations: false });
    r = await a('GET', `${bank(id)}/config`);
    assert.equal(r.json.overrides.retain_mission, 'Only tech');
    assert.equal(r.json.config.enable_observations, false);
    // null removes one override.
    r = await a('PATCH', `${bank(id)}/config`, { updates: { retain_mission: null } });
    assert.ok(!('retain_mission' in r.json.overrides));
    r = await a('DELETE', `${bank(id)}/config`);
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json.overrides, {});
    assert.equal(r.json.config.retain_chunk_size, 3000);
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.json.mission, '');
    assert.equal(r.json.disposition.empathy, 3);
});

test('config PATCH: unknown keys are 400, bad values 422, missing updates 422', async () => {
    const id = uniqueName('cfgbad');
    const d400 = detail(await a('PATCH', `${bank(id)}/config`, { updates: { nonsense_key: 1, retain_chunk_size: 5 } }), 400);
    assert.match(d400, /nonsense_key/);
    let d = validation(await a('PATCH', `${bank(id)}/config`, { updates: { retain_chunk_size: 1.5, retain_extraction_mode: 'loud', enable_observations: [] } }));
    assert.equal(findErr(d, ['body', 'updates', 'retain_chunk_size']).type, 'int_from_float');
    assert.equal(findErr(d, ['body', 'updates', 'retain_extraction_mode']).type, 'literal_error');
    assert.equal(findErr(d, ['body', 'updates', 'enable_observations']).type, 'bool_type');
    d = validation(await a('PATCH', `${bank(id)}/config`, {}));
    assert.deepEqual(d[0].loc, ['body', 'updates']);
    d = validation(await a('PATCH', `${bank(id)}/config`, { updates: 'x' }));
    assert.equal(d[0].type, 'dict_type');
    // Nothing was created by the refused writes.
    detail(await a('GET', `${bank(id)}/profile`), 404);
});

test('workspace isolation: the same bank id in two workspaces are two banks', async () => {
    const id = uniqueName('iso');
    await a('PUT', bank(id), { name: 'of A' });
    detail(await call(B.key, 'GET', `${bank(id)}/profile`), 404);
    let r = await call(B.key, 'GET', `${P}/v1/default/banks?q=${id}`);
    assert.equal(r.json.total, 0);
    r = await call(B.key, 'PUT', bank(id), { name: 'of B' });
    assert.equal(r.json.name, 'of B');
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.json.name, 'of A');
    await call(B.key, 'DELETE', bank(id));
    r = await a('GET', `${bank(id)}/profile`);
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'of A');
});

test('anonymous mode: key-less requests act on ENGRAM_ANONYMOUS_WORKSPACE only', async () => {
    const ws = await createWorkspace(uniqueName('anon'));
    const { key } = await workspaceWithKey('anonOther');
    const e = await startEngram({ env: { ENGRAM_ANONYMOUS_WORKSPACE: ws.name } });
    try {
        assert.ok(e.lines.some((l) => l.level === 'warn' && /ANONYMOUS/.test(l.msg || '')), 'loud warning at start');
        const id = uniqueName('anonbank');
        let r;
        for (let i = 0; i < 100; i++) { // the workspace is resolved right after Redis answers
            r = await e.request('PUT', bank(id), { body: { name: 'anon' } });
            if (r.status !== 503) break;
            await new Promise((res) => setTimeout(res, 50));
        }
        assert.equal(r.status, 200, r.body);
        r = await e.request('GET', `${bank(id)}/profile`);
        assert.equal(r.json.name, 'anon');
        // A key still selects its own workspace, and a wrong key is still refused.
        r = await e.request('GET', `${bank(id)}/profile`, { headers: { Authorization: `Bearer ${key}` } });
        assert.equal(r.status, 404);
        r = await e.request('GET', `${bank(id)}/profile`, { headers: { Authorization: 'Bearer sk_wrong' } });
        assert.equal(r.status, 401);
        // engram's own routes are not opened by the switch.
        r = await e.get('/engram/v1/whoami');
        assert.equal(r.status, 401);
    } finally {
        await e.stop();
    }
    // Without the switch (the supervised server), key-less requests are 401.
    detail(await call(null, 'GET', `${P}/v1/default/banks`), 401);
});

test('ENGRAM_MOUNT_HINDSIGHT moves the face', async () => {
    const e = await startEngram({ env: { ENGRAM_MOUNT_HINDSIGHT: '/hs' } });
    try {
        let r = await e.get('/hs/version');
        assert.equal(r.json.api_version, '0.9.1');
        r = await e.request('PUT', '/hs/v1/default/banks/m1', { headers: { Authorization: `Bearer ${A.key}` }, body: {} });
        assert.equal(r.status, 200, r.body);
        r = await e.get('/hindsight/version');
        assert.equal(r.status, 404);
    } finally {
        await e.stop();
    }
});
