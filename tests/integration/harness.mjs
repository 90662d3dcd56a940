// Integration-test harness: start engramd / redis-server, talk HTTP over raw sockets, run the CLI.
// Only node built-ins. Environment (set by tools/test, or by hand):
//   ENGRAM_BIN              absolute path of engramd
//   ENGRAM_TEST_REDIS_URL   redis://127.0.0.1:PORT/0 shared by all suites (unique names per test)
//   ENGRAM_REDIS_SERVER     path to redis-server, for suites that need a private Redis
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import http from 'node:http';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function engramBin() {
    if (process.env.ENGRAM_BIN) return process.env.ENGRAM_BIN;
    for (const d of ['build-itest', 'build']) {
        const p = join(repo, d, 'engramd');
        if (existsSync(p)) return p;
    }
    throw new Error('ENGRAM_BIN not set and no built engramd found');
}

export function redisServerBin() {
    return process.env.ENGRAM_REDIS_SERVER || 'redis-server';
}

// Every child we start, so that a crashing test file never leaves processes behind.
const children = new Set();
process.on('exit', () => {
    for (const c of children) {
        try { c.kill('SIGKILL'); } catch { /* already gone */ }
    }
});

export async function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

// A unique workspace / key name for one test.
export function uniqueName(prefix = 't') {
    return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

// Poll fn() until it returns a truthy value; returns it, or throws after timeoutMs.
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
            last = v;
        } catch (e) {
            last = e;
        }
        if (Date.now() >= deadline) {
            const detail = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
        }
        await sleep(intervalMs);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Redis                                                                                      */
/* ------------------------------------------------------------------------------------------ */

// Send one inline command to Redis and return the first reply line (enough for PING / SHUTDOWN).
export function redisCommand(port, cmd, timeoutMs = 1000) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let buf = '';
        const t = setTimeout(() => { s.destroy(); reject(new Error('redis timeout')); }, timeoutMs);
        s.on('connect', () => s.write(cmd + '\r\n'));
        s.on('data', (d) => {
            buf += d.toString();
            if (buf.includes('\r\n')) {
                clearTimeout(t);
                s.destroy();
                resolve(buf.split('\r\n')[0]);
            }
        });
        s.on('error', (e) => { clearTimeout(t); reject(e); });
        s.on('close', () => { clearTimeout(t); if (!buf) reject(new Error('closed')); });
    });
}

// A private redis-server with AOF in its own directory; stop() and start() keep port and data.
export class PrivateRedis {
    constructor() {
        this.port = 0;
        this.dir = mkdtempSync(join(tmpdir(), 'engram-redis-'));
        this.proc = null;
        this.log = '';
    }
    get url() { return `redis://127.0.0.1:${this.port}/0`; }

    async start() {
        if (!this.port) this.port = await freePort();
        const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
            '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
            '--daemonize', 'no', '--protected-mode', 'no', '--logfile', ''];
        const p = spawn(redisServerBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
        children.add(p);
        p.stdout.on('data', (d) => { this.log += d; });
        p.stderr.on('data', (d) => { this.log += d; });
        p.exitPromise = new Promise((r) => p.on('exit', (code, sig) => { children.delete(p); r({ code, sig }); }));
        this.proc = p;
        await waitFor(async () => (await redisCommand(this.port, 'PING')) === '+PONG',
            { timeoutMs: 10000, what: `redis-server on ${this.port} (log: ${this.log.slice(-500)})` });
        return this;
    }

    async stop() {
        if (!this.proc) return;
        const p = this.proc;
        this.proc = null;
        p.kill('SIGTERM');
        const r = await Promise.race([p.exitPromise, sleep(10000).then(() => null)]);
        if (!r) { p.kill('SIGKILL'); await p.exitPromise; }
    }

    async destroy() {
        await this.stop();
        rmSync(this.dir, { recursive: true, force: true });
    }
}

let sharedRedis = null; // the start promise, so that callers racing on first use share one
// The Redis shared by suites: ENGRAM_TEST_REDIS_URL, or (standalone runs) one private instance
// per test file started on first use. Nobody stops that instance, so it must not keep the test
// file's process alive: its handles are unref'd and the exit handler kills it.
export async function sharedRedisUrl() {
    if (process.env.ENGRAM_TEST_REDIS_URL) return process.env.ENGRAM_TEST_REDIS_URL;
    if (!sharedRedis) {
        const r = new PrivateRedis();
        sharedRedis = r.start().then(() => {
            r.proc.unref();
            r.proc.stdout.unref?.();
            r.proc.stderr.unref?.();
            process.on('exit', () => { try { rmSync(r.dir, { recursive: true, force: true }); } catch { /* */ } });
            return r;
        });
    }
    return (await sharedRedis).url;
}

