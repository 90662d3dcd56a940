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
