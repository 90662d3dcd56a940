// Chat completions: request checks (the ones OpenAI makes that catch client bugs), the answer a
// rule or the default produces, and that answer as one JSON body or as SSE chunks.
import { randomBytes } from 'node:crypto';
import { minimalInstance } from './schema.mjs';
import { contentText } from './rules.mjs';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);
const NO_RULE = 'mock-llm: no rule matched';

// null when body is a request OpenAI would accept, else the 400 message (and the param at fault).
export function checkChat(body) {
    const bad = (message, param = null) => ({ message, param });
    if (!isObject(body)) return bad('The request body must be a JSON object.');
    if (typeof body.model !== 'string' || !body.model) return bad('you must provide a model parameter', 'model');
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
        return bad("'messages' must be a non-empty array.", 'messages');
    }
    let pending = null; // call ids of the last assistant message with tool_calls still unanswered
    let answerable = new Set();
    for (const [i, m] of body.messages.entries()) {
        const p = `messages[${i}]`;
        if (!isObject(m) || !ROLES.has(m.role)) {
            return bad(`Invalid value for '${p}.role': expected one of system, developer, user, assistant, tool.`, `${p}.role`);
        }
        if (m.role !== 'tool' && pending && pending.size) {
            return bad("An assistant message with 'tool_calls' must be followed by tool messages responding to " +
                `each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`,
            'messages');
        }
        const c = m.content;
        const contentOk = typeof c === 'string' || Array.isArray(c);
        if (m.role === 'assistant') {
            const calls = m.tool_calls;
            if (calls !== undefined && calls !== null) {
                if (!Array.isArray(calls) || calls.length === 0) {
                    return bad(`'${p}.tool_calls' must be a non-empty array.`, `${p}.tool_calls`);
                }
                for (const [j, tc] of calls.entries()) {
                    const q = `${p}.tool_calls[${j}]`;
                    if (!isObject(tc) || typeof tc.id !== 'string' || tc.type !== 'function' || !isObject(tc.function) ||
                        typeof tc.function.name !== 'string' || typeof tc.function.arguments !== 'string') {
                        return bad(`Invalid '${q}': expected {id, type: "function", function: {name, arguments: string}}.`, q);
                    }
                }
                pending = new Set(calls.map((tc) => tc.id));
                answerable = new Set(pending);
            } else if (!contentOk) {
                return bad(`Invalid value for '${p}.content': expected a string, got ${c === undefined ? 'nothing' : 'null'}.`,
                    `${p}.content`);
            }
            if (c !== undefined && c !== null && !contentOk) return bad(`Invalid type for '${p}.content'.`, `${p}.content`);
        } else if (m.role === 'tool') {
            if (typeof m.tool_call_id !== 'string' || !answerable.has(m.tool_call_id)) {
                return bad("Invalid parameter: messages with role 'tool' must be a response to a preceeding message " +
                    "with 'tool_calls'.", `${p}.role`);
            }
            pending?.delete(m.tool_call_id);
            if (!contentOk) return bad(`Invalid type for '${p}.content': expected a string.`, `${p}.content`);
        } else if (!contentOk) {
            return bad(`Invalid type for '${p}.content': expected a string or an array of parts.`, `${p}.content`);
        }
    }
    if (pending && pending.size) {
        return bad("An assistant message with 'tool_calls' must be followed by tool messages responding to each " +
            `'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`,
        'messages');
    }
    const names = [];
    if (body.tools !== undefined) {
        if (!Array.isArray(body.tools)) return bad("'tools' must be an array.", 'tools');
        for (const [i, t] of body.tools.entries()) {
            if (!isObject(t) || t.type !== 'function' || !isObject(t.function) ||
                typeof t.function.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(t.function.name) ||
                (t.function.parameters !== undefined && !isObject(t.function.parameters))) {
                return bad(`Invalid 'tools[${i}]': expected {type: "function", function: {name, description?, ` +
                    'parameters?: object}} with a name of 1-64 letters, digits, _ or -.', `tools[${i}]`);
            }
            names.push(t.function.name);
        }
    }
    const tc = body.tool_choice;
    if (tc !== undefined) {
        if (!names.length) {
            return bad("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", 'tool_choice');
        }
        const named = isObject(tc) && tc.type === 'function' && isObject(tc.function) && typeof tc.function.name === 'string';
        if (!named && !['auto', 'none', 'required'].includes(tc)) {
            return bad("Invalid value for 'tool_choice': expected 'auto', 'none', 'required' or " +
                '{type: "function", function: {name}}.', 'tool_choice');
        }
        if (named && !names.includes(tc.function.name)) {
            return bad(`Invalid value for 'tool_choice': no function named '${tc.function.name}' in 'tools'.`, 'tool_choice');
        }
    }
    const rf = body.response_format;
    if (rf !== undefined) {
        if (!isObject(rf) || !['text', 'json_object', 'json_schema'].includes(rf.type)) {
            return bad("Invalid value for 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
                'response_format.type');
        }
        if (rf.type === 'json_schema' && (!isObject(rf.json_schema) || typeof rf.json_schema.name !== 'string' ||
            (rf.json_schema.schema !== undefined && !isObject(rf.json_schema.schema)))) {
            return bad("Invalid 'response_format.json_schema': expected {name, schema: object, strict?}.",
                'response_format.json_schema');
        }
    }
    if (body.stream !== undefined && typeof body.stream !== 'boolean') return bad("'stream' must be a boolean.", 'stream');
    if (body.stream_options !== undefined && body.stream_options !== null && body.stream !== true) {
        return bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options');
    }
    return null;
}

