// Retain throughput, recall latency and memory per fact over HTTP. Run by tools/bench/recall.
//
//   node tools/bench/recall.mjs PORT KEY FACTS QUERIES ENGRAMD_PID BANK
//
// The corpus is deterministic (a fixed-seed generator): fact i is one sentence naming a person,
// an action, a place or thing, a project word and a date, e.g. "Mara Velkan reviewed the
// kasorel budget in Lisbon on 2023-05-04." Each recall asks a paraphrased question about one
// fact ("What did Mara Velkan review in Lisbon?"); the bench also reports how often that fact
// is in the top 5, as a sanity check that recall is doing real work.
// Baselines in the same run: GET /hindsight/health/live through the same client and concurrency,
// and the client's own floor: the same recall requests answered with a recorded recall response
// (the same bytes) by a trivial node server pinned where engramd is (ENGRAM_BENCH_SERVER_PIN, a
// command prefix such as "taskset -c 0"). engramd's CPU time per recall (from /proc) is what the
// server spends; with 8 requests in flight on one loop, latency is about 8x the larger of that
// and the client's time per response.
//
// The baseline, recall and floor requests are sent by the C client (tools/bench/recall_client.c,
// path in ENGRAM_BENCH_RECALL_CLIENT) unless ENGRAM_BENCH_CLIENT=node: it reads each response
// without parsing it, where this node client spent 1-3 ms of CPU per ~140 KiB response on
// reading and JSON.parse. With the C client the floor's server is its `serve` mode too.
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [port, key, factsArg, queriesArg, pidArg, bank] = process.argv.slice(2);
const FACTS = Number(factsArg);
const QUERIES = Number(queriesArg);
const PID = Number(pidArg);
const BATCH = 100;
const LOAD_CONCURRENCY = 4;
const CLIENTS = 8;

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

// ---- deterministic corpus ----------------------------------------------------------------
let seed = 0x2545f491n;
function rnd() {
    // xorshift32 on a Number: fixed seed, the same corpus on every run
    seed ^= seed << 13n; seed &= 0xffffffffn;
    seed ^= seed >> 17n;
    seed ^= seed << 5n; seed &= 0xffffffffn;
    return Number(seed) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const syll = ['ka', 'ro', 'mi', 'tan', 'el', 'sor', 'vi', 'len', 'dra', 'pe', 'lu', 'ni', 'gar', 'to', 'bel', 'sha'];
const word = (n) => Array.from({ length: n }, () => pick(syll)).join('');
const cap = (s) => s[0].toUpperCase() + s.slice(1);
const first = Array.from({ length: 400 }, () => cap(word(2)));
const last = Array.from({ length: 400 }, () => cap(word(3)));
const cities = ['Lisbon', 'Berlin', 'Nairobi', 'Osaka', 'Lima', 'Toronto', 'Oslo', 'Hanoi', 'Quito', 'Perth',
    'Dublin', 'Seville', 'Krakow', 'Tunis', 'Austin', 'Denver', 'Porto', 'Bergen', 'Cusco', 'Zagreb'];
const actions = [
    ['reviewed the', 'budget', 'What did {p} review in {c}?'],
    ['presented the', 'roadmap', 'What did {p} present in {c}?'],
    ['fixed a bug in the', 'service', 'Which service did {p} fix in {c}?'],
    ['signed the', 'contract', 'What contract did {p} sign in {c}?'],
    ['hired a designer for the', 'project', 'Who did {p} hire in {c}?'],
    ['moved the', 'servers', 'Where did {p} move the {w} servers?'],
    ['cancelled the', 'launch', 'Why was the {w} launch cancelled by {p}?'],
    ['bought a bike for the', 'team', 'What did {p} buy in {c}?'],
];
const corpus = [];
for (let i = 0; i < FACTS; i++) {
    const p = `${pick(first)} ${pick(last)}`;
    const c = pick(cities);
    const a = pick(actions);
    const w = word(3);
    const y = 2020 + Math.floor(rnd() * 5), m = 1 + Math.floor(rnd() * 12), d = 1 + Math.floor(rnd() * 28);
    const date = `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
    corpus.push({
        text: `${p} ${a[0]} ${w} ${a[1]} in ${c} on ${date}.`,
        q: a[2].replace('{p}', p).replace('{c}', c).replace('{w}', w) + ` (${w})`,
        ts: `${date}T12:00:00Z`,
    });
}

// ---- HTTP ------------------------------------------------------------------------------------
function request(method, path, body, toPort = port) {
    return new Promise((resolve, reject) => {
        const data = body ? JSON.stringify(body) : null;
        const t0 = process.hrtime.bigint();
        const req = http.request({
            host: '127.0.0.1', port: toPort, method, path, agent,
            headers: { authorization: `Bearer ${key}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const ms = Number(process.hrtime.bigint() - t0) / 1e6;
                const text = Buffer.concat(chunks).toString();
                if (res.statusCode !== 200) return reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`));
                resolve({ ms, json: text ? JSON.parse(text) : null, text });
            });
        });
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
}

// engramd's user + system CPU seconds so far (clock ticks of 10 ms).
function cpuS() {
    const f = readFileSync(`/proc/${PID}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
}

function rssKiB() {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${PID}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
}

const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const B = `/hindsight/v1/default/banks/${encodeURIComponent(bank)}`;

// ---- run -------------------------------------------------------------------------------------
// engram_index_bytes from /metrics: what the bank indexes hold (eg_mindex_bytes), all banks.
async function indexBytes() {
    const r = await new Promise((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/metrics', agent }, (res) => {
            let t = '';
            res.on('data', (c) => (t += c));
            res.on('end', () => resolve(t));
        }).on('error', reject);
    });
    const m = /^engram_index_bytes (\d+)/m.exec(r);
    return m ? Number(m[1]) : NaN;
}

