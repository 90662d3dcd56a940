// Retain throughput, recall latency and memory per fact over HTTP. Run by tools/bench/recall.
//
//   node tools/bench/recall.mjs PORT KEY FACTS QUERIES ENGRAMD_PID BANK
//
// The corpus is deterministic (a fixed-seed generator): fact i is one sentence naming a person,
// an action, a place or thing, a project word and a date, e.g. "Mara Velkan reviewed the
// kasorel budget in Lisbon on 2023-05-04." Each recall asks a paraphrased question about one
// fact ("What did Mara Velkan review in Lisbon?"); the bench also reports how often that fact
// is in the top 5, as a sanity check that recall is doing real work.
// Baseline in the same run: GET /hindsight/health/live through the same client and concurrency.
import http from 'node:http';
import { readFileSync } from 'node:fs';

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
function request(method, path, body) {
    return new Promise((resolve, reject) => {
        const data = body ? JSON.stringify(body) : null;
        const t0 = process.hrtime.bigint();
        const req = http.request({
            host: '127.0.0.1', port, method, path, agent,
            headers: { authorization: `Bearer ${key}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const ms = Number(process.hrtime.bigint() - t0) / 1e6;
                const text = Buffer.concat(chunks).toString();
                if (res.statusCode !== 200) return reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`));
                resolve({ ms, json: text ? JSON.parse(text) : null });
            });
        });
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
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
await request('PUT', B, {});
const rss0 = rssKiB();

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

const baseline = await run(QUERIES, async () => (await request('GET', '/hindsight/health/live')).ms);
let hits = 0;
const qidx = (k) => Math.floor((k * 7919) % FACTS);
const recallLat = await run(QUERIES, async (k) => {
    const f = corpus[qidx(k)];
    const r = await request('POST', `${B}/memories/recall`, { query: f.q, budget: 'mid', max_tokens: 4096 });
    if (r.json.results.slice(0, 5).some((x) => x.text === f.text)) hits++;
    return r.ms;
});
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
console.log(`  recall   p50 ${f2(pct(recallLat, 50))} ms  p99 ${f2(pct(recallLat, 99))} ms  (${CLIENTS} clients, budget mid, ${QUERIES} queries, top-5 hit ${(100 * hits / QUERIES).toFixed(1)}%)`);
console.log(`  baseline p50 ${f2(pct(baseline, 50))} ms  p99 ${f2(pct(baseline, 99))} ms  (GET /hindsight/health/live, same client)  ratio p50 ${(pct(recallLat, 50) / pct(baseline, 50)).toFixed(1)}x`);
console.log(`  in-process recall p50 ${f2(inproc.length ? pct(inproc, 50) : NaN)} ms  p99 ${f2(inproc.length ? pct(inproc, 99) : NaN)} ms (trace)`);
console.log(`  engramd RSS +${((rss1 - rss0) / 1024).toFixed(1)} MiB = ${(((rss1 - rss0) * 1024) / FACTS).toFixed(0)} B/fact`);
agent.destroy();