/* ------------------------------------------------------------------------------------------ */
/* engramd                                                                                    */
/* ------------------------------------------------------------------------------------------ */

export class Engram {
    constructor(proc, port, args) {
        this.proc = proc;
        this.port = port;
        this.args = args;
        this.stderr = '';
        this.stdout = '';
        this.lines = []; // parsed JSON log lines (non-JSON lines kept as {raw})
        this.exited = null; // {code, signal} once exited
        this.exitPromise = new Promise((resolve) => {
            proc.on('exit', (code, signal) => {
                children.delete(proc);
                this.exited = { code, signal };
                resolve(this.exited);
            });
        });
        let partial = '';
        proc.stderr.on('data', (d) => {
            const s = d.toString();
            this.stderr += s;
            partial += s;
            let i;
            while ((i = partial.indexOf('\n')) >= 0) {
                const line = partial.slice(0, i);
                partial = partial.slice(i + 1);
                if (!line.trim()) continue;
                try { this.lines.push(JSON.parse(line)); } catch { this.lines.push({ raw: line }); }
            }
        });
        proc.stdout.on('data', (d) => { this.stdout += d; });
    }

    get url() { return `http://127.0.0.1:${this.port}`; }
    get pid() { return this.proc.pid; }
    alive() { return this.exited === null; }

    stderrTail(n = 30) { return this.stderr.split('\n').slice(-n).join('\n'); }

    accessLogs() { return this.lines.filter((l) => l.msg === 'access'); }

    // Wait for a log line matching pred (searching lines already captured too).
    async waitForLog(pred, timeoutMs = 3000) {
        return waitFor(() => this.lines.find(pred), { timeoutMs, intervalMs: 20, what: 'log line' });
    }

    // If the process died (or dies within a moment), a description with its last stderr lines.
    async crashInfo(waitMs = 500) {
        if (!this.exited) await Promise.race([this.exitPromise, sleep(waitMs)]);
        if (!this.exited) return '';
        return `\n--- engramd on port ${this.port} exited ${JSON.stringify(this.exited)}; stderr tail:\n${this.stderrTail(40)}`;
    }

    async _annotate(err) {
        const info = await this.crashInfo();
        if (info && err && typeof err.message === 'string' && !err.message.includes('engramd on port')) err.message += info;
        return err;
    }

    async request(method, path, opts = {}) {
        try { return await request(this.port, method, path, opts); } catch (e) { throw await this._annotate(e); }
    }
    get(path, opts = {}) { return this.request('GET', path, opts); }

    async rawConn() {
        try {
            const c = await RawConn.open(this.port);
            c.owner = this;
            return c;
        } catch (e) { throw await this._annotate(e); }
    }

    signal(sig = 'SIGTERM') { this.proc.kill(sig); }

    // SIGTERM (or sig), wait for exit (SIGKILL after timeoutMs); returns {code, signal}.
    async stop(sig = 'SIGTERM', timeoutMs = 6000) {
        if (this.exited) return this.exited;
        this.proc.kill(sig);
        const r = await Promise.race([this.exitPromise, sleep(timeoutMs).then(() => null)]);
        if (r) return r;
        this.proc.kill('SIGKILL');
        await this.exitPromise;
        return { code: null, signal: 'SIGKILL', timedOut: true };
    }
}