await request('PUT', B, {});
// Observations off: a retain queues a consolidation run (on by default since consolidation
// landed), which would run in engramd during the recall phase and be counted in its CPU per
// recall. This bench measures retain and recall only.
await request('PATCH', `${B}/config`, { updates: { enable_observations: false } });
const rss0 = rssKiB();
const ix0 = await indexBytes();

let next = 0;
const t0 = performance.now();
async function loader() {
    for (;;) {
        const start = next;
        if (start >= FACTS) return;
        next += BATCH;
        const items = corpus.slice(start, start + BATCH).map((f) => ({ content: f.text, timestamp: f.ts }));
        await request('POST', `${B}/memories`, { items });
    }
}
await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, loader));
const loadS = (performance.now() - t0) / 1000;

// The first recall loads nothing new (the retains built the index), but count it in memory.
await request('POST', `${B}/memories/recall`, { query: corpus[0].q, budget: 'mid' });
const rss1 = rssKiB();
const ix1 = await indexBytes();

async function run(n, fn) {
    const lat = [];
    let i = 0;
    await Promise.all(Array.from({ length: CLIENTS }, async () => {
        for (;;) {
            const k = i++;
            if (k >= n) return;
            lat.push(await fn(k));
        }
    }));
    return lat;
}

const CLIENT = process.env.ENGRAM_BENCH_CLIENT || 'c';
const CBIN = process.env.ENGRAM_BENCH_RECALL_CLIENT;
if (CLIENT === 'c' && !CBIN) throw new Error('ENGRAM_BENCH_RECALL_CLIENT is not set');
let hits = 0, bytes = 0, sample = null;
const qidx = (k) => Math.floor((k * 7919) % FACTS);
const recallBody = (k) => ({ query: corpus[qidx(k)].q, budget: 'mid', max_tokens: 4096 });
const pin = (process.env.ENGRAM_BENCH_SERVER_PIN || '').split(' ').filter(Boolean);
const work = mkdtempSync(join(tmpdir(), 'engram-recall-bench-'));
const reqFile = join(work, 'requests.txt');
writeFileSync(reqFile, Array.from({ length: QUERIES }, (_, k) => `${corpus[qidx(k)].text}\t${JSON.stringify(recallBody(k))}\n`).join(''));

