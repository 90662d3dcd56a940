// Signed webhook deliveries per second to a local receiver. Run by tools/bench/webhooks (which
// starts Redis and engramd with ENGRAM_OUTBOUND_ALLOW=127.0.0.0/8).
//
//   node tools/bench/webhooks.mjs PORT KEY EVENTS
//
// Baseline in the same run: the same receiver fed the same bodies directly by node's HTTP client
// with the same concurrency as engramd's delivery queue (64), i.e. what the receiver can take.
import http from 'node:http';
import crypto from 'node:crypto';

const [port, key, eventsArg] = process.argv.slice(2);
const EVENTS = Number(eventsArg || 5000);
const CONCURRENCY = 64;

let received = 0;
let firstAt = 0;
let lastAt = 0;
let badSignature = 0;
let secret = null;
let onAll = null;
const receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (secret && req.headers['webhook-id']) {
            // Verify every Standard Webhooks signature, as a real receiver would.
            const signed = `${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${body}`;
            const mac = crypto.createHmac('sha256', secret).update(signed).digest('base64');
            if (req.headers['webhook-signature'] !== `v1,${mac}`) badSignature++;
        }
        const now = performance.now();
        if (received === 0) firstAt = now;
        lastAt = now;
        received++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
        if (onAll && received >= onAll.n) onAll.resolve();
    });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const rport = receiver.address().port;

function call(p, method, path, body, headers = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request({ host: '127.0.0.1', port: p, method, path, agent: keepAlive,
            headers: { 'content-type': 'application/json', ...headers,
                ...(data ? { 'content-length': Buffer.byteLength(data) } : {}) } }, (res) => {
            let out = '';
            res.on('data', (d) => { out += d; });
            res.on('end', () => resolve({ status: res.statusCode, body: out }));
        });
        req.on('error', reject);
        req.end(data);
    });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

async function pool(n, fn) {
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < n) await fn(next++);
    }));
}

function waitAll(n, timeoutMs) {
    return new Promise((resolve) => {
        if (received >= n) return resolve(true);
        onAll = { n, resolve: () => resolve(true) };
        setTimeout(() => resolve(false), timeoutMs);
    });
}

// Baseline: POST the same kind of body straight to the receiver.
const sample = JSON.stringify({ id: 'evt_0_0', type: 'bench.webhook', entity: { id: 'x' } });
let t0 = performance.now();
await pool(EVENTS, () => call(rport, 'POST', '/', JSON.parse(sample)));
const baseMs = performance.now() - t0;
received = 0;
onAll = null;

// engramd: one endpoint, EVENTS events emitted over HTTP, every one delivered signed.
const created = await call(port, 'POST', '/engram/v1/webhooks',
    { url: `http://127.0.0.1:${rport}/hook`, event_types: ['bench.*'], signing: 'standard' },
    { authorization: `Bearer ${key}` });
if (created.status !== 201) throw new Error(`creating the endpoint: ${created.status} ${created.body}`);
secret = Buffer.from(JSON.parse(created.body).secret.replace(/^whsec_/, ''), 'base64');

t0 = performance.now();
await pool(EVENTS, (i) => call(port, 'POST', '/engram/v1/events',
    { type: 'bench.webhook', entity: { id: `e${i}` } }, { authorization: `Bearer ${key}` }));
const emitMs = performance.now() - t0;
const ok = await waitAll(EVENTS, 120000);
const endMs = performance.now() - t0;

console.log(`\n${EVENTS} events, one Standard Webhooks endpoint, receiver verifies every signature\n`);
console.log('| path | requests | wall s | per second |');
console.log('|---|---:|---:|---:|');
console.log(`| baseline: node → receiver directly (${CONCURRENCY} in flight) | ${EVENTS} | ${(baseMs / 1000).toFixed(2)} | ${(EVENTS / (baseMs / 1000)).toFixed(0)} |`);
console.log(`| emit over HTTP (POST /engram/v1/events, ${CONCURRENCY} in flight) | ${EVENTS} | ${(emitMs / 1000).toFixed(2)} | ${(EVENTS / (emitMs / 1000)).toFixed(0)} |`);
const span = (lastAt - firstAt) / 1000;
console.log(`| signed deliveries (first → last received) | ${received} | ${span.toFixed(2)} | ${(received / span).toFixed(0)} |`);
console.log(`| end to end (first emit → last delivery) | ${received} | ${(endMs / 1000).toFixed(2)} | ${(received / (endMs / 1000)).toFixed(0)} |`);
console.log(`\nall delivered: ${ok ? 'yes' : `NO (${received}/${EVENTS})`}; bad signatures: ${badSignature}`);
const rate = received / span;
console.log(`deliveries/s: ${rate.toFixed(0)} (goal ≥ 2,000): ${rate >= 2000 ? 'met' : 'NOT met'}`);
receiver.close();
process.exit(ok && badSignature === 0 ? 0 : 1);
