// A webhook receiver for tests: a node http server on 127.0.0.1 that records every request
// (headers and raw body) and answers with a status chosen per request.
import http from 'node:http';
import crypto from 'node:crypto';

export class Receiver {
    // reply(req, n) -> status code for the n-th request (1-based); default 200.
    constructor({ port = 0, reply = () => 200 } = {}) {
        this.port = port;
        this.reply = reply;
        this.requests = [];
        this.server = null;
    }

    get url() { return `http://127.0.0.1:${this.port}/hook`; }

    async start() {
        this.server = http.createServer((req, res) => {
            const parts = [];
            req.on('data', (d) => parts.push(d));
            req.on('end', () => {
                const body = Buffer.concat(parts).toString();
                this.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
                res.writeHead(this.reply(req, this.requests.length), { 'x-receiver': 'test' });
                res.end('ok');
            });
        });
        await new Promise((resolve, reject) => {
            this.server.once('error', reject);
            this.server.listen(this.port, '127.0.0.1', resolve);
        });
        this.port = this.server.address().port;
        return this;
    }

    async stop() {
        if (!this.server) return;
        const s = this.server;
        this.server = null;
        s.closeAllConnections?.();
        await new Promise((r) => s.close(r));
    }

    uniqueIds(header = 'webhook-id') {
        return new Set(this.requests.map((r) => r.headers[header]).filter(Boolean));
    }
}

export function hmacHex(secret, body) {
    return 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
}
