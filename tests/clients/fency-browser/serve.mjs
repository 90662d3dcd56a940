// The page of fency_browser.test.mjs: page.js bundled with the real @fencyai/js (from
// tests/clients/node_modules, nothing fetched) by esbuild, and a tiny static server for
// index.html and the bundle on 127.0.0.1 — another origin than engramd's, so the browser's CORS
// checks of /pub and /sse are part of the test.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));

// page.js and its imports as one ES module for browsers.
export async function bundlePage() {
    const r = await esbuild.build({
        entryPoints: [join(here, 'page.js')],
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2020',
        write: false,
        logLevel: 'silent',
    });
    return r.outputFiles[0].text;
}

// Serve / (index.html) and /bundle.js; resolves {url, requests, stop()}.
export async function startPageServer() {
    const [html, bundle] = await Promise.all([readFile(join(here, 'index.html'), 'utf8'), bundlePage()]);
    const requests = [];
    const server = http.createServer((req, res) => {
        const path = new URL(req.url, 'http://x').pathname;
        requests.push(path);
        if (req.method !== 'GET') {
            res.writeHead(405).end();
        } else if (path === '/' || path === '/index.html') {
            res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(html);
        } else if (path === '/bundle.js') {
            res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(bundle);
        } else {
            res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
        }
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    });
    return {
        url: `http://127.0.0.1:${server.address().port}/`,
        requests,
        bundleBytes: bundle.length,
        stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
    };
}
