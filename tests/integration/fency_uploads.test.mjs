// Fency face: FILE memories through uploads. POST /v1/memories/{id}/uploads returns an
// awsS3PostRequest; the test posts the multipart form with Node's fetch + FormData exactly as the
// Fency example apps do, and watches the memory go SYNCHRONIZED with its text and its chunks'
// page numbers. Refusals: fields and sizes at the grant, and at the form: a tampered policy, an
// expired one (signed by the test with the deployment's secret read from Redis, which also checks
// the SigV4 derivation independently), a wrong content type, a file larger than declared, a used
// or replaced grant, a form without a file, a body over the route's own limit. The server runs
// with ENGRAM_MAX_BODY_SIZE=64k and ENGRAM_FENCY_UPLOAD_MAX=1m: uploads above the global body
// limit work, other routes keep it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { execFile } from 'node:child_process';
import { startEngram, workspaceWithKey, waitFor, PrivateRedis, rawRequest } from './harness.mjs';

const UPLOAD_MAX = 1 << 20;
const ENV = {
    ENGRAM_LIBRARY_VISIBILITY: '2s',
    ENGRAM_ACCESS_LOG: 'off',
    ENGRAM_MAX_BODY_SIZE: '64k',
    ENGRAM_FENCY_UPLOAD_MAX: '1m',
};

let redis, srv, A, B, type;

before(async () => {
    redis = await new PrivateRedis().start();
    srv = await startEngram({ redisUrl: redis.url, env: ENV });
    [A, B] = await Promise.all([
        workspaceWithKey('upA', { redisUrl: redis.url }),
        workspaceWithKey('upB', { redisUrl: redis.url }),
    ]);
    type = await ok(call('POST', '/v1/memory-types', A.key, { name: 'files', description: 'Uploaded files' }));
});

after(async () => {
    await srv?.stop();
    await redis?.destroy();
});

const call = (method, path, key, body, headers = {}) =>
    srv.request(method, `/fency${path}`, { key, body, headers, timeoutMs: 20000 });

async function ok(p) {
    const r = await p;
    assert.equal(r.status, 200, r.body);
    return r.json;
}

function expectError(r, status, re) {
    assert.equal(r.status, status, r.body);
    assert.equal(typeof r.json?.error?.message, 'string', r.body);
    if (re) assert.match(r.json.error.message, re, r.body);
}

const fileMemory = (key = A.key, title = 'a file') =>
    ok(call('POST', '/v1/memories', key, { memoryTypeId: type.id, sourceType: 'FILE', title }));

const grant = async (id, fileName, fileSize, mimeType, key = A.key) =>
    (await ok(call('POST', `/v1/memories/${id}/uploads`, key, { fileName, fileSize, mimeType }))).awsS3PostRequest;

// The example apps' uploadFileToS3: fields in this order, the file last.
function form(g, blob, fileName = 'upload', extra = {}) {
    const f = new FormData();
    const fields = {
        key: g.key,
        policy: g.policy,
        'x-amz-algorithm': g.amzAlgorithm,
        'x-amz-credential': g.amzCredential,
        'x-amz-date': g.amzDate,
        'x-amz-signature': g.amzSignature,
        'x-amz-security-token': g.sessionToken,
        ...extra,
    };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) f.append(k, v);
    if (blob) f.append('file', blob, fileName);
    return f;
}

async function post(g, blob, fileName, extra) {
    const r = await fetch(g.uploadUrl, { method: 'POST', body: form(g, blob, fileName, extra) });
    return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}

function expectS3Error(r, status, code, re) {
    assert.equal(r.status, status, r.body);
    assert.match(r.type || '', /^application\/xml/);
    assert.match(r.body, new RegExp(`<Error><Code>${code}</Code><Message>`), r.body);
    if (re) assert.match(r.body, re, r.body);
}

async function settled(id, key = A.key, timeoutMs = 30000) {
    let m;
    await waitFor(async () => {
        m = await ok(call('GET', `/v1/memories/${id}`, key));
        return m.contentStatus === 'SYNCHRONIZED' || m.contentStatus === 'SYNCHRONIZATION_ERROR';
    }, { timeoutMs, intervalMs: 100, what: `memory ${id} settled` });
    return m;
}

