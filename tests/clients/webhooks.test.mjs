// Standard Webhooks deliveries verified by the standardwebhooks npm package (the reference
// implementation's JavaScript library): headers, signature over "<id>.<timestamp>.<body>", and
// the same webhook-id on a retry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Webhook } from 'standardwebhooks';
import { startEngram, workspaceWithKey, waitFor, PrivateRedis } from '../integration/harness.mjs';
import { Receiver } from '../integration/webhook_receiver.mjs';

let redis, srv, W;

before(async () => {
    // A private Redis: engramd processes of other suites must not take this suite's jobs.
    redis = await new PrivateRedis().start();
    srv = await startEngram({
        redisUrl: redis.url,
        env: { ENGRAM_OUTBOUND_ALLOW: '127.0.0.0/8', ENGRAM_WEBHOOK_RETRY_SCALE: '0.001', ENGRAM_ACCESS_LOG: 'off' },
    });
    W = await workspaceWithKey('whStd', { redisUrl: redis.url });
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

test('standard signatures verify with the standardwebhooks library, also on a retry', async (t) => {
    const rx = await new Receiver({ reply: (_, n) => (n === 1 ? 503 : 204) }).start();
    t.after(() => rx.stop());
    const c = await srv.request('POST', '/engram/v1/webhooks', { key: W.key, body: { url: rx.url } });
    assert.equal(c.status, 201, c.body);
    const e = await srv.request('POST', '/engram/v1/events', { key: W.key, body: { type: 'memory.created', entity: { id: 'm1', text: 'naïve "q"' } } });
    assert.equal(e.status, 201, e.body);
    await waitFor(() => rx.requests.length >= 2, { timeoutMs: 10000, what: 'two attempts' });

    const wh = new Webhook(c.json.secret);
    for (const r of rx.requests) {
        const payload = wh.verify(r.body, r.headers); // throws when the signature is wrong
        assert.deepEqual(payload, e.json);
        assert.match(r.headers['webhook-id'], /^msg_/);
        assert.match(r.headers['webhook-timestamp'], /^\d+$/);
        assert.match(r.headers['webhook-signature'], /^v1,[A-Za-z0-9+/]+=*$/);
    }
    assert.equal(rx.uniqueIds().size, 1, 'the webhook-id is stable across retries');
    assert.throws(() => new Webhook('whsec_' + Buffer.alloc(24, 1).toString('base64')).verify(rx.requests[0].body, rx.requests[0].headers));

    const d = await srv.request('GET', `/engram/v1/webhooks/${c.json.id}/deliveries`, { key: W.key });
    assert.equal(d.status, 200);
    assert.equal(d.json.data[0].id, rx.requests[0].headers['webhook-id']);
    assert.deepEqual(d.json.data[0].attempts.map((a) => a.status_code), [503, 204]);
});
