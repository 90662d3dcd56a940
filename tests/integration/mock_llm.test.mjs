// tools/mock-llm: the OpenAI-compatible routes, rule scripting (matching, times, raw and truncated
// replies), the deterministic defaults, embeddings, auth, the request log and reset.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startMockLlm } from './mock_llm.mjs';

let llm;

before(async () => {
    llm = await startMockLlm({ rules: [{ id: 'boot', match: { last_user: 'boot rule' }, reply: { content: 'from the file' } }] });
});

after(async () => {
    const r = await llm.stop();
    assert.deepEqual(r, { code: 0, signal: null }, 'SIGTERM exits cleanly');
});

beforeEach(async () => {
    await llm.reset();
});

// One HTTP request; resolves {status, headers, text, json, aborted}. A connection cut mid-body
// resolves with aborted true and what arrived so far.
function call(port, method, path, body, headers = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
        const req = http.request({
            host: '127.0.0.1', port, method, path, agent: false,
            headers: { ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}), ...headers },
        }, (res) => {
            const parts = [];
            let aborted = false;
            const done = () => {
                const text = Buffer.concat(parts).toString();
                let json;
                try { json = JSON.parse(text); } catch { json = undefined; }
                resolve({ status: res.statusCode, headers: res.headers, text, json, aborted });
            };
            res.on('data', (d) => parts.push(d));
            res.on('end', done);
            res.on('aborted', () => { aborted = true; });
            res.on('error', () => { aborted = true; });
            res.on('close', () => { if (!res.complete) { aborted = true; done(); } });
        });
        req.on('error', reject);
        req.end(data);
    });
}

const chat = (body, headers) => call(llm.port, 'POST', '/v1/chat/completions', { model: 'mock-model', ...body }, headers);
const user = (text) => [{ role: 'user', content: text }];
const forceWeather = { type: 'function', function: { name: 'get_weather' } };

// The data: payloads of an SSE body ([DONE] kept as the string '[DONE]').
function sseData(text) {
    return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => {
        const d = e.slice(6);
        return d === '[DONE]' ? d : JSON.parse(d);
    });
}

// Rebuild content and tool calls from streamed chunks, the way a client does.
function reassemble(chunks) {
    let content = '';
    let role = null;
    let finish = null;
    let usage = null;
    const calls = [];
    for (const c of chunks) {
        if (c === '[DONE]') continue;
        if (c.usage) usage = c.usage;
        for (const ch of c.choices) {
            const d = ch.delta;
            if (d.role) role = d.role;
            if (typeof d.content === 'string') content += d.content;
            for (const tc of d.tool_calls || []) {
                if (!calls[tc.index]) calls[tc.index] = { id: tc.id, name: tc.function?.name, arguments: '' };
                calls[tc.index].arguments += tc.function?.arguments ?? '';
            }
            if (ch.finish_reason) finish = ch.finish_reason;
        }
    }
    return { role, content, calls, finish, usage };
}

const weatherTool = {
    type: 'function',
    function: {
        name: 'get_weather',
        description: 'Weather for a city',
        parameters: {
            type: 'object',
            required: ['city', 'days'],
            properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1 } },
        },
    },
};

test('a plain chat completion: scripted text, the default text, OpenAI shape and usage', async () => {
    await llm.addRules({ match: { last_user: 'hello' }, reply: { content: 'Hi there, friend.' } });
    const r = await chat({ messages: [{ role: 'system', content: 'Be nice.' }, ...user('hello mock')] });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.match(r.json.id, /^chatcmpl-/);
    assert.equal(r.json.object, 'chat.completion');
    assert.equal(r.json.model, 'mock-model');
    assert.equal(typeof r.json.created, 'number');
    assert.equal(r.json.choices.length, 1);
    assert.equal(r.json.choices[0].index, 0);
    assert.deepEqual(r.json.choices[0].message.role, 'assistant');
    assert.equal(r.json.choices[0].message.content, 'Hi there, friend.');
    assert.equal(r.json.choices[0].message.tool_calls, undefined);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
    // 'Be nice.' + 'hello mock' = 18 chars -> 5 tokens; 17 chars of reply -> 5 tokens.
    assert.deepEqual(r.json.usage, { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 });

    const d = await chat({ messages: user('something else') });
    assert.equal(d.json.choices[0].message.content, 'mock-llm: no rule matched');

    const f = await chat({ messages: user('the boot rule, from --rules') });
    assert.equal(f.json.choices[0].message.content, 'from the file');
});

