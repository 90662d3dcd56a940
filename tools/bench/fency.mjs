// The Fency path measured against the memory engine it stands on. Run by tools/bench/fency (which
// starts Redis and engramd with the builtin offline providers).
//
//   node tools/bench/fency.mjs PORT SECRET_KEY PUBLISHABLE_KEY MEMORIES TASKS
//
// sync:   MEMORIES TEXT memories through POST /fency/v1/memories (16 at a time), timed until every
//         one is SYNCHRONIZED; baseline: the same texts through Hindsight's sync retain (16 at a
//         time), timed until the last answer.
// search: TASKS MEMORY_SEARCH tasks one after another over those memories, each timed from its
//         session request to its Completed message on the stream's SSE; baseline: Hindsight recall
//         of the same queries over the same texts.
import http from 'node:http';

const [port, sk, pk, memArg, taskArg] = process.argv.slice(2);
const MEMORIES = Number(memArg || 500);
const TASKS = Number(taskArg || 100);
const CONCURRENCY = 16;
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function call(method, path, { body, headers = {} } = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request({ host: '127.0.0.1', port, method, path, agent,
            headers: { 'content-type': 'application/json', ...headers,
                ...(data ? { 'content-length': Buffer.byteLength(data) } : {}) } }, (res) => {
            let out = '';
            res.on('data', (d) => { out += d; });
            res.on('end', () => {
                if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${out}`));
                else resolve(out ? JSON.parse(out) : null);
            });
        });
        req.on('error', reject);
        req.end(data);
    });
}
const v1 = (method, path, body) => call(method, `/fency/v1${path}`, { body, headers: { authorization: `Bearer ${sk}` } });
const pubHeaders = (ct, st) => ({ 'x-fency-publishable-key': pk, 'x-fency-client-token': ct,
    'x-fency-sdk-version': '0.1.208', ...(st ? { 'x-fency-stream-token': st } : {}) });

async function pool(n, fn) {
    let next = 0;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < n) await fn(next++);
    }));
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

// Deterministic, varied texts: a handbook of sections about teams, places and rules.
const TEAMS = ['platform', 'billing', 'support', 'research', 'design', 'security', 'sales', 'legal'];
const CITIES = ['Lisbon', 'Oslo', 'Berlin', 'Toronto', 'Nairobi', 'Osaka', 'Lima', 'Dublin'];
const TOPICS = ['holiday days', 'remote work', 'travel expenses', 'on-call duty', 'equipment budget',
    'parental leave', 'training courses', 'security reviews'];
function text(i) {
    const t = TEAMS[i % 8], c = CITIES[(i >> 3) % 8], topic = TOPICS[(i >> 6) % 8];
    return `Section ${i}. The ${t} team in ${c} follows this rule on ${topic}: members get ${10 + (i % 17)} ` +
        `units per year, approved by the ${t} lead. Requests go through the ${c} office portal at least ` +
        `${2 + (i % 5)} weeks ahead. Exceptions for ${topic} need a written note from the head of ${t}. ` +
        `This section was last revised in ${2018 + (i % 7)} after feedback from the ${c} staff council.`;
}
const query = (i) => `What is the ${TOPICS[i % 8]} rule for the ${TEAMS[(i * 3) % 8]} team in ${CITIES[(i * 5) % 8]}?`;

// ---- sync ---------------------------------------------------------------------------------------

const type = await v1('POST', '/memory-types', { name: 'Handbook', description: 'Company handbook' });
let t0 = performance.now();
const ids = new Array(MEMORIES);
await pool(MEMORIES, async (i) => {
    ids[i] = (await v1('POST', '/memories', { memoryTypeId: type.id, sourceType: 'TEXT', title: `Section ${i}`, text: text(i) })).id;
});
for (;;) {
    let done = 0, failed = 0, token = null;
    do {
        const page = await v1('GET', `/memories?limit=100${token ? `&nextPageToken=${token}` : ''}`);
        for (const m of page.items) {
            if (m.contentStatus === 'SYNCHRONIZED') done++;
            else if (m.contentStatus === 'SYNCHRONIZATION_ERROR') failed++;
        }
        token = page.pagination.nextPageToken;
    } while (token);
    if (failed) throw new Error(`${failed} memories failed to synchronise`);
    if (done >= MEMORIES) break;
    await new Promise((r) => setTimeout(r, 50));
}
const fencySyncS = (performance.now() - t0) / 1000;

const bank = `/hindsight/v1/default/banks/bench-fency-baseline`;
await call('PUT', bank, { body: { enable_observations: false }, headers: { authorization: `Bearer ${sk}` } });
t0 = performance.now();
await pool(MEMORIES, async (i) => {
    await call('POST', `${bank}/memories`, { body: { items: [{ content: text(i) }] }, headers: { authorization: `Bearer ${sk}` } });
});
const hsRetainS = (performance.now() - t0) / 1000;

// ---- search -------------------------------------------------------------------------------------

const session = (obj) => v1('POST', '/sessions', obj).then((s) => s.clientToken);
const stream = await call('POST', '/fency/pub/ct/streams', { headers: pubHeaders(await session({ createStream: {} })) });
const waiting = new Map(); // task id -> resolve
const early = new Set();   // Completed seen before the POST answered with the id
await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/fency/sse/streams/${stream.id}`,
        headers: { 'x-fency-publishable-key': pk, 'x-fency-stream-token': stream.token, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) { reject(new Error(`SSE ${res.statusCode}`)); return; }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
            buf += d;
            let k;
            while ((k = buf.indexOf('\n\n')) >= 0) {
                const ev = buf.slice(0, k);
                buf = buf.slice(k + 2);
                const line = ev.split('\n').find((l) => l.startsWith('data:'));
                if (!line) continue;
                const msg = JSON.parse(Buffer.from(line.slice(5).trim(), 'base64').toString());
                if (msg.type !== 'AGENT_TASK_PROGRESS_ITEM_UPDATED') continue;
                const inner = JSON.parse(msg.data);
                if (inner.eventType !== 'Completed' && inner.eventType !== 'Error') continue;
                if (inner.eventType === 'Error') throw new Error(`task ${msg.agentTaskId}: ${inner.message}`);
                const done = waiting.get(msg.agentTaskId);
                if (done) { waiting.delete(msg.agentTaskId); done(); } else early.add(msg.agentTaskId);
            }
        });
        resolve();
    });
    req.on('error', reject);
});

