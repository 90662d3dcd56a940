// Test helper for tools/mock-llm, the scripted OpenAI-compatible server: start one on a free port,
// script its rules, read its request log. Only node built-ins.
//
//   const llm = await startMockLlm({ rules: [...], apiKey: 'k', dim: 384 });
//   // point a client at llm.url (".../v1"); llm.base is the server root
//   await llm.addRules({ match: { last_user: 'hi' }, reply: { content: 'hello' } });
//   const log = await llm.requests();
//   await llm.stop();
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const here = dirname(fileURLToPath(import.meta.url));
export const mockLlmServer = join(here, '..', '..', 'tools', 'mock-llm', 'server.mjs');

// Every server started here, killed if the test process exits without stopping it.
const running = new Set();
process.on('exit', () => {
    for (const p of running) {
        try { p.kill('SIGKILL'); } catch { /* already gone */ }
    }
});

// One JSON request to the server; resolves {status, json}. Rejects on a network error.
function control(port, method, path, body) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
        const req = http.request({
            host: '127.0.0.1', port, method, path, agent: false,
            headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        }, (res) => {
            const parts = [];
            res.on('data', (d) => parts.push(d));
            res.on('end', () => {
                const text = Buffer.concat(parts).toString();
                let json = null;
                try { json = JSON.parse(text); } catch { /* not JSON */ }
                if (res.statusCode !== 200) {
                    reject(new Error(`mock-llm ${method} ${path}: ${res.statusCode} ${text}`));
                } else {
                    resolve(json);
                }
            });
            res.on('error', reject);
        });
        req.on('error', reject);
        req.end(data);
    });
}

// Start tools/mock-llm on a free port. rules: the startup rules (what reset() restores); apiKey:
// required bearer key on /v1 routes; dim: default embedding dimensions.
export async function startMockLlm({ rules, apiKey, dim, timeoutMs = 10000 } = {}) {
    const args = [mockLlmServer, '--host', '127.0.0.1', '--port', '0'];
    let dir = null;
    if (rules !== undefined) {
        dir = mkdtempSync(join(tmpdir(), 'mock-llm-'));
        writeFileSync(join(dir, 'rules.json'), JSON.stringify(rules));
        args.push('--rules', join(dir, 'rules.json'));
    }
    if (apiKey !== undefined) args.push('--api-key', apiKey);
    if (dim !== undefined) args.push('--dim', String(dim));

    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(proc);
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
        running.delete(proc);
        resolve({ code, signal });
    }));

    let port;
    try {
        port = await new Promise((resolve, reject) => {
            let out = '';
            const timer = setTimeout(() => reject(new Error(`mock-llm did not start in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
            proc.stdout.on('data', (d) => {
                out += d;
                const m = /^mock-llm listening on http:\/\/127\.0\.0\.1:(\d+)\n/m.exec(out);
                if (m) {
                    clearTimeout(timer);
                    resolve(Number(m[1]));
                }
            });
            exited.then(({ code, signal }) => {
                clearTimeout(timer);
                reject(new Error(`mock-llm exited (code ${code}, signal ${signal}): ${stderr}`));
            });
        });
    } finally {
        // The server has read its rules file (or failed to); reset() uses its in-memory copy.
        if (dir) rmSync(dir, { recursive: true, force: true });
    }
    proc.stdout.resume();

    const base = `http://127.0.0.1:${port}`;
    return {
        port,
        base,
        url: `${base}/v1`,
        proc,
        stderr: () => stderr,
        addRules: (r) => control(port, 'POST', '/_mock/rules', r),
        setRules: (r) => control(port, 'PUT', '/_mock/rules', r),
        clearRules: () => control(port, 'DELETE', '/_mock/rules'),
        rules: () => control(port, 'GET', '/_mock/rules'),
        requests: (path) => control(port, 'GET', path ? `/_mock/requests?path=${encodeURIComponent(path)}` : '/_mock/requests'),
        clearRequests: () => control(port, 'DELETE', '/_mock/requests'),
        reset: () => control(port, 'POST', '/_mock/reset'),
        async stop() {
            if (running.has(proc)) proc.kill('SIGTERM');
            let timer;
            const r = await Promise.race([exited, new Promise((res) => { timer = setTimeout(res, 5000, null); })]);
            clearTimeout(timer);
            if (!r) {
                proc.kill('SIGKILL');
                return exited;
            }
            return r;
        },
    };
}