let callSeq = 0;
const callId = () => `call_${(++callSeq).toString(36)}${randomBytes(6).toString('hex')}`;

// The answer when no rule gave one: a schema's minimal instance, a forced tool's call, or text.
function defaultAnswer(body) {
    const rf = body.response_format;
    if (rf?.type === 'json_schema') return { content: JSON.stringify(minimalInstance(rf.json_schema.schema ?? {})), calls: [] };
    const tools = Array.isArray(body.tools) ? body.tools : [];
    let forced = null;
    if (isObject(body.tool_choice)) forced = tools.find((t) => t.function.name === body.tool_choice.function.name);
    else if (body.tool_choice === 'required') forced = tools[0];
    if (forced) {
        const args = minimalInstance(forced.function.parameters ?? { type: 'object' });
        return { content: null, calls: [{ id: callId(), name: forced.function.name, arguments: JSON.stringify(args ?? {}) }] };
    }
    if (rf?.type === 'json_object') return { content: JSON.stringify({ mock_llm: 'no rule matched' }), calls: [] };
    return { content: NO_RULE, calls: [] };
}

function promptChars(body) {
    let n = 0;
    for (const m of body.messages) {
        n += contentText(m.content).length;
        for (const c of Array.isArray(m.tool_calls) ? m.tool_calls : []) {
            n += (c.function?.name?.length ?? 0) + (c.function?.arguments?.length ?? 0);
        }
    }
    return n;
}

// The answer to a (checked) chat request: {content, calls: [{id, name, arguments}], finishReason,
// usage, pieces (content deltas when streaming)}. reply is the winning rule's reply, or {}.
export function chatAnswer(body, reply = {}) {
    let content = null;
    let calls = [];
    const scripted = ['content', 'json', 'tool_calls', 'stream_chunks'].some((k) => k in reply);
    if (scripted) {
        if ('json' in reply) content = JSON.stringify(reply.json);
        else if ('content' in reply) content = reply.content;
        else if (reply.stream_chunks) content = reply.stream_chunks.join('');
        calls = (reply.tool_calls || []).map((c) => ({
            id: c.id ?? callId(),
            name: c.name,
            arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {}),
        }));
        if (content === null && !calls.length) content = '';
    } else {
        ({ content, calls } = defaultAnswer(body));
    }
    const finishReason = reply.finish_reason ?? (calls.length ? 'tool_calls' : 'stop');
    const outChars = (content ?? '').length + calls.reduce((s, c) => s + c.name.length + c.arguments.length, 0);
    const u = reply.usage || {};
    const prompt = u.prompt_tokens ?? Math.ceil(promptChars(body) / 4);
    const completion = u.completion_tokens ?? Math.ceil(outChars / 4);
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: u.total_tokens ?? prompt + completion };
    const pieces = reply.stream_chunks ?? splitPieces(content ?? '', 3);
    return { content, calls, finishReason, usage, pieces };
}

// s in at most n pieces of about equal length (whole code points), none empty.
export function splitPieces(s, n) {
    const cps = Array.from(s);
    if (!cps.length) return [];
    const size = Math.ceil(cps.length / n);
    const out = [];
    for (let i = 0; i < cps.length; i += size) out.push(cps.slice(i, i + size).join(''));
    return out;
}

function envelope(body, object) {
    return {
        id: `chatcmpl-${randomBytes(12).toString('hex')}`,
        object,
        created: Math.floor(Date.now() / 1000),
        model: body.model,
        system_fingerprint: 'fp_mock_llm',
    };
}

// The non-streaming chat.completion body.
export function completionBody(body, a) {
    const message = { role: 'assistant', content: a.content, refusal: null };
    if (a.calls.length) {
        message.tool_calls = a.calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
    }
    return {
        ...envelope(body, 'chat.completion'),
        choices: [{ index: 0, message, logprobs: null, finish_reason: a.finishReason }],
        usage: a.usage,
    };
}

// The SSE events of a streamed answer, as "data: ...\n\n" strings, [DONE] last. The first delta
// carries the role (and, when there is no text, the first tool call's header, as OpenAI does);
// each tool call's arguments follow its header in up to three fragments.
export function streamEvents(body, a) {
    const env = envelope(body, 'chat.completion.chunk');
    const includeUsage = body.stream_options?.include_usage === true;
    const events = [];
    const push = (delta, finish = null) => {
        const chunk = { ...env, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] };
        if (includeUsage) chunk.usage = null;
        events.push(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    const header = (c, i) => ({ index: i, id: c.id, type: 'function', function: { name: c.name, arguments: '' } });
    const textless = a.content === null && a.calls.length > 0;
    const first = { role: 'assistant', content: textless ? null : '' };
    if (textless) first.tool_calls = [header(a.calls[0], 0)];
    push(first);
    if (!textless) for (const p of a.pieces) push({ content: p });
    a.calls.forEach((c, i) => {
        if (!(textless && i === 0)) push({ tool_calls: [header(c, i)] });
        for (const frag of splitPieces(c.arguments, 3)) push({ tool_calls: [{ index: i, function: { arguments: frag } }] });
    });
    push({}, a.finishReason);
    if (includeUsage) events.push(`data: ${JSON.stringify({ ...env, choices: [], usage: a.usage })}\n\n`);
    events.push('data: [DONE]\n\n');
    return events;
}
