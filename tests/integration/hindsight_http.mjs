// What the Hindsight face's integration tests share: paths, value shapes, and a request helper
// that sends a key and a JSON body the way the SDK does.
export const P = '/hindsight';
export const bank = (id) => `${P}/v1/default/banks/${encodeURIComponent(id)}`;
export const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/;
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// call(key, method, path, body) on srv (an Engram or a supervisedEngram): Bearer key when given;
// body as JSON unless it is already a string.
export function caller(srv) {
    return (key, method, path, body) => {
        const headers = key ? { Authorization: `Bearer ${key}` } : {};
        const opts = { headers };
        if (body !== undefined) {
            opts.body = typeof body === 'string' ? body : JSON.stringify(body);
            headers['Content-Type'] = 'application/json';
        }
        return srv.request(method, path, opts);
    };
}