function redisCli(...args) {
    return new Promise((resolve, reject) => {
        execFile('redis-cli', ['-p', String(redis.port), '--raw', ...args], (err, stdout) =>
            (err ? reject(err) : resolve(stdout)));
    });
}

// The stored chunks of a memory: [{p: [pages], t: text}].
async function chunks(wsId, memId) {
    const out = await redisCli('LRANGE', `eg:{w:${wsId}}:fy:mem:${memId}:chk`, '0', '-1');
    return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

// A PDF with one page per entry of pages (each an array of lines), Helvetica, written by hand with
// a correct cross-reference table.
function makePdf(pages) {
    const esc = (s) => s.replace(/[\\()]/g, (c) => `\\${c}`);
    const objs = [];
    const n = pages.length;
    objs[1] = '<< /Type /Catalog /Pages 2 0 R >>';
    objs[2] = `<< /Type /Pages /Kids [${pages.map((_, i) => `${4 + 2 * i} 0 R`).join(' ')}] /Count ${n} >>`;
    objs[3] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>';
    pages.forEach((lines, i) => {
        const content = `BT /F1 11 Tf 14 TL 40 760 Td ${lines.map((l) => `(${esc(l)}) Tj T*`).join(' ')} ET`;
        objs[4 + 2 * i] = `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] ` +
            `/Resources << /Font << /F1 3 0 R >> >> /Contents ${5 + 2 * i} 0 R >>`;
        objs[5 + 2 * i] = `<< /Length ${Buffer.byteLength(content)} >>\nstream\n${content}\nendstream`;
    });
    let out = '%PDF-1.4\n';
    const offsets = [];
    for (let i = 1; i < objs.length; i++) {
        offsets[i] = Buffer.byteLength(out);
        out += `${i} 0 obj\n${objs[i]}\nendobj\n`;
    }
    const xref = Buffer.byteLength(out);
    out += `xref\n0 ${objs.length}\n0000000000 65535 f \n`;
    for (let i = 1; i < objs.length; i++) out += `${String(offsets[i]).padStart(10, '0')} 00000 n \n`;
    out += `trailer << /Size ${objs.length} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
    return Buffer.from(out, 'latin1');
}

/* ---------------------------------------------------------------------------------------- */

test('grant: the awsS3PostRequest and its policy', async () => {
    const m = await fileMemory();
    assert.equal(m.contentStatus, 'EMPTY');
    const before = Date.now();
    const g = await grant(m.id, 'notes.txt', 12, 'text/plain');
    assert.deepEqual(Object.keys(g).sort(),
        ['amzAlgorithm', 'amzCredential', 'amzDate', 'amzSignature', 'key', 'policy', 'sessionToken', 'uploadUrl']);
    assert.equal(g.amzAlgorithm, 'AWS4-HMAC-SHA256');
    assert.match(g.amzDate, /^\d{8}T\d{6}Z$/);
    assert.equal(g.amzCredential, `engram/${g.amzDate.slice(0, 8)}/engram/s3/aws4_request`);
    assert.match(g.amzSignature, /^[0-9a-f]{64}$/);
    assert.match(g.sessionToken, /^[0-9a-f]{32}$/);
    assert.equal(g.key, `${A.ws.id}/${m.id}/${g.sessionToken}`);
    assert.equal(g.uploadUrl, `http://127.0.0.1:${srv.port}/fency/uploads/s3`);
    const p = JSON.parse(Buffer.from(g.policy, 'base64').toString());
    const exp = Date.parse(p.expiration);
    assert.ok(exp >= before + 15 * 60000 - 2000 && exp <= Date.now() + 15 * 60000 + 1000, p.expiration);
    assert.deepEqual(p.conditions, [
        { key: g.key },
        { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' },
        { 'x-amz-credential': g.amzCredential },
        { 'x-amz-date': g.amzDate },
        { 'x-amz-security-token': g.sessionToken },
        ['content-length-range', 12, 12],
        ['eq', '$Content-Type', 'text/plain'],
    ]);

    // Behind a TLS-terminating proxy.
    const r = await call('POST', `/v1/memories/${m.id}/uploads`, A.key,
        { fileName: 'x.txt', fileSize: 1, mimeType: 'text/plain' },
        { Host: 'files.example.com:8443', 'X-Forwarded-Proto': 'https, http' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.awsS3PostRequest.uploadUrl, 'https://files.example.com:8443/fency/uploads/s3');
});

test('grant: bad fields, sizes, unknown and non-FILE memories, other workspaces, no key', async () => {
    const m = await fileMemory();
    const good = { fileName: 'a.pdf', fileSize: 10, mimeType: 'application/pdf' };
    const bad = [
        [{ fileSize: 10, mimeType: 'application/pdf' }, /fileName/],
        [{ ...good, fileName: '' }, /fileName/],
        [{ ...good, fileName: 7 }, /fileName/],
        [{ ...good, fileName: 'a\nb' }, /fileName/],
        [{ ...good, fileName: 'x'.repeat(1025) }, /fileName/],
        [{ fileName: 'a', mimeType: 'text/plain' }, /fileSize/],
        [{ ...good, fileSize: -1 }, /fileSize/],
        [{ ...good, fileSize: 1.5 }, /fileSize/],
        [{ ...good, fileSize: '10' }, /fileSize/],
        [{ ...good, fileSize: UPLOAD_MAX + 1 }, /over the upload limit of 1048576 bytes/],
        [{ ...good, fileSize: 1e300 }, /fileSize/],
        [{ fileName: 'a', fileSize: 1 }, /mimeType/],
        [{ ...good, mimeType: 'pdf' }, /mimeType/],
        [{ ...good, mimeType: 'text/pl ain' }, /mimeType/],
    ];
    for (const [body, re] of bad) expectError(await call('POST', `/v1/memories/${m.id}/uploads`, A.key, body), 400, re);
    expectError(await call('POST', `/v1/memories/${m.id}/uploads`, A.key, '[1]'), 400);
    // Exactly at the limit is fine; an empty type lets the file name decide later.
    await grant(m.id, 'big.bin', UPLOAD_MAX, 'application/octet-stream');
    await grant(m.id, 'notes.md', 3, '');

    expectError(await call('POST', '/v1/memories/mem_00000000000000000000000000000000/uploads', A.key, good), 404);
    expectError(await call('POST', '/v1/memories/nonsense/uploads', A.key, good), 404);
    expectError(await call('POST', `/v1/memories/${m.id}/uploads`, B.key, good), 404);
    const t = await ok(call('POST', '/v1/memories', A.key, { memoryTypeId: type.id, sourceType: 'TEXT', title: 't', text: 'hello' }));
    expectError(await call('POST', `/v1/memories/${t.id}/uploads`, A.key, good), 400, /FILE/);
    const r = await srv.request('POST', `/fency/v1/memories/${m.id}/uploads`, { body: good });
    assert.equal(r.status, 401, r.body);
});

test('a text/plain upload goes SYNCHRONIZED; the grant works once', async () => {
    const m = await fileMemory(A.key, 'notes');
    const text = 'Quarterly notes.\nThe lighthouse keeper counts ships at dawn.\n';
    const g = await grant(m.id, 'notes.txt', Buffer.byteLength(text), 'text/plain');
    const r = await post(g, new Blob([text], { type: 'text/plain' }), 'notes.txt');
    assert.equal(r.status, 204, r.body);
    assert.equal(r.body, '');
    const s = await settled(m.id);
    assert.equal(s.contentStatus, 'SYNCHRONIZED', JSON.stringify(s));
    assert.match(s.content, /lighthouse keeper counts ships/);
    assert.ok(s.contentParts >= 1);
    const c = await chunks(A.ws.id, m.id);
    assert.ok(c.length >= 1);
    assert.deepEqual(c[0].p, [1]);

    // The same form again: the grant is spent.
    expectS3Error(await post(g, new Blob([text], { type: 'text/plain' }), 'notes.txt'), 403, 'AccessDenied', /already used/);
});

test('a PDF upload goes SYNCHRONIZED with page numbers on its chunks', async () => {
    const m = await fileMemory(A.key, 'handbook');
    const filler = (tag) => Array.from({ length: 40 }, (_, i) => `${tag} line ${i + 1}: the committee reviews the budget of the harbour every spring.`);
    const pdf = makePdf([
        ['Chapter one: the orchard.', ...filler('Orchard')],
        ['Chapter two: the foundry.', ...filler('Foundry')],
        ['Chapter three: the observatory.', ...filler('Observatory')],
    ]);
    const g = await grant(m.id, 'handbook.pdf', pdf.length, 'application/pdf');
    const r = await post(g, new Blob([pdf], { type: 'application/pdf' }), 'handbook.pdf');
    assert.equal(r.status, 204, r.body);
    const s = await settled(m.id);
    assert.equal(s.contentStatus, 'SYNCHRONIZED', JSON.stringify(s));
    for (const w of ['Chapter one: the orchard.', 'Chapter two: the foundry.', 'Chapter three: the observatory.'])
        assert.ok(s.content.includes(w), `${w} in ${s.content.slice(0, 200)}`);
    const c = await chunks(A.ws.id, m.id);
    assert.equal(c.length, s.contentParts);
    const pages = new Set(c.flatMap((x) => x.p));
    assert.deepEqual([...pages].sort(), [1, 2, 3]);
    // Each chapter's text sits in a chunk that names its page.
    for (const [n, word] of [[1, 'Orchard line 40'], [2, 'Foundry line 1:'], [3, 'Observatory line 20']]) {
        const hit = c.find((x) => x.t.includes(word));
        assert.ok(hit, `a chunk with ${word}`);
        assert.ok(hit.p.includes(n), `${word}: pages ${hit.p}`);
    }
});

test('refused forms: tampered, wrong type, wrong size, replaced grant, no file, not multipart', async () => {
    const m = await fileMemory();
    const text = 'twelve bytes';
    const g = await grant(m.id, 'a.txt', 12, 'text/plain');
    const blob = () => new Blob([text], { type: 'text/plain' });

    // A policy re-encoded to allow a bigger file keeps the old signature.
    const p = JSON.parse(Buffer.from(g.policy, 'base64').toString());
    p.conditions[5] = ['content-length-range', 0, 1e9];
    expectS3Error(await post({ ...g, policy: Buffer.from(JSON.stringify(p)).toString('base64') }, blob()), 403, 'SignatureDoesNotMatch');
    expectS3Error(await post({ ...g, amzSignature: g.amzSignature.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')) }, blob()), 403, 'SignatureDoesNotMatch');
    // Another memory's key under this signature.
    expectS3Error(await post({ ...g, key: g.key.replace(m.id, 'mem_ffffffffffffffffffffffffffffffff') }, blob()), 403, 'AccessDenied', /Policy Condition failed/);
    // Wrong content type: the file part's, or a Content-Type field.
    expectS3Error(await post(g, new Blob([text], { type: 'application/pdf' })), 403, 'AccessDenied', /\$Content-Type/);
    expectS3Error(await post(g, blob(), 'a.txt', { 'Content-Type': 'image/png' }), 403, 'AccessDenied', /\$Content-Type/);
    // Larger or smaller than declared.
    expectS3Error(await post(g, new Blob([text + '!'], { type: 'text/plain' })), 400, 'EntityTooLarge');
    expectS3Error(await post(g, new Blob(['short'], { type: 'text/plain' })), 400, 'EntityTooSmall');
    // No file, missing fields, not a form.
    expectS3Error(await post(g, null), 400, 'MalformedPOSTRequest', /file/);
    expectS3Error(await post({ ...g, amzSignature: undefined }, blob()), 400, 'MalformedPOSTRequest', /x-amz-signature/);
    let r = await fetch(g.uploadUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /MalformedPOSTRequest/);
    r = await fetch(g.uploadUrl, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=zz' }, body: '--zz\r\nbroken' });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /MalformedPOSTRequest/);

    // None of that touched the memory; a newer grant replaces this one.
    assert.equal((await ok(call('GET', `/v1/memories/${m.id}`, A.key))).contentStatus, 'EMPTY');
    const g2 = await grant(m.id, 'b.txt', 12, 'text/plain');
    expectS3Error(await post(g, blob()), 403, 'AccessDenied', /newer upload/);
    // A generic file type leaves the declared one standing.
    r = await post(g2, new Blob([text], { type: 'application/octet-stream' }), 'b.txt');
    assert.equal(r.status, 204, r.body);
    assert.equal((await settled(m.id)).content, text);
});

test('an expired policy is refused (signed here with the deployment secret)', async () => {
    const m = await fileMemory();
    const g = await grant(m.id, 'a.txt', 3, 'text/plain');
    const secret = (await redisCli('GET', 'eg:{fy}:upload_secret')).trim();
    assert.match(secret, /^[0-9a-f]{64}$/);
    const sign = (policyB64, date8) => {
        let k = createHmac('sha256', `AWS4${secret}`).update(date8).digest();
        for (const part of ['engram', 's3', 'aws4_request']) k = createHmac('sha256', k).update(part).digest();
        return createHmac('sha256', k).update(policyB64).digest('hex');
    };
    // The test's SigV4 agrees with the server's.
    assert.equal(sign(g.policy, g.amzDate.slice(0, 8)), g.amzSignature);

    const p = JSON.parse(Buffer.from(g.policy, 'base64').toString());
    p.expiration = new Date(Date.now() - 1000).toISOString();
    const policy = Buffer.from(JSON.stringify(p)).toString('base64');
    const expired = { ...g, policy, amzSignature: sign(policy, g.amzDate.slice(0, 8)) };
    expectS3Error(await post(expired, new Blob(['abc'], { type: 'text/plain' })), 403, 'AccessDenied', /Policy expired/);
    // Still valid a moment later with the real policy.
    const r = await post(g, new Blob(['abc'], { type: 'text/plain' }));
    assert.equal(r.status, 204, r.body);
});

test('unsupported types end in SYNCHRONIZATION_ERROR; a deleted memory answers 404', async () => {
    const m = await fileMemory();
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const g = await grant(m.id, 'pic.png', png.length, 'image/png');
    const r = await post(g, new Blob([png], { type: 'image/png' }), 'pic.png');
    assert.equal(r.status, 204, r.body);
    const s = await settled(m.id);
    assert.equal(s.contentStatus, 'SYNCHRONIZATION_ERROR');
    assert.match(s.contentStatusReason, /unsupported content type image\/png/);

    const gone = await fileMemory();
    const g2 = await grant(gone.id, 'a.txt', 3, 'text/plain');
    await ok(call('DELETE', `/v1/memories/${gone.id}`, A.key));
    expectS3Error(await post(g2, new Blob(['abc'], { type: 'text/plain' })), 404, 'NoSuchKey');
});

test('body limits: uploads above ENGRAM_MAX_BODY_SIZE pass, the route has its own cap', async () => {
    // 200 KiB of text: over the global 64k, under the upload cap.
    const m = await fileMemory();
    const line = 'The night ferry leaves the north pier at eleven.\n';
    const text = line.repeat(Math.ceil(200 * 1024 / line.length));
    const g = await grant(m.id, 'big.txt', Buffer.byteLength(text), 'text/plain');
    const r = await post(g, new Blob([text], { type: 'text/plain' }), 'big.txt');
    assert.equal(r.status, 204, r.body);
    const s = await settled(m.id);
    assert.equal(s.contentStatus, 'SYNCHRONIZED');
    assert.equal(s.content.length, text.trimEnd().length);

    // Other routes keep the global limit.
    const big = await call('POST', '/v1/memories', A.key, { memoryTypeId: type.id, sourceType: 'TEXT', title: 'x', text: 'y'.repeat(100 * 1024) });
    assert.equal(big.status, 413, big.body);

    // A form over the upload cap (plus 64 KiB for its fields) is refused from its Content-Length
    // on, before any of the body is read...
    const c = await srv.rawConn();
    await c.write(rawRequest('POST', '/fency/uploads/s3', {
        headers: { 'Content-Type': 'multipart/form-data; boundary=b', 'Content-Length': String(UPLOAD_MAX + 65 * 1024) },
    }));
    const res = await c.readResponse();
    c.destroy();
    assert.equal(res.status, 413, res.body);
    assert.match(JSON.parse(res.body).error.message, /exceeds the limit of 1114112 bytes/);
    // ... and at the cap it is read (and refused for what it is, not for its size).
    const g2 = await grant(m.id, 'huge.txt', UPLOAD_MAX, 'text/plain');
    const at = await post(g2, new Blob([Buffer.alloc(UPLOAD_MAX - 1, 0x61)], { type: 'text/plain' }));
    expectS3Error(at, 400, 'EntityTooSmall');
});