const taskMs = [];
for (let i = 0; i < TASKS; i++) {
    const start = performance.now();
    const ct = await session({ createAgentTask: { taskType: 'MEMORY_SEARCH' } });
    const task = await call('POST', '/fency/pub/ct-st/agent-tasks', { headers: pubHeaders(ct, stream.token),
        body: { memorySearchTask: { query: query(i), model: 'openai/gpt-4.1-mini', language: 'en', chunkLimit: 10 } } });
    if (!early.delete(task.id)) await new Promise((r) => waiting.set(task.id, r));
    taskMs.push(performance.now() - start);
}

const recallMs = [];
for (let i = 0; i < TASKS; i++) {
    const start = performance.now();
    await call('POST', `${bank}/memories/recall`, { body: { query: query(i) }, headers: { authorization: `Bearer ${sk}` } });
    recallMs.push(performance.now() - start);
}

const f = (x) => x.toFixed(1);
console.log(`sync    fency ${MEMORIES} memories to SYNCHRONIZED: ${f(MEMORIES / fencySyncS)} memories/s (${f(fencySyncS)} s)`);
console.log(`        hindsight sync retain of the same texts:  ${f(MEMORIES / hsRetainS)} items/s (${f(hsRetainS)} s)`);
console.log(`        ratio fency/hindsight: ${(hsRetainS / fencySyncS).toFixed(2)}`);
console.log(`search  fency MEMORY_SEARCH task, session → Completed on SSE: p50 ${f(pct(taskMs, 0.5))} ms, p99 ${f(pct(taskMs, 0.99))} ms`);
console.log(`        hindsight recall of the same queries:             p50 ${f(pct(recallMs, 0.5))} ms, p99 ${f(pct(recallMs, 0.99))} ms`);
console.log(`        ratio task/recall (p50): ${(pct(taskMs, 0.5) / pct(recallMs, 0.5)).toFixed(2)}`);
process.exit(0);
