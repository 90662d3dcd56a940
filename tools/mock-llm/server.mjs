#!/usr/bin/env node
// mock-llm: a scripted OpenAI-compatible server for tests and demos (node built-ins only).
//
//   node tools/mock-llm/server.mjs [--host 127.0.0.1] [--port N] [--rules FILE.json] [--dim 384]
//                                  [--api-key K]
//
// Serves POST /v1/chat/completions (streaming too), POST /v1/embeddings and GET /v1/models, answers
// from scripted rules (first match wins, `times` limits uses) or deterministic defaults, and keeps
// a log of every request. The control API under /_mock/ edits the rules and reads the log. When
// ready it prints one line, "mock-llm listening on http://HOST:PORT". See README.md here.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { RuleStore, requestFacts, CHAT_PATH } from './rules.mjs';
import { checkChat, chatAnswer, completionBody, streamEvents } from './chat.mjs';
import { embedText, toBase64 } from './embed.mjs';

const MAX_BODY = 64 * 1024 * 1024;
const MAX_DIM = 65536;
const USAGE = 'usage: server.mjs [--host H] [--port N] [--rules FILE.json] [--dim N] [--api-key K]';

function fail(msg) {
    process.stderr.write(`mock-llm: ${msg}\n${USAGE}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const opts = { host: '127.0.0.1', port: 0, rules: null, dim: 384, apiKey: null };
    const names = { '--host': 'host', '--port': 'port', '--rules': 'rules', '--dim': 'dim', '--api-key': 'apiKey' };
    for (let i = 0; i < argv.length; i++) {
        let arg = argv[i];
        let value;
        const eq = arg.indexOf('=');
        if (arg.startsWith('--') && eq > 0) {
            value = arg.slice(eq + 1);
            arg = arg.slice(0, eq);
        }
        if (arg === '--help' || arg === '-h') {
            process.stdout.write(`${USAGE}\n`);
            process.exit(0);
        }
        if (!(arg in names)) fail(`unknown argument ${arg}`);
        if (value === undefined) {
            if (i + 1 >= argv.length) fail(`${arg} needs a value`);
            value = argv[++i];
        }
        opts[names[arg]] = value;
    }
    opts.port = Number(opts.port);
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) fail('--port must be 0..65535');
    opts.dim = Number(opts.dim);
    if (!Number.isInteger(opts.dim) || opts.dim < 1 || opts.dim > MAX_DIM) fail(`--dim must be 1..${MAX_DIM}`);
    return opts;
}

const opts = parseArgs(process.argv.slice(2));

let store;
try {
    let initial = [];
    if (opts.rules) {
        const doc = JSON.parse(readFileSync(opts.rules, 'utf8'));
        initial = doc && !Array.isArray(doc) && Array.isArray(doc.rules) ? doc.rules : doc;
    }
    store = new RuleStore(initial);
} catch (e) {
    fail(`--rules ${opts.rules}: ${e.message}`);
}

/* ---- request log ------------------------------------------------------------------------------ */

let log = [];
let seq = 0;

/* ---- responses -------------------------------------------------------------------------------- */

const sleep = (ms) => new Promise((r) => setTimeout(r, ms).unref());

// OpenAI's error shape, with the type and code OpenAI uses for each status.
function errorBody(status, message, param = null) {
    const byStatus = {
        400: ['invalid_request_error', null, 'Invalid request.'],
        401: ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided'],
        403: ['invalid_request_error', null, 'You are not allowed to sample from this model.'],
        404: ['invalid_request_error', null, 'Not found.'],
        408: ['timeout', null, 'Request timed out.'],
        413: ['invalid_request_error', null, 'Request body too large.'],
        429: ['requests', 'rate_limit_exceeded', 'Rate limit reached for requests. Please try again later.'],
        500: ['server_error', null, 'The server had an error while processing your request.'],
        502: ['server_error', null, 'Bad gateway.'],
        503: ['server_error', null, 'The engine is currently overloaded, please try again later.'],
    };
    const [type, code, text] = byStatus[status] ?? [status >= 500 ? 'server_error' : 'invalid_request_error', null,
        `mock-llm error ${status}.`];
    return { error: { message: message ?? text, type, param, code } };
}

// Send a complete response; entry (a log entry, or null for control routes) records the status.
function send(res, entry, status, body, headers = {}) {
    if (entry) entry.status = status;
    if (res.destroyed || res.headersSent) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    const h = { 'content-type': 'application/json', ...lowerKeys(headers) };
    h['content-length'] = Buffer.byteLength(text);
    res.writeHead(status, h);
    res.end(text);
}

function lowerKeys(o) {
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), String(v)]));
}

function writeAsync(res, data) {
    return new Promise((resolve) => {
        if (res.destroyed) return resolve(false);
        res.write(data, () => resolve(true));
    });
}

// Half a JSON body with the full Content-Length, then the connection is cut.
async function sendTruncated(res, entry, status, text, headers) {
    entry.status = status;
    res.writeHead(status, { 'content-type': 'application/json', ...lowerKeys(headers),
        'content-length': Buffer.byteLength(text) });
    await writeAsync(res, text.slice(0, Math.floor(text.length / 2)));
    res.socket?.destroy();
}

async function sendStream(res, entry, events, reply) {
    entry.status = 200;
    res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        ...lowerKeys(reply.headers || {}),
    });
    res.flushHeaders();
    // A truncated stream stops after about half its events (at least the role and one more).
    const upto = reply.truncate_stream ? Math.max(2, Math.floor((events.length - 1) / 2)) : events.length;
    for (let i = 0; i < upto && i < events.length; i++) {
        if (i > 0 && reply.chunk_delay_ms) await sleep(reply.chunk_delay_ms);
        if (!(await writeAsync(res, events[i]))) return;
    }
    if (reply.truncate_stream) res.socket?.destroy();
    else res.end();
}

/* ---- OpenAI routes ---------------------------------------------------------------------------- */

async function chatRoute(res, entry, body, reply) {
    const answer = chatAnswer(body, reply);
    const headers = reply.headers || {};
    if (body.stream === true) return sendStream(res, entry, streamEvents(body, answer), reply);
    const text = JSON.stringify(completionBody(body, answer));
    if (reply.truncate_stream) return sendTruncated(res, entry, 200, text, headers);
    send(res, entry, 200, text, headers);
}

// null when the embeddings request is acceptable, else the 400 message and param.
function checkEmbeddings(body) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return ['The request body must be a JSON object.', null];
    if (typeof body.model !== 'string' || !body.model) return ['you must provide a model parameter', 'model'];
    const inputs = embeddingInputs(body.input);
    if (!inputs || !inputs.length || inputs.some((s) => s === '')) {
        return ["'input' must be a non-empty string or a non-empty array of non-empty strings (or of token arrays).", 'input'];
    }
    if (body.dimensions !== undefined && !(Number.isInteger(body.dimensions) && body.dimensions >= 1 && body.dimensions <= MAX_DIM)) {
        return [`'dimensions' must be an integer in 1..${MAX_DIM}.`, 'dimensions'];
    }
    if (body.encoding_format !== undefined && !['float', 'base64'].includes(body.encoding_format)) {
        return ["'encoding_format' must be 'float' or 'base64'.", 'encoding_format'];
    }
    return null;
}

// The inputs as strings (token arrays become their numbers joined by spaces); null when malformed.
function embeddingInputs(input) {
    const isTokens = (a) => Array.isArray(a) && a.length > 0 && a.every(Number.isInteger);
    if (typeof input === 'string') return [input];
    if (isTokens(input)) return [input.join(' ')];
    if (!Array.isArray(input)) return null;
    const out = [];
    for (const x of input) {
        if (typeof x === 'string') out.push(x);
        else if (isTokens(x)) out.push(x.join(' '));
        else return null;
    }
    return out;
}

function embeddingsRoute(res, entry, body, reply) {
    const inputs = embeddingInputs(body.input);
    const dim = body.dimensions ?? opts.dim;
    const data = inputs.map((text, index) => {
        const vec = embedText(text, dim);
        return { object: 'embedding', index, embedding: body.encoding_format === 'base64' ? toBase64(vec) : vec };
    });
    const tokens = inputs.reduce((s, t) => s + Math.ceil(t.length / 4), 0);
    send(res, entry, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } },
        reply.headers || {});
}

function modelsRoute(res, entry, reply) {
    send(res, entry, 200, {
        object: 'list',
        data: [{ id: 'mock-model', object: 'model', created: 1700000000, owned_by: 'mock-llm' }],
    }, reply.headers || {});
}

async function openaiRequest(req, res, path, raw) {
    const entry = { seq: ++seq, time: new Date().toISOString(), method: req.method, path, headers: req.headers,
        body: null, rule_id: null, status: null };
    if (raw.length) {
        try {
            entry.body = JSON.parse(raw);
        } catch {
            entry.body = raw;
        }
    }
    log.push(entry);

    if (opts.apiKey !== null && path.startsWith('/v1') && req.headers.authorization !== `Bearer ${opts.apiKey}`) {
        return send(res, entry, 401, errorBody(401));
    }
    const body = typeof entry.body === 'string' ? undefined : entry.body;
    if (body === undefined) {
        return send(res, entry, 400, errorBody(400, "We could not parse the JSON body of your request. (HINT: This likely " +
            "means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was " +
            'sent was not valid JSON.)'));
    }
    let route = null;
    if (req.method === 'POST' && path === CHAT_PATH) route = 'chat';
    else if (req.method === 'POST' && path === '/v1/embeddings') route = 'embeddings';
    else if (req.method === 'GET' && path === '/v1/models') route = 'models';
    if (route === 'chat') {
        const bad = checkChat(body);
        if (bad) return send(res, entry, 400, errorBody(400, bad.message, bad.param));
    } else if (route === 'embeddings') {
        const bad = checkEmbeddings(body);
        if (bad) return send(res, entry, 400, errorBody(400, bad[0], bad[1]));
    }

    const rule = store.take(requestFacts(path, body));
    const reply = rule ? rule.reply : {};
    if (rule) entry.rule_id = rule.id;
    if (reply.delay_ms) await sleep(reply.delay_ms);
    if (res.destroyed) return;
    const status = reply.status ?? 200;
    const headers = reply.headers || {};
    if (reply.raw !== undefined) {
        if (reply.truncate_stream) return sendTruncated(res, entry, status, reply.raw, headers);
        return send(res, entry, status, reply.raw, headers);
    }
    if (status !== 200 || reply.body !== undefined) {
        const out = reply.body !== undefined ? reply.body : errorBody(status);
        return send(res, entry, status, out, headers);
    }
    if (route === 'chat') return chatRoute(res, entry, body, reply);
    if (route === 'embeddings') return embeddingsRoute(res, entry, body, reply);
    if (route === 'models') return modelsRoute(res, entry, reply);
    return send(res, entry, 404, errorBody(404, `Invalid URL (${req.method} ${path})`));
}

/* ---- control API ------------------------------------------------------------------------------ */

function controlRequest(req, res, url, raw) {
    const path = url.pathname;
    const m = req.method;
    let body = null;
    if (raw.length) {
        try {
            body = JSON.parse(raw);
        } catch (e) {
            return send(res, null, 400, errorBody(400, `malformed JSON: ${e.message}`));
        }
    }
    try {
        if (path === '/_mock/rules') {
            if (m === 'GET') return send(res, null, 200, store.rules);
            if (m === 'POST') return send(res, null, 200, { ids: store.add(body) });
            if (m === 'PUT') return send(res, null, 200, { ids: store.replace(body ?? []) });
            if (m === 'DELETE') return send(res, null, 200, { deleted: store.clear() });
        } else if (path === '/_mock/requests') {
            if (m === 'GET') {
                const only = url.searchParams.get('path');
                return send(res, null, 200, only ? log.filter((e) => e.path === only) : log);
            }
            if (m === 'DELETE') {
                const n = log.length;
                log = [];
                return send(res, null, 200, { deleted: n });
            }
        } else if (path === '/_mock/reset' && m === 'POST') {
            store.reset();
            log = [];
            seq = 0;
            return send(res, null, 200, { ok: true, rules: store.rules.length });
        }
    } catch (e) {
        return send(res, null, 400, errorBody(400, e.message));
    }
    return send(res, null, 404, errorBody(404, `no control route ${m} ${path}`));
}

/* ---- server ----------------------------------------------------------------------------------- */

function readBody(req) {
    return new Promise((resolve, reject) => {
        const parts = [];
        let n = 0;
        req.on('data', (d) => {
            n += d.length;
            if (n > MAX_BODY) {
                reject(new Error('too large'));
                req.destroy();
                return;
            }
            parts.push(d);
        });
        req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
        req.on('error', reject);
    });
}

const server = http.createServer(async (req, res) => {
    let raw;
    try {
        raw = await readBody(req);
    } catch {
        return send(res, null, 413, errorBody(413));
    }
    const url = new URL(req.url, 'http://mock-llm');
    try {
        if (url.pathname === '/_mock' || url.pathname.startsWith('/_mock/')) return controlRequest(req, res, url, raw);
        await openaiRequest(req, res, url.pathname, raw);
    } catch (e) {
        process.stderr.write(`mock-llm: ${req.method} ${url.pathname}: ${e.stack || e}\n`);
        send(res, null, 500, errorBody(500, `mock-llm internal error: ${e.message}`));
    }
});
server.keepAliveTimeout = 30000;

function stop() {
    server.close();
    server.closeAllConnections();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.on('error', (e) => fail(`cannot listen on ${opts.host}:${opts.port}: ${e.message}`));
server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    process.stdout.write(`mock-llm listening on http://${host}:${port}\n`);
});
