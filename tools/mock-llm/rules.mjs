// Scripted responses: an ordered list of rules; the first whose match fits a request wins, and a
// rule with `times: n` serves at most n requests. Rules are checked when they are added, so a
// misspelt match field is a 400 rather than a rule that silently matches everything.

export const CHAT_PATH = '/v1/chat/completions';

const MATCH_TYPES = {
    path: 'string',
    model: 'string',
    last_user: 'string',
    last_user_regex: 'string',
    system: 'string',
    any_message: 'string',
    tool: 'string',
    tool_choice: 'string',
    schema_name: 'string',
    response_format: 'string',
    last_role: 'string',
    stream: 'boolean',
    input: 'string',
};

const REPLY_KEYS = new Set([
    'status', 'headers', 'body', 'delay_ms', 'chunk_delay_ms', 'content', 'json', 'tool_calls',
    'finish_reason', 'usage', 'stream_chunks', 'truncate_stream', 'raw',
]);

const RULE_KEYS = new Set(['id', 'match', 'times', 'reply']);

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// "/pattern/flags" or a bare pattern (no flags).
function compileRegex(src) {
    const m = /^\/(.*)\/([a-z]*)$/s.exec(src);
    return m ? new RegExp(m[1], m[2]) : new RegExp(src);
}

function checkReply(reply, where) {
    if (!isObject(reply)) throw new Error(`${where}.reply must be an object`);
    for (const k of Object.keys(reply)) {
        if (!REPLY_KEYS.has(k)) throw new Error(`${where}.reply.${k} is not a reply field`);
    }
    const want = (k, ok, what) => {
        if (k in reply && !ok(reply[k])) throw new Error(`${where}.reply.${k} must be ${what}`);
    };
    want('status', (v) => Number.isInteger(v) && v >= 100 && v <= 599, 'an HTTP status');
    want('headers', (v) => isObject(v) && Object.values(v).every((x) => ['string', 'number'].includes(typeof x)),
        'an object of strings');
    want('delay_ms', (v) => typeof v === 'number' && v >= 0, 'a number >= 0');
    want('chunk_delay_ms', (v) => typeof v === 'number' && v >= 0, 'a number >= 0');
    want('content', (v) => v === null || typeof v === 'string', 'a string or null');
    want('finish_reason', (v) => typeof v === 'string', 'a string');
    want('usage', (v) => isObject(v) && Object.values(v).every((x) => Number.isInteger(x) && x >= 0),
        'an object of token counts');
    want('stream_chunks', (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'), 'an array of strings');
    want('truncate_stream', (v) => typeof v === 'boolean', 'a boolean');
    want('raw', (v) => typeof v === 'string', 'a string');
    want('tool_calls', (v) => Array.isArray(v) && v.every((c) => isObject(c) && typeof c.name === 'string' &&
        (c.arguments === undefined || typeof c.arguments === 'string' || isObject(c.arguments)) &&
        (c.id === undefined || typeof c.id === 'string')),
    'an array of {name, arguments: object|string, id?}');
}

// A checked copy of one rule as sent; throws an Error whose message says what is wrong.
export function normalizeRule(rule, where = 'rule') {
    if (!isObject(rule)) throw new Error(`${where} must be an object`);
    for (const k of Object.keys(rule)) {
        if (!RULE_KEYS.has(k)) throw new Error(`${where}.${k} is not a rule field (id, match, times, reply)`);
    }
    if (rule.id !== undefined && typeof rule.id !== 'string') throw new Error(`${where}.id must be a string`);
    const match = rule.match ?? {};
    if (!isObject(match)) throw new Error(`${where}.match must be an object`);
    for (const [k, v] of Object.entries(match)) {
        if (!(k in MATCH_TYPES)) throw new Error(`${where}.match.${k} is not a match field`);
        if (typeof v !== MATCH_TYPES[k]) throw new Error(`${where}.match.${k} must be a ${MATCH_TYPES[k]}`);
    }
    if ('last_user_regex' in match) {
        try {
            compileRegex(match.last_user_regex);
        } catch (e) {
            throw new Error(`${where}.match.last_user_regex: ${e.message}`);
        }
    }
    if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times >= 0)) {
        throw new Error(`${where}.times must be an integer >= 0`);
    }
    const reply = rule.reply ?? {};
    checkReply(reply, where);
    const out = { match: structuredClone(match), reply: structuredClone(reply) };
    if (rule.id !== undefined) out.id = rule.id;
    if (rule.times !== undefined) out.times = rule.times;
    return out;
}