// Start `engramd serve` on a free port and wait until GET /health/live answers 200.
// opts: args (extra flags), env (extra env), redisUrl (default shared Redis), readyTimeoutMs.
export async function startEngram(opts = {}) {
    const redisUrl = opts.redisUrl || (await sharedRedisUrl());
    let lastErr;
    for (let attempt = 0; attempt < 3; attempt++) {
        const port = await freePort();
        const args = ['serve', '--listen', `127.0.0.1:${port}`, '--redis-url', redisUrl,
            ...(opts.args || [])];
        const env = { ...process.env, ...(opts.env || {}) };
        const proc = spawn(engramBin(), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        children.add(proc);
        const e = new Engram(proc, port, args);
        try {
            await waitFor(async () => {
                if (e.exited) throw new Error(`engramd exited early ${JSON.stringify(e.exited)}: ${e.stderrTail(20)}`);
                try {
                    const r = await request(port, 'GET', '/health/live', { timeoutMs: 1000 });
                    return r.status === 200;
                } catch { return false; }
            }, { timeoutMs: opts.readyTimeoutMs || 20000, intervalMs: 50, what: `engramd on ${port}` });
            return e;
        } catch (err) {
            lastErr = err;
            await e.stop('SIGKILL', 2000);
            if (!/address|EADDRINUSE/i.test(e.stderr)) break; // only retry a lost port race
        }
    }
    throw lastErr;
}

/* ------------------------------------------------------------------------------------------ */
/* CLI                                                                                        */
/* ------------------------------------------------------------------------------------------ */

// Run `engramd <args>` with ENGRAM_REDIS_URL set; resolves {code, stdout, stderr} (never rejects).
export async function cli(args, { redisUrl, env = {}, timeoutMs = 20000 } = {}) {
    const url = redisUrl || (await sharedRedisUrl());
    return new Promise((resolve) => {
        execFile(engramBin(), args, {
            env: { ...process.env, ENGRAM_REDIS_URL: url, ...env },
            timeout: timeoutMs,
            maxBuffer: 16 << 20,
        }, (err, stdout, stderr) => {
            let code = 0;
            if (err) code = typeof err.code === 'number' ? err.code : (err.signal ? `signal ${err.signal}` : -1);
            resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
        });
    });
}

function cliFail(what, r) {
    return new Error(`${what} failed: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

// `engramd workspaces create NAME` → {id, name}.
export async function createWorkspace(name = uniqueName('ws'), opts = {}) {
    const r = await cli(['workspaces', 'create', name], opts);
    if (r.code !== 0) throw cliFail('workspaces create', r);
    const line = r.stdout.trim().split('\n').pop();
    const [id, wsName] = line.split('\t');
    if (!id || wsName !== name) throw new Error(`unexpected workspaces create output: ${JSON.stringify(r.stdout)}`);
    return { id, name };
}

// `engramd keys create [--workspace W] [--publishable] [--name N]` → the key string.
export async function createKey({ workspace, publishable = false, name, redisUrl } = {}) {
    const args = ['keys', 'create'];
    if (workspace) args.push('--workspace', workspace);
    if (publishable) args.push('--publishable');
    if (name) args.push('--name', name);
    const r = await cli(args, { redisUrl });
    if (r.code !== 0) throw cliFail('keys create', r);
    const key = r.stdout.trim().split('\n').pop().trim();
    if (!/^(sk|pk)_[A-Za-z0-9]{40}$/.test(key)) throw new Error(`unexpected key output: ${JSON.stringify(r.stdout)}`);
    return key;
}

// `engramd keys list [--workspace W]` → [{id, workspace_id, kind, name, created, last_used}].
export async function listKeys({ workspace, redisUrl } = {}) {
    const args = ['keys', 'list'];
    if (workspace) args.push('--workspace', workspace);
    const r = await cli(args, { redisUrl });
    if (r.code !== 0) throw cliFail('keys list', r);
    return parseKeyList(r.stdout);
}

export function parseKeyList(stdout) {
    return stdout.split('\n').filter((l) => l.trim()).map((l) => {
        const f = l.split('\t');
        return { fields: f, id: f[0], workspace_id: f[1], kind: f[2], name: f[3], created: f[4], last_used: f[5] };
    });
}

// A fresh workspace with one secret key: {ws: {id, name}, key}.
export async function workspaceWithKey(prefix = 'ws', opts = {}) {
    const ws = await createWorkspace(uniqueName(prefix), opts);
    const key = await createKey({ workspace: ws.name, redisUrl: opts.redisUrl });
    return { ws, key };
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                       */
/* ------------------------------------------------------------------------------------------ */

// One request on its own connection (node:http, no keep-alive pool). body: string|Buffer|object
// (objects are sent as JSON). Resolves {status, headers, body (string), json (or undefined)}.
export function request(port, method, path, { headers = {}, body, timeoutMs = 10000, key } = {}) {
    return new Promise((resolve, reject) => {
        const h = { ...headers };
        if (key) h.authorization = `Bearer ${key}`;
        let payload = body;
        if (body !== undefined && typeof body === 'object' && !Buffer.isBuffer(body)) {
            payload = JSON.stringify(body);
            if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
        }
        if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
        const req = http.request({ host: '127.0.0.1', port, method, path, headers: h, agent: false });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`request timeout ${method} ${path}`)));
        req.on('error', reject);
        req.on('response', (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString();
                let json;
                try { json = JSON.parse(text); } catch { json = undefined; }
                resolve({ status: res.statusCode, headers: res.headers, body: text, json });
            });
        });
        if (payload !== undefined) req.write(payload);
        req.end();
    });
}

// Parse one HTTP/1.1 response from the front of buf. Returns null if incomplete, else
// {response, rest}. isHead: the request was HEAD (no body). eof: the peer closed (body-to-EOF).
export function parseResponse(buf, { isHead = false, eof = false } = {}) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const head = buf.subarray(0, end).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[2]);
    const headers = {};
    const rawHeaders = [];
    for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i < 0) throw new Error(`bad header line: ${JSON.stringify(l)}`);
        const name = l.slice(0, i).trim().toLowerCase();
        const value = l.slice(i + 1).trim();
        rawHeaders.push([l.slice(0, i), value]);
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    let pos = end + 4;
    let body = Buffer.alloc(0);
    const noBody = isHead || (status >= 100 && status < 200) || status === 204 || status === 304;
    if (!noBody) {
        if (/chunked/i.test(headers['transfer-encoding'] || '')) {
            const parts = [];
            for (;;) {
                const le = buf.indexOf('\r\n', pos);
                if (le < 0) return null;
                const size = parseInt(buf.subarray(pos, le).toString('latin1').split(';')[0], 16);
                if (Number.isNaN(size)) throw new Error('bad chunk size');
                if (size === 0) {
                    // Skip trailers up to the empty line.
                    const te = buf.indexOf('\r\n\r\n', le);
                    if (te < 0) return null;
                    pos = te + 4;
                    break;
                }
                if (buf.length < le + 2 + size + 2) return null;
                parts.push(buf.subarray(le + 2, le + 2 + size));
                pos = le + 2 + size + 2;
            }
            body = Buffer.concat(parts);
        } else if (headers['content-length'] !== undefined) {
            const n = Number(headers['content-length']);
            if (buf.length < pos + n) return null;
            body = buf.subarray(pos, pos + n);
            pos += n;
        } else {
            if (!eof) return null;
            body = buf.subarray(pos);
            pos = buf.length;
        }
    }
    const text = body.toString();
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    return {
        response: { httpVersion: m[1], status, reason: m[3] || '', headers, rawHeaders, head, body: text, json },
        rest: buf.subarray(pos),
    };
}

// A raw TCP connection to engramd with an incremental HTTP response reader.
export class RawConn {
    constructor(sock) {
        this.sock = sock;
        this.buf = Buffer.alloc(0);
        this.closed = false;
        this.error = null;
        this.received = 0; // total bytes ever received
        this.waiters = new Set();
        sock.on('data', (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            this.received += d.length;
            this._wake();
        });
        sock.on('error', (e) => { this.error = e; });
        sock.on('close', () => { this.closed = true; this.closedAt = Date.now(); this._wake(); });
        sock.on('end', () => { /* half-close from the server: wait for 'close' */ });
    }

    static open(port, host = '127.0.0.1') {
        return new Promise((resolve, reject) => {
            const s = net.connect(port, host);
            s.setNoDelay(true);
            s.once('connect', () => { s.removeListener('error', reject); resolve(new RawConn(s)); });
            s.once('error', reject);
        });
    }

    _wake() { for (const w of [...this.waiters]) w(); }

    _wait(ms) {
        return new Promise((resolve) => {
            const done = () => { clearTimeout(t); this.waiters.delete(done); resolve(); };
            const t = setTimeout(done, ms);
            this.waiters.add(done);
        });
    }

    write(data) {
        return new Promise((resolve, reject) => {
            if (this.closed || this.sock.destroyed) { reject(new Error('socket closed')); return; }
            this.sock.write(data, (err) => (err ? reject(err) : resolve()));
        });
    }

    // Read the next response (waiting up to timeoutMs). isHead: request was HEAD.
    async readResponse({ timeoutMs = 5000, isHead = false } = {}) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const r = parseResponse(this.buf, { isHead, eof: this.closed });
            if (r) { this.buf = Buffer.from(r.rest); return r.response; }
            if (this.closed) {
                if (this.owner) throw await this.owner._annotate(new Error(`connection closed before a full response (have ${this.buf.length} bytes)`));
                throw new Error(`connection closed before a full response (have ${this.buf.length} bytes: ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))})${this.error ? ' error ' + this.error.code : ''}`);
            }
            const left = deadline - Date.now();
            if (left <= 0 && this.owner && this.owner.exited) throw await this.owner._annotate(new Error('no response'));
            if (left <= 0) throw new Error(`no full response within ${timeoutMs} ms (have ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))})`);
            await this._wait(left);
        }
    }

    // Resolve true when the server has closed the connection within timeoutMs, else false.
    async waitClose(timeoutMs = 3000) {
        const deadline = Date.now() + timeoutMs;
        while (!this.closed) {
            const left = deadline - Date.now();
            if (left <= 0) return false;
            await this._wait(left);
        }
        return true;
    }

    // Wait until at least n bytes are buffered or timeout; returns the buffered bytes (not consumed).
    async waitBytes(n = 1, timeoutMs = 3000) {
        const deadline = Date.now() + timeoutMs;
        while (this.buf.length < n && !this.closed) {
            const left = deadline - Date.now();
            if (left <= 0) break;
            await this._wait(left);
        }
        return this.buf;
    }

    end() { this.sock.end(); }
    destroy() { this.sock.destroy(); }
}

// Build a request as text. headers: object or array of [name, value]. body: string|Buffer.
export function rawRequest(method, path, { headers = {}, body, host = 'localhost', contentLength = true } = {}) {
    const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`];
    const hs = Array.isArray(headers) ? headers : Object.entries(headers);
    for (const [k, v] of hs) lines.push(`${k}: ${v}`);
    if (body !== undefined && contentLength && !hs.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k))) {
        lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    }
    const head = lines.join('\r\n') + '\r\n\r\n';
    return body === undefined ? Buffer.from(head) : Buffer.concat([Buffer.from(head), Buffer.from(body)]);
}

