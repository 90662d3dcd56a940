// Fan-out latency: N WebSocket watchers on one engramd, events emitted over HTTP; for each event,
// the time from the emit request to the moment the last watcher has it. Run by tools/bench/fanout
// (which starts Redis and engramd); uses the `ws` package installed in tests/clients.
//
//   node tools/bench/fanout.mjs PORT KEY WATCHERS EVENTS [ENGRAMD_PID]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const require = createRequire(new URL('../../tests/clients/package.json', import.meta.url));
const WebSocket = require('ws');

const [port, key, watchersArg, eventsArg, serverPid] = process.argv.slice(2);

// engramd's CPU time (user + system) in ms, from /proc: the server's share of the work.
function serverCpuMs() {
    if (!serverPid) return NaN;
    const f = readFileSync(`/proc/${serverPid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (100 Hz)
}
const WATCHERS = Number(watchersArg || 10000);
const EVENTS = Number(eventsArg || 50);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function emit(n) {
    return new Promise((resolve, reject) => {
        const body = JSON.stringify({ type: 'bench.fanout', entity: { id: `e${n}` } });
        const req = http.request({
            host: '127.0.0.1', port, path: '/engram/v1/events', method: 'POST', agent,
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json',
                'content-length': Buffer.byteLength(body) },
        }, (res) => {
            let data = '';
            res.on('data', (d) => { data += d; });
            res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(data)) : reject(new Error(data))));
        });
        req.on('error', reject);
        req.end(body);
    });
}

function pct(sorted, p) {
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(watchers) {
    const sockets = [];
    const pending = new Map(); // event entity id -> {start, remaining, resolve}
    const connectStart = performance.now();
    for (let i = 0; i < watchers; i += 500) {
        const batch = [];
        for (let j = i; j < Math.min(watchers, i + 500); j++) {
            batch.push(new Promise((resolve, reject) => {
                const ws = new WebSocket(`ws://127.0.0.1:${port}/engram/v1/events/ws?token=${key}&type=bench.fanout`);
                ws.on('message', (d) => {
                    const ev = JSON.parse(d.toString());
                    const p = pending.get(ev.entity.id);
                    if (p && --p.remaining === 0) p.resolve(performance.now() - p.start);
                });
                ws.once('open', () => resolve(ws));
                ws.once('error', reject);
            }));
        }
        sockets.push(...(await Promise.all(batch)));
    }
    const connectMs = performance.now() - connectStart;
    await new Promise((r) => setTimeout(r, 500)); // let every subscription settle
    const lat = [];
    const cpu0 = serverCpuMs();
    for (let n = 0; n < EVENTS; n++) {
        const id = `e${n}`;
        const done = new Promise((resolve) => pending.set(id, { start: performance.now(), remaining: watchers, resolve }));
        await emit(n);
        const ms = await Promise.race([done, new Promise((r) => setTimeout(() => r(Infinity), 10000))]);
        pending.delete(id);
        lat.push(ms);
        await new Promise((r) => setTimeout(r, 20));
    }
    const cpuPerEvent = (serverCpuMs() - cpu0) / EVENTS;
    for (const ws of sockets) ws.terminate();
    lat.sort((a, b) => a - b);
    return { watchers, connectMs, cpuPerEvent, p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1], lost: lat.filter((x) => x === Infinity).length };
}

const base = await run(1);
const full = await run(WATCHERS);
const fmt = (x) => (x === Infinity ? 'lost' : x.toFixed(1));
console.log(`\n${EVENTS} events; latency = emit request start → last watcher received (node ws client)\n`);
console.log('| watchers | connect all (ms) | p50 ms | p99 ms | max ms | lost | engramd CPU ms/event |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const r of [base, full]) {
    console.log(`| ${r.watchers} | ${r.connectMs.toFixed(0)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${r.lost} | ${r.cpuPerEvent.toFixed(1)} |`);
}
console.log(`\np99 with ${WATCHERS} watchers: ${fmt(full.p99)} ms (goal ≤ 100 ms): ${full.p99 <= 100 ? 'met' : 'NOT met'}`);
process.exit(0);