test('json_schema with no rule: the minimal valid instance of the schema', async () => {
    const schema = {
        type: 'object',
        additionalProperties: false,
        required: ['facts', 'kind', 'score', 'ok', 'who', 'when'],
        properties: {
            facts: { type: 'array', items: { type: 'object', properties: { text: { type: 'string' } } } },
            kind: { type: 'string', enum: ['world', 'experience'] },
            score: { type: 'number' },
            ok: { type: 'boolean' },
            who: { $ref: '#/$defs/person' },
            when: { type: ['string', 'null'] },
            optional: { type: 'string' },
        },
        $defs: { person: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 2 } } } },
    };
    const r = await chat({
        messages: user('extract'),
        response_format: { type: 'json_schema', json_schema: { name: 'facts', schema, strict: true } },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.json.choices[0].message.content),
        { facts: [], kind: 'world', score: 0, ok: false, who: { name: 'aa' }, when: '' });

    // A forced named tool with no rule: a call with the minimal instance of its parameters.
    const t = await chat({ messages: user('weather?'), tools: [weatherTool], tool_choice: forceWeather });
    const msg = t.json.choices[0].message;
    assert.equal(msg.content, null);
    assert.equal(msg.tool_calls.length, 1);
    assert.equal(msg.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { city: '', days: 1 });
    assert.equal(t.json.choices[0].finish_reason, 'tool_calls');
});

test('rules match by last_user, last_user_regex, tool, schema_name and system; first match wins', async () => {
    const { ids } = await llm.addRules([
        { id: 'by-schema', match: { schema_name: 'answer' }, reply: { json: { answer: 42 } } },
        { id: 'by-tool', match: { tool: 'get_weather', last_role: 'user' }, reply: { content: 'tool offered' } },
        { id: 'by-user', match: { last_user: 'capital' }, reply: { content: 'Paris' } },
        { id: 'by-regex', match: { last_user_regex: '/^count \\d+$/i' }, reply: { content: 'counted' } },
        { match: { system: 'pirate', any_message: 'treasure' }, reply: { content: 'arr' } },
        { id: 'catch-all', match: {}, reply: { content: 'fallback' } },
    ]);
    assert.equal(ids.length, 6);
    assert.match(ids[4], /^rule-\d+$/);

    const s = await chat({
        messages: user('capital of France?'),
        response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' } } },
    });
    assert.deepEqual(JSON.parse(s.json.choices[0].message.content), { answer: 42 });
    const t = await chat({ messages: user('capital of France?'), tools: [weatherTool] });
    assert.equal(t.json.choices[0].message.content, 'tool offered');
    const u = await chat({ messages: user('capital of France?') });
    assert.equal(u.json.choices[0].message.content, 'Paris');
    const x = await chat({ messages: user('COUNT 12') });
    assert.equal(x.json.choices[0].message.content, 'counted');
    const p = await chat({ messages: [{ role: 'system', content: 'You are a pirate.' }, ...user('where is the treasure')] });
    assert.equal(p.json.choices[0].message.content, 'arr');
    const z = await chat({ messages: user('nothing special') });
    assert.equal(z.json.choices[0].message.content, 'fallback');

    const log = await llm.requests();
    assert.deepEqual(log.map((e) => e.rule_id), ['by-schema', 'by-tool', 'by-user', 'by-regex', ids[4], 'catch-all']);

    // A rule without a path is about chat completions: embeddings never use it.
    const e = await call(llm.port, 'POST', '/v1/embeddings', { model: 'emb', input: 'x' });
    assert.equal(e.status, 200);
    assert.equal((await llm.requests()).at(-1).rule_id, null);
});

