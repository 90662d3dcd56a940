// The minimal valid instance of a JSON Schema: what mock-llm answers for a json_schema
// response_format or a forced tool call when no rule says otherwise. Objects carry only their
// required properties, strings are "" (or minLength "a"s), numbers 0 (or the nearest bound),
// arrays [] (or minItems minimal items), enum and const their first value, anyOf/oneOf their first
// branch; local $refs ("#/$defs/x", "#/definitions/x") are followed.

const MAX_DEPTH = 64;

function clone(v) {
    return v === undefined ? null : JSON.parse(JSON.stringify(v));
}

// Resolve a local JSON pointer ("#/a/b") against the root schema; null when it does not resolve.
function resolveRef(root, ref) {
    if (ref === '#') return root;
    if (!ref.startsWith('#/')) return null;
    let node = root;
    for (const raw of ref.slice(2).split('/')) {
        const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
        if (node === null || typeof node !== 'object' || !(key in node)) return null;
        node = node[key];
    }
    return node;
}

// allOf: one schema with the branches' properties and required lists merged.
function mergeAllOf(schema, root) {
    const { allOf, ...rest } = schema;
    const merged = { ...rest, properties: { ...(rest.properties || {}) }, required: [...(rest.required || [])] };
    for (let branch of allOf) {
        if (branch && typeof branch.$ref === 'string') branch = resolveRef(root, branch.$ref) || {};
        if (!branch || typeof branch !== 'object') continue;
        for (const [k, v] of Object.entries(branch)) {
            if (k === 'properties') Object.assign(merged.properties, v);
            else if (k === 'required') merged.required.push(...v);
            else if (!(k in merged)) merged[k] = v;
        }
    }
    if (!merged.required.length) delete merged.required;
    return merged;
}

function minimalNumber(schema, integer) {
    let v = 0;
    if (typeof schema.minimum === 'number' && v < schema.minimum) v = schema.minimum;
    if (typeof schema.exclusiveMinimum === 'number' && v <= schema.exclusiveMinimum) {
        v = integer ? Math.floor(schema.exclusiveMinimum) + 1 : schema.exclusiveMinimum + 1;
    }
    if (typeof schema.maximum === 'number' && v > schema.maximum) v = schema.maximum;
    if (typeof schema.exclusiveMaximum === 'number' && v >= schema.exclusiveMaximum) {
        v = integer ? Math.ceil(schema.exclusiveMaximum) - 1 : schema.exclusiveMaximum - 1;
    }
    return integer ? Math.ceil(v) : v;
}

// The minimal instance of schema (root: the document $refs resolve against).
export function minimalInstance(schema, root = schema, depth = 0) {
    if (depth > MAX_DEPTH || schema === null || typeof schema !== 'object') return null;
    if ('const' in schema) return clone(schema.const);
    if (Array.isArray(schema.enum) && schema.enum.length) return clone(schema.enum[0]);
    if (typeof schema.$ref === 'string') {
        const target = resolveRef(root, schema.$ref);
        return target ? minimalInstance(target, root, depth + 1) : null;
    }
    for (const k of ['anyOf', 'oneOf']) {
        if (Array.isArray(schema[k]) && schema[k].length) return minimalInstance(schema[k][0], root, depth + 1);
    }
    if (Array.isArray(schema.allOf) && schema.allOf.length) {
        return minimalInstance(mergeAllOf(schema, root), root, depth + 1);
    }
    let type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
    if (!type) {
        if (schema.properties || schema.required) type = 'object';
        else if (schema.items || schema.prefixItems) type = 'array';
        else return null; // any value is valid; null is the smallest
    }
    switch (type) {
    case 'object': {
        const out = {};
        const props = schema.properties || {};
        for (const name of schema.required || []) {
            out[name] = minimalInstance(props[name] ?? {}, root, depth + 1);
        }
        return out;
    }
    case 'array': {
        const out = [];
        const n = Number.isInteger(schema.minItems) ? schema.minItems : 0;
        for (let i = 0; i < n; i++) {
            const item = Array.isArray(schema.prefixItems) && i < schema.prefixItems.length
                ? schema.prefixItems[i] : schema.items;
            out.push(minimalInstance(item ?? {}, root, depth + 1));
        }
        return out;
    }
    case 'string':
        return Number.isInteger(schema.minLength) ? 'a'.repeat(schema.minLength) : '';
    case 'integer':
        return minimalNumber(schema, true);
    case 'number':
        return minimalNumber(schema, false);
    case 'boolean':
        return false;
    default:
        return null;
    }
}