// The text of a message's content: a string, or the text parts of an array of parts.
export function contentText(content) {
    if (typeof content === 'string') return content;
    if (Array.isArray(content)) {
        return content.map((p) => (p && typeof p.text === 'string' ? p.text : '')).join('');
    }
    return '';
}

// What the match fields look at, extracted once per request.
export function requestFacts(path, body) {
    const b = isObject(body) ? body : {};
    const msgs = Array.isArray(b.messages) ? b.messages.filter(isObject) : [];
    const lastUser = [...msgs].reverse().find((m) => m.role === 'user');
    const rf = isObject(b.response_format) ? b.response_format : null;
    let inputs = [];
    if (typeof b.input === 'string') inputs = [b.input];
    else if (Array.isArray(b.input)) inputs = b.input.filter((x) => typeof x === 'string');
    return {
        path,
        model: typeof b.model === 'string' ? b.model : undefined,
        lastUser: lastUser ? contentText(lastUser.content) : undefined,
        systems: msgs.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => contentText(m.content)),
        messages: msgs.map((m) => contentText(m.content) +
            (Array.isArray(m.tool_calls)
                ? m.tool_calls.map((c) => `\n${c?.function?.name ?? ''} ${c?.function?.arguments ?? ''}`).join('')
                : '')),
        tools: Array.isArray(b.tools) ? b.tools.map((t) => t?.function?.name).filter((n) => typeof n === 'string') : [],
        toolChoice: isObject(b.tool_choice) ? b.tool_choice.function?.name : undefined,
        schemaName: rf?.type === 'json_schema' ? rf.json_schema?.name : undefined,
        responseFormat: rf?.type ?? 'text',
        lastRole: msgs.length ? msgs[msgs.length - 1].role : undefined,
        stream: b.stream === true,
        inputs,
    };
}

// Whether every field of match holds for the request facts f.
export function matches(match, f) {
    const has = (s, sub) => typeof s === 'string' && s.includes(sub);
    for (const [k, v] of Object.entries(match)) {
        let ok;
        switch (k) {
        case 'path': ok = f.path === v; break;
        case 'model': ok = f.model === v; break;
        case 'last_user': ok = has(f.lastUser, v); break;
        case 'last_user_regex': ok = f.lastUser !== undefined && compileRegex(v).test(f.lastUser); break;
        case 'system': ok = f.systems.some((s) => s.includes(v)); break;
        case 'any_message': ok = f.messages.some((s) => s.includes(v)); break;
        case 'tool': ok = f.tools.includes(v); break;
        case 'tool_choice': ok = f.toolChoice === v; break;
        case 'schema_name': ok = f.schemaName === v; break;
        case 'response_format': ok = f.responseFormat === v; break;
        case 'last_role': ok = f.lastRole === v; break;
        case 'stream': ok = f.stream === v; break;
        case 'input': ok = f.inputs.some((s) => s.includes(v)); break;
        default: ok = false;
        }
        if (!ok) return false;
    }
    // Without a path, a rule is about chat completions only (an embeddings call never eats it).
    return 'path' in match || f.path === CHAT_PATH;
}

// The rule list with its use counters. Ids are given to rules sent without one ("rule-N").
export class RuleStore {
    constructor(initial = []) {
        this.nextId = 1;
        this.rules = [];
        this.add(initial);
        // What POST /_mock/reset restores (the --rules file), ids included.
        this.initial = structuredClone(this.rules);
        this.initialNextId = this.nextId;
    }

    // Check every rule first, so a bad one in an array adds none. Returns the new ids.
    prepare(list) {
        const arr = Array.isArray(list) ? list : [list];
        return arr.map((r, i) => normalizeRule(r, Array.isArray(list) ? `rules[${i}]` : 'rule'));
    }

    add(list) {
        const fresh = this.prepare(list);
        for (const r of fresh) {
            if (r.id === undefined) r.id = `rule-${this.nextId++}`;
            r.used = 0;
            this.rules.push(r);
        }
        return fresh.map((r) => r.id);
    }

    replace(list) {
        const fresh = this.prepare(list); // throws before anything is dropped
        this.rules = [];
        return this.add(fresh);
    }

    clear() {
        const n = this.rules.length;
        this.rules = [];
        return n;
    }

    reset() {
        this.rules = structuredClone(this.initial);
        this.nextId = this.initialNextId;
    }

    // The first rule that matches and has uses left; its counter is taken. null when none does.
    take(facts) {
        for (const r of this.rules) {
            if (r.times !== undefined && r.used >= r.times) continue;
            if (!matches(r.match, facts)) continue;
            r.used++;
            return r;
        }
        return null;
    }
}