test('times: a 429 with Retry-After once, then 200; GET /_mock/rules shows the uses', async () => {
    await llm.setRules([
        { id: 'limited', match: { last_user: 'retry me' }, times: 1,
            reply: { status: 429, headers: { 'Retry-After': '1' } } },
        { id: 'ok', match: { last_user: 'retry me' }, reply: { content: 'made it' } },
    ]);
    const a = await chat({ messages: user('retry me') });
    assert.equal(a.status, 429);
    assert.equal(a.headers['retry-after'], '1');
    assert.equal(a.json.error.code, 'rate_limit_exceeded');
    assert.equal(typeof a.json.error.message, 'string');
    const b = await chat({ messages: user('retry me') });
    assert.equal(b.status, 200);
    assert.equal(b.json.choices[0].message.content, 'made it');
    const c = await chat({ messages: user('retry me') });
    assert.equal(c.json.choices[0].message.content, 'made it');

    const rules = await llm.rules();
    assert.deepEqual(rules.map((r) => [r.id, r.used]), [['limited', 1], ['ok', 2]]);

    // A custom error body and a 500 with the default OpenAI error shape.
    await llm.setRules([
        { match: {}, times: 1, reply: { status: 400, body: { error: {
            message: 'json_schema is not supported', type: 'invalid_request_error', param: 'response_format', code: null,
        } } } },
        { match: {}, times: 1, reply: { status: 500 } },
    ]);
    const d = await chat({ messages: user('x') });
    assert.equal(d.status, 400);
    assert.equal(d.json.error.message, 'json_schema is not supported');
    const e = await chat({ messages: user('x') });
    assert.equal(e.status, 500);
    assert.equal(e.json.error.type, 'server_error');
    const f = await chat({ messages: user('x') });
    assert.equal(f.status, 200);
});