// Encode a body as chunked transfer coding with the given chunk sizes (last chunk takes the rest).
export function chunked(body, chunkSize = 7) {
    const b = Buffer.from(body);
    const parts = [];
    for (let i = 0; i < b.length; i += chunkSize) {
        const c = b.subarray(i, i + chunkSize);
        parts.push(Buffer.from(c.length.toString(16) + '\r\n'), c, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    return Buffer.concat(parts);
}

// Try to open a TCP connection; resolves 'refused' | 'connected' (and closes it).
export function tryConnect(port, timeoutMs = 1000) {
    return new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, timeoutMs);
        s.once('connect', () => { clearTimeout(t); s.destroy(); resolve('connected'); });
        s.once('error', (e) => { clearTimeout(t); resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code); });
    });
}

// Assert helper for engram's error shape; returns the error object.
export function engramError(res, status, code) {
    const where = `${res.status} ${res.body}`;
    if (res.status !== status) throw new Error(`expected status ${status}, got ${where}`);
    const e = res.json && res.json.error;
    if (!e || typeof e !== 'object') throw new Error(`expected {"error":{...}}, got ${where}`);
    if (code && e.code !== code) throw new Error(`expected error code ${code}, got ${where}`);
    if (typeof e.message !== 'string' || !e.message) throw new Error(`error.message missing: ${where}`);
    if (typeof e.request_id !== 'string' || !e.request_id) throw new Error(`error.request_id missing: ${where}`);
    const hdr = res.headers['x-request-id'];
    if (hdr !== undefined && hdr !== e.request_id) throw new Error(`error.request_id ${e.request_id} != X-Request-Id ${hdr}`);
    return e;
}

