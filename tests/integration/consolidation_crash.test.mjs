// Consolidation survives kill -9: engramd is killed while a consolidation run is marking a
// large bank's facts, started again, and the run completes from the facts still pending (the job
// is taken over after ENGRAM_CONSOLIDATION_VISIBILITY): every fact consolidated, each repeated
// statement one observation, no fact the source of two observations, and the next request
// starts a new run (nothing stuck).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PrivateRedis, startEngram, workspaceWithKey, waitFor, uniqueName, cli } from './harness.mjs';

const redis = new PrivateRedis();
let srv = null;
after(async () => {
    if (srv) await srv.stop('SIGKILL', 2000);
    await redis.destroy();
});

const env = { ENGRAM_CONSOLIDATION_VISIBILITY: '2s' };
const P = '/hindsight/v1/default/banks';

// Distinct statements: six words drawn per index, so two statements share few words.
const WORDS = ('amber basil cedar delta ember fjord garnet harbor indigo juniper kelp lantern ' +
    'meadow nectar orchid pepper quartz raven saffron tundra umber violet willow xenon yarrow ' +
    'zephyr anchor bramble cobalt dune').split(' ');
function statement(i) {
    const w = [];
    let x = i * 7919 + 13;
    for (let k = 0; k < 6; k++) {
        w.push(WORDS[x % WORDS.length]);
        x = Math.floor(x / WORDS.length) + (k + 1) * 104729;
    }
    return `Visitor${i} remembers the ${w.join(' ')} trail.`;
}

test('kill -9 during a consolidation run: it resumes and completes, nothing duplicated', async () => {
    await redis.start();
    srv = await startEngram({ redisUrl: redis.url, env });
    await waitFor(async () => (await cli(['workspaces', 'list'], { redisUrl: redis.url })).stdout.includes('default'),
        { timeoutMs: 10000, what: 'the default workspace' });
    const { key } = await workspaceWithKey('ccrash', { redisUrl: redis.url });
    const bankId = uniqueName('ccrash');
    const call = (method, path, body) => srv.request(method, `${P}/${bankId}${path}`, {
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: 60000,
    });
    const ok = (r) => { assert.equal(r.status, 200, r.body); return r.json; };

    ok(await call('PUT', '', { enable_observations: false }));
    const M = 800; // statements, each retained twice
    for (let round = 0; round < 2; round++) {
        for (let s = 0; s < M; s += 200) {
            const items = [];
            for (let i = s; i < s + 200; i++) items.push({ content: statement(i), tags: ['crash'] });
            ok(await call('POST', '/memories', { items }));
        }
    }
    let st = ok(await call('GET', '/stats'));
    assert.equal(st.pending_consolidation, 2 * M, JSON.stringify(st));

    const op = ok(await call('POST', '/consolidate')).operation_id;
    await waitFor(async () => ok(await call('GET', '/stats')).pending_consolidation <= 2 * M - 200,
        { timeoutMs: 60000, intervalMs: 5, what: 'a few batches consolidated' });
    srv.signal('SIGKILL');
    await srv.exitPromise;

    srv = await startEngram({ redisUrl: redis.url, env });
    const mid = ok(await call('GET', '/stats'));
    assert.ok(mid.pending_consolidation > 0, `the kill must land mid-way: ${JSON.stringify(mid)}`);
    await waitFor(async () => {
        const o = ok(await call('GET', `/operations/${op}`));
        return o.status === 'completed';
    }, { timeoutMs: 90000, intervalMs: 200, what: 'the run to complete after the restart' });

    st = ok(await call('GET', '/stats'));
    assert.equal(st.pending_consolidation, 0, JSON.stringify(st));
    assert.equal(st.failed_consolidation, 0);
    const obs = [];
    for (let off = 0; ; off += 500) {
        const page = ok(await call('GET', `/memories/list?type=observation&limit=500&offset=${off}`));
        obs.push(...page.items);
        if (obs.length >= page.total) break;
    }
    // Every statement said twice is one observation with both facts; none is made twice, and no
    // fact backs two observations.
    const texts = new Set(obs.map((o) => o.text));
    assert.equal(texts.size, obs.length, 'an observation was made twice');
    const seen = new Set();
    for (const o of obs) {
        assert.ok(o.proof_count >= 2, JSON.stringify(o));
        for (const s of o.source_memory_ids) {
            assert.ok(!seen.has(s), `fact ${s} backs two observations`);
            seen.add(s);
        }
    }
    assert.equal(seen.size, 2 * M, `${seen.size} of ${2 * M} facts in observations`);

    // Nothing stuck: the next request is a new run, and it completes.
    const next = ok(await call('POST', '/consolidate'));
    assert.notEqual(next.operation_id, op);
    assert.equal(next.deduplicated, false);
    await waitFor(async () => ok(await call('GET', `/operations/${next.operation_id}`)).status === 'completed',
        { timeoutMs: 30000, what: 'the next run' });
});