// Run the C client; resolves to its summary line parsed ({ n, p50, p99, max, bytes, hits, errors }).
function runC(args) {
    return new Promise((resolve, reject) => {
        const child = spawn(CBIN, args.map(String), { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.once('exit', (code) => {
            const f = out.trim().split(/\s+/);
            const r = {};
            for (let i = 0; i + 1 < f.length; i += 2) r[f[i]] = Number(f[i + 1]);
            if (code !== 0 || !Number.isFinite(r.p50)) return reject(new Error(`recall_client ${args[0]} exited ${code}: ${out}`));
            resolve(r);
        });
    });
}
const summary = (lat) => ({ p50: pct(lat, 50), p99: pct(lat, 99) });

let baseline, recall, cpuPerRecall;
if (CLIENT === 'c') {
    baseline = await runC(['get', port, key, '/hindsight/health/live', QUERIES, CLIENTS]);
    sample = (await request('POST', `${B}/memories/recall`, recallBody(0))).text;
    const cpu0 = cpuS();
    recall = await runC(['post', port, key, `${B}/memories/recall`, reqFile, CLIENTS]);
    cpuPerRecall = ((cpuS() - cpu0) * 1000) / QUERIES;
    hits = recall.hits;
    bytes = recall.bytes * QUERIES;
} else {
    baseline = summary(await run(QUERIES, async () => (await request('GET', '/hindsight/health/live')).ms));
    const cpu0 = cpuS();
    recall = summary(await run(QUERIES, async (k) => {
        const f = corpus[qidx(k)];
        const r = await request('POST', `${B}/memories/recall`, recallBody(k));
        if (r.json.results.slice(0, 5).some((x) => x.text === f.text)) hits++;
        bytes += r.text.length;
        if (k === 0) sample = r.text;
        return r.ms;
    }));
    cpuPerRecall = ((cpuS() - cpu0) * 1000) / QUERIES;
}

// The client's floor: the same requests, answered with the first recall's response by a trivial
// server (it reads each request and sends the recorded bytes), pinned where engramd is.
async function clientFloor() {
    const file = join(work, 'response.json');
    writeFileSync(file, sample);
    const code = `const http = require('node:http'), fs = require('node:fs');
        const body = fs.readFileSync(process.argv[1]);
        const srv = http.createServer((q, r) => { q.resume(); q.on('end', () => {
            r.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
            r.end(body); }); });
        srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));`;
    const argv = CLIENT === 'c' ? [...pin.slice(1), CBIN, 'serve', file] : [...pin.slice(1), process.execPath, '-e', code, file];
    const child = spawn(pin.length ? pin[0] : argv.shift(), argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
        const floorPort = await new Promise((resolve, reject) => {
            child.stdout.once('data', (d) => resolve(Number(String(d).trim())));
            child.once('exit', (c) => reject(new Error(`canned server exited ${c}`)));
        });
        if (CLIENT === 'c') return await runC(['post', floorPort, key, `${B}/memories/recall`, reqFile, CLIENTS]);
        return summary(await run(QUERIES, async (k) => (await request('POST', `${B}/memories/recall`, recallBody(k), floorPort)).ms));
    } finally {
        child.kill();
    }
}
const floor = await clientFloor();
// engramd's own time, from the trace of a smaller sample
const inproc = [];
for (let k = 0; k < Math.min(200, QUERIES); k++) {
    const r = await request('POST', `${B}/memories/recall`, { query: corpus[qidx(k)].q, budget: 'mid', trace: true });
    const t = r.json.trace || {};
    const ms = t.total_ms ?? t.duration_ms ?? t.summary?.total_duration_ms;
    if (typeof ms === 'number') inproc.push(ms);
}

const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
console.log(`facts ${FACTS}: retain ${(FACTS / loadS).toFixed(0)} facts/s (${loadS.toFixed(1)} s, batches of ${BATCH}, ${LOAD_CONCURRENCY} concurrent)`);
console.log(`  recall   p50 ${f2(recall.p50)} ms  p99 ${f2(recall.p99)} ms  (${CLIENTS} clients, budget mid, ${QUERIES} queries, ${CLIENT} client, top-5 hit ${(100 * hits / QUERIES).toFixed(1)}%)`);
console.log(`  baseline p50 ${f2(baseline.p50)} ms  p99 ${f2(baseline.p99)} ms  (GET /hindsight/health/live, same client)  ratio p50 ${(recall.p50 / baseline.p50).toFixed(1)}x`);
console.log(`  floor    p50 ${f2(floor.p50)} ms  p99 ${f2(floor.p99)} ms  (the same requests answered with a recorded ${(sample.length / 1024).toFixed(0)} KiB recall response by a trivial server: the client's share)`);
console.log(`  engramd CPU ${f2(cpuPerRecall)} ms per recall (responses ${(bytes / QUERIES / 1024).toFixed(0)} KiB on average)`);
console.log(`  in-process recall p50 ${f2(inproc.length ? pct(inproc, 50) : NaN)} ms  p99 ${f2(inproc.length ? pct(inproc, 99) : NaN)} ms (trace)`);
console.log(`  engramd RSS +${((rss1 - rss0) / 1024).toFixed(1)} MiB = ${(((rss1 - rss0) * 1024) / FACTS).toFixed(0)} B/fact; index (engram_index_bytes) +${((ix1 - ix0) / 1048576).toFixed(1)} MiB = ${((ix1 - ix0) / FACTS).toFixed(0)} B/fact`);
agent.destroy();
rmSync(work, { recursive: true, force: true });