// Parse Prometheus text into [{name, labels, value}].
export function parseMetrics(text) {
    const out = [];
    for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
        if (!m) continue;
        const labels = {};
        if (m[3]) {
            const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
            let lm;
            while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2];
        }
        out.push({ name: m[1], labels, value: Number(m[4]) });
    }
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Supervised engramd for a whole test file                                                   */
/* ------------------------------------------------------------------------------------------ */

// Start engramd before the file's tests and stop it after; if it dies during a test, that test
// fails with the process's last stderr lines (sanitizer report), and a fresh engramd is started
// for the next test so that one crash does not cascade. hooks: {before, after, beforeEach,
// afterEach} from node:test. Returns a proxy that always forwards to the current instance.
export function supervisedEngram(hooks, opts = {}) {
    let cur = null;
    const restart = async () => { cur = await startEngram(opts); };
    const dead = async () => {
        if (!cur.alive()) return true;
        if ((await tryConnect(cur.port, 1000)) === 'refused') {
            await Promise.race([cur.exitPromise, sleep(1000)]);
            return true;
        }
        return false;
    };
    hooks.before(restart);
    hooks.beforeEach(async () => {
        if (cur && (await dead())) {
            if (!cur.reported) process.stderr.write(`engramd on ${cur.port} was dead before a test; restarting\n`);
            await cur.stop('SIGKILL', 2000);
            await restart();
        }
    });
    hooks.afterEach(async () => {
        if (cur && !cur.reported && (await dead())) {
            cur.reported = true;
            throw new Error(`engramd died during this test (exit ${JSON.stringify(cur.exited)}):\n${cur.stderrTail(40)}`);
        }
    });
    hooks.after(async () => { if (cur) await cur.stop(); });
    return new Proxy({}, {
        get(_, p) {
            if (p === 'current') return cur;
            const v = cur[p];
            return typeof v === 'function' ? v.bind(cur) : v;
        },
    });
}