test('tool calls, non-streamed: an agent loop scripted as a sequence', async () => {
    await llm.setRules([
        { match: { tool: 'get_weather', last_role: 'user' }, times: 1,
            reply: { tool_calls: [
                { id: 'call_a', name: 'get_weather', arguments: { city: 'Paris', days: 2 } },
                { name: 'get_weather', arguments: '{"city": "Rome"' },
            ] } },
        { match: { last_role: 'tool' }, reply: { content: 'Sunny in Paris.' } },
    ]);
    const first = await chat({ messages: user('weather in Paris and Rome?'), tools: [weatherTool], tool_choice: 'auto' });
    assert.equal(first.status, 200, first.text);
    const m = first.json.choices[0].message;
    assert.equal(m.content, null);
    assert.equal(first.json.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.tool_calls.length, 2);
    assert.deepEqual(m.tool_calls[0],
        { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":2}' } });
    assert.match(m.tool_calls[1].id, /^call_/);
    assert.equal(m.tool_calls[1].function.arguments, '{"city": "Rome"', 'a string is sent verbatim');

    const second = await chat({
        messages: [...user('weather in Paris and Rome?'), m,
            { role: 'tool', tool_call_id: 'call_a', content: '{"temp": 21}' },
            { role: 'tool', tool_call_id: m.tool_calls[1].id, content: 'error: bad arguments' }],
        tools: [weatherTool],
    });
    assert.equal(second.status, 200, second.text);
    assert.equal(second.json.choices[0].message.content, 'Sunny in Paris.');

    // A tool result that answers no call is refused, as OpenAI does.
    const bad = await chat({ messages: [...user('x'), { role: 'tool', tool_call_id: 'nope', content: 'r' }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.type, 'invalid_request_error');
    assert.match(bad.json.error.message, /role 'tool' must be a response/);
    // An assistant tool call left unanswered is refused too.
    const unanswered = await chat({ messages: [...user('x'), m, ...user('y')] });
    assert.equal(unanswered.status, 400);
    assert.match(unanswered.json.error.message, /call_a/);
});

test('streaming: text in pieces, tool calls by index, usage chunk, [DONE]', async () => {
    await llm.setRules([
        { match: { last_user: 'stream text' }, reply: { content: 'The quick brown fox.' } },
        { match: { last_user: 'my chunks' }, reply: { stream_chunks: ['a', 'bc', 'def'] } },
        { match: { last_user: 'stream tools' }, reply: { content: 'Let me check.', tool_calls: [
            { id: 'c1', name: 'get_weather', arguments: { city: 'Oslo', days: 3 } },
            { id: 'c2', name: 'get_weather', arguments: { city: 'Bergen', days: 1 } }] } },
    ]);
    const r = await chat({ messages: user('stream text'), stream: true, stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    const chunks = sseData(r.text);
    assert.equal(chunks.at(-1), '[DONE]');
    const first = chunks[0];
    assert.equal(first.object, 'chat.completion.chunk');
    assert.match(first.id, /^chatcmpl-/);
    assert.equal(first.choices[0].delta.role, 'assistant');
    const contentDeltas = chunks.filter((c) => c !== '[DONE]' && c.choices[0]?.delta.content);
    assert.equal(contentDeltas.length, 3, 'content split into 3 pieces');
    assert.ok(chunks.slice(0, -2).every((c) => c.usage === null), 'usage: null on every chunk but the last');
    assert.deepEqual(chunks.slice(0, -2).map((c) => c.choices[0].finish_reason).filter(Boolean), ['stop'], 'finish_reason once, last');
    const usageChunk = chunks.at(-2);
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.total_tokens, usageChunk.usage.prompt_tokens + usageChunk.usage.completion_tokens);
    const whole = reassemble(chunks);
    assert.deepEqual([whole.role, whole.content, whole.finish], ['assistant', 'The quick brown fox.', 'stop']);

    const own = sseData((await chat({ messages: user('my chunks'), stream: true })).text);
    const ownDeltas = own.filter((c) => c !== '[DONE]' && c.choices[0].delta.content).map((c) => c.choices[0].delta.content);
    assert.deepEqual(ownDeltas, ['a', 'bc', 'def']);
    assert.ok(own.every((c) => c === '[DONE]' || c.usage === undefined), 'no usage without include_usage');

    const t = sseData((await chat({ messages: user('stream tools'), tools: [weatherTool], stream: true })).text);
    const headers = t.filter((c) => c !== '[DONE]').flatMap((c) => c.choices[0].delta.tool_calls || []).filter((tc) => tc.id);
    assert.deepEqual(headers.map((h) => [h.index, h.id, h.type, h.function.name, h.function.arguments]),
        [[0, 'c1', 'function', 'get_weather', ''], [1, 'c2', 'function', 'get_weather', '']]);
    const fragments = t.filter((c) => c !== '[DONE]').flatMap((c) => c.choices[0].delta.tool_calls || []).filter((tc) => !tc.id);
    assert.ok(fragments.length > 2, 'arguments arrive in several fragments');
    const back = reassemble(t);
    assert.equal(back.content, 'Let me check.');
    assert.equal(back.finish, 'tool_calls');
    assert.deepEqual(back.calls.map((c) => [c.id, c.name, JSON.parse(c.arguments)]),
        [['c1', 'get_weather', { city: 'Oslo', days: 3 }], ['c2', 'get_weather', { city: 'Bergen', days: 1 }]]);

    // Tool call only, streamed: the role chunk carries the first call's header.
    const only = sseData((await chat({ messages: user('w?'), tools: [weatherTool], tool_choice: forceWeather, stream: true })).text);
    assert.equal(only[0].choices[0].delta.content, null);
    assert.equal(only[0].choices[0].delta.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(reassemble(only).calls[0].arguments), { city: '', days: 1 });
});

test('truncate_stream cuts the connection without [DONE]; raw sends a malformed body verbatim', async () => {
    await llm.setRules([
        { id: 'cut', match: { stream: true }, reply: { content: 'one two three four five six', truncate_stream: true } },
        { id: 'raw', match: { last_user: 'raw' }, reply: { raw: '{"choices": [', headers: { 'x-mock': 'yes' } } },
        { id: 'raw502', match: { last_user: 'html' },
            reply: { status: 502, raw: '<html>Bad gateway</html>', headers: { 'content-type': 'text/html' } } },
    ]);
    const r = await chat({ messages: user('cut me'), stream: true });
    assert.equal(r.status, 200);
    assert.equal(r.aborted, true, 'connection cut');
    assert.ok(!r.text.includes('[DONE]'));
    const got = sseData(r.text);
    assert.ok(got.length >= 2);
    const partial = reassemble(got).content;
    assert.ok(partial.length > 0 && partial.length < 'one two three four five six'.length, partial);

    // A non-streamed request under truncate_stream gets half a body.
    await llm.addRules({ id: 'half', match: { last_user: 'half' }, reply: { content: 'x', truncate_stream: true } });
    const h = await chat({ messages: user('half') });
    assert.equal(h.aborted, true);
    assert.equal(h.json, undefined);

    const m = await chat({ messages: user('raw') });
    assert.equal(m.status, 200);
    assert.equal(m.text, '{"choices": [');
    assert.equal(m.headers['x-mock'], 'yes');
    assert.equal(m.json, undefined);
    const g = await chat({ messages: user('html') });
    assert.equal(g.status, 502);
    assert.equal(g.text, '<html>Bad gateway</html>');
    assert.match(g.headers['content-type'], /text\/html/);

    const log = await llm.requests();
    assert.deepEqual(log.map((e) => [e.rule_id, e.status]), [['cut', 200], ['half', 200], ['raw', 200], ['raw502', 502]]);
});

test('embeddings: deterministic, norm 1, dimensions, similar texts closer, base64', async () => {
    const post = (body) => call(llm.port, 'POST', '/v1/embeddings', { model: 'text-embedding-3-small', ...body });
    const a = await post({ input: 'Alice moved to Paris in 2019' });
    assert.equal(a.status, 200, a.text);
    assert.equal(a.json.object, 'list');
    assert.equal(a.json.model, 'text-embedding-3-small');
    assert.equal(a.json.data.length, 1);
    assert.equal(a.json.data[0].object, 'embedding');
    assert.equal(a.json.data[0].index, 0);
    const v = a.json.data[0].embedding;
    assert.equal(v.length, 384, '--dim default');
    const norm = (x) => Math.sqrt(x.reduce((s, y) => s + y * y, 0));
    assert.ok(Math.abs(norm(v) - 1) < 1e-9);
    assert.ok(a.json.usage.prompt_tokens > 0 && a.json.usage.total_tokens === a.json.usage.prompt_tokens);

    const b = await post({ input: ['Alice moved to Paris in 2019', 'Alice lives in Paris', 'quarterly revenue grew'], dimensions: 64 });
    assert.deepEqual(b.json.data.map((d) => [d.index, d.embedding.length]), [[0, 64], [1, 64], [2, 64]]);
    for (const d of b.json.data) assert.ok(Math.abs(norm(d.embedding) - 1) < 1e-9);
    const again = await post({ input: ['Alice moved to Paris in 2019'], dimensions: 64 });
    assert.deepEqual(again.json.data[0].embedding, b.json.data[0].embedding, 'same text, same vector');
    const cos = (x, y) => x.reduce((s, xi, i) => s + xi * y[i], 0);
    const [e0, e1, e2] = b.json.data.map((d) => d.embedding);
    assert.ok(cos(e0, e1) > cos(e0, e2), 'shared words bring vectors closer');

    const b64 = await post({ input: 'Alice moved to Paris in 2019', dimensions: 64, encoding_format: 'base64' });
    const buf = Buffer.from(b64.json.data[0].embedding, 'base64');
    const f32 = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    assert.equal(f32.length, 64);
    f32.forEach((x, i) => assert.ok(Math.abs(x - e0[i]) < 1e-6));

    assert.equal((await post({ input: '' })).status, 400);
    assert.equal((await post({ input: 'x', dimensions: 0 })).status, 400);

    // A rule can target embeddings by path.
    await llm.addRules({ match: { path: '/v1/embeddings', input: 'fail me' }, times: 1, reply: { status: 503 } });
    assert.equal((await post({ input: ['ok', 'please fail me'] })).status, 503);
    assert.equal((await post({ input: ['ok', 'please fail me'] })).status, 200);
});

test('models, unknown routes, malformed JSON, invalid requests, bad rules', async () => {
    const m = await call(llm.port, 'GET', '/v1/models');
    assert.equal(m.status, 200);
    assert.equal(m.json.object, 'list');
    assert.deepEqual(m.json.data.map((d) => [d.id, d.object]), [['mock-model', 'model']]);

    const u = await call(llm.port, 'POST', '/v1/nothing', {});
    assert.equal(u.status, 404);
    assert.equal(u.json.error.message, 'Invalid URL (POST /v1/nothing)');

    const bad = await call(llm.port, 'POST', '/v1/chat/completions', '{"model": "m", "messages": [');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.type, 'invalid_request_error');
    assert.ok('param' in bad.json.error && 'code' in bad.json.error);

    const noMsgs = await call(llm.port, 'POST', '/v1/chat/completions', { model: 'm', messages: [] });
    assert.equal(noMsgs.status, 400);
    const choiceNoTools = await chat({ messages: user('x'), tool_choice: 'required' });
    assert.equal(choiceNoTools.status, 400);
    const argsNotString = await chat({ messages: [...user('x'),
        { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: {} } }] },
        { role: 'tool', tool_call_id: 'c', content: 'r' }] });
    assert.equal(argsNotString.status, 400);

    const typo = await call(llm.port, 'POST', '/_mock/rules', { match: { last_usr: 'x' }, reply: { content: 'y' } });
    assert.equal(typo.status, 400);
    assert.match(typo.json.error.message, /last_usr/);
    const badReply = await call(llm.port, 'POST', '/_mock/rules', [{ reply: { content: 'ok' } }, { reply: { status: 'x' } }]);
    assert.equal(badReply.status, 400);
    assert.match(badReply.json.error.message, /rules\[1\]\.reply\.status/);
    assert.deepEqual((await llm.rules()).map((r) => r.id), ['boot'], 'a bad array adds nothing');
});

test('request log: every /v1 request with headers, parsed body, rule id and status; filter and clear', async () => {
    await llm.addRules({ id: 'greet', match: { last_user: 'hi' }, reply: { content: 'hello' } });
    await chat({ messages: user('hi'), temperature: 0.2, max_tokens: 50 }, { 'x-trace': 'abc' });
    await call(llm.port, 'POST', '/v1/embeddings', { model: 'e', input: 'x' });
    await call(llm.port, 'POST', '/v1/chat/completions', 'not json');
    const log = await llm.requests();
    assert.equal(log.length, 3, 'control requests are not logged');
    assert.deepEqual(log.map((e) => e.seq), [1, 2, 3]);
    const [c, e, j] = log;
    assert.equal(c.method, 'POST');
    assert.equal(c.path, '/v1/chat/completions');
    assert.equal(c.headers['x-trace'], 'abc');
    assert.deepEqual(c.body, { model: 'mock-model', messages: user('hi'), temperature: 0.2, max_tokens: 50 });
    assert.equal(c.rule_id, 'greet');
    assert.equal(c.status, 200);
    assert.ok(!Number.isNaN(Date.parse(c.time)));
    assert.deepEqual([e.path, e.rule_id, e.status], ['/v1/embeddings', null, 200]);
    assert.deepEqual([j.body, j.status], ['not json', 400]);

    assert.deepEqual((await llm.requests('/v1/embeddings')).map((x) => x.seq), [2]);
    assert.deepEqual(await llm.clearRequests(), { deleted: 3 });
    assert.deepEqual(await llm.requests(), []);
});

test('reset restores the --rules file, clears the log and the times counters', async () => {
    await llm.setRules([{ id: 'once', match: {}, times: 1, reply: { content: 'first' } }]);
    assert.equal((await chat({ messages: user('boot rule') })).json.choices[0].message.content, 'first');
    assert.equal((await chat({ messages: user('boot rule') })).json.choices[0].message.content, 'mock-llm: no rule matched');
    await llm.reset();
    assert.deepEqual(await llm.requests(), []);
    assert.deepEqual((await llm.rules()).map((r) => [r.id, r.used]), [['boot', 0]]);
    assert.equal((await chat({ messages: user('boot rule') })).json.choices[0].message.content, 'from the file');

    // times counters start again after reset; DELETE removes every rule.
    await llm.addRules({ id: 'once', match: { last_user: 'again' }, times: 1, reply: { content: 'first' } });
    assert.equal((await chat({ messages: user('again') })).json.choices[0].message.content, 'first');
    await llm.reset();
    await llm.addRules({ id: 'once', match: { last_user: 'again' }, times: 1, reply: { content: 'first' } });
    assert.equal((await chat({ messages: user('again') })).json.choices[0].message.content, 'first');
    assert.deepEqual(await llm.clearRules(), { deleted: 2 });
    assert.equal((await chat({ messages: user('boot rule') })).json.choices[0].message.content, 'mock-llm: no rule matched');
});

test('--api-key: /v1 routes need the bearer key, the control API does not', async () => {
    const secured = await startMockLlm({ apiKey: 'sk-test-123', dim: 16 });
    try {
        const req = (headers) => call(secured.port, 'POST', '/v1/chat/completions', { model: 'm', messages: user('x') }, headers);
        for (const h of [{}, { authorization: 'Bearer wrong' }, { authorization: 'sk-test-123' }]) {
            const r = await req(h);
            assert.equal(r.status, 401);
            assert.deepEqual(r.json.error,
                { message: 'Incorrect API key provided', type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
        }
        const models = await call(secured.port, 'GET', '/v1/models');
        assert.equal(models.status, 401);
        const ok = await req({ authorization: 'Bearer sk-test-123' });
        assert.equal(ok.status, 200);
        const emb = await call(secured.port, 'POST', '/v1/embeddings', { model: 'e', input: 'x' },
            { authorization: 'Bearer sk-test-123' });
        assert.equal(emb.json.data[0].embedding.length, 16, '--dim');
        const log = await secured.requests();
        assert.deepEqual(log.map((e) => e.status), [401, 401, 401, 401, 200, 200]);
        assert.equal(log[4].headers.authorization, 'Bearer sk-test-123');
    } finally {
        assert.deepEqual(await secured.stop(), { code: 0, signal: null });
    }
});

test('delay_ms holds the answer', async () => {
    await llm.addRules({ match: { last_user: 'slow' }, reply: { delay_ms: 300, content: 'late' } });
    const t0 = Date.now();
    const r = await chat({ messages: user('slow') });
    assert.ok(Date.now() - t0 >= 280);
    assert.equal(r.json.choices[0].message.content, 'late');
});
