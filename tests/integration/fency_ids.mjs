// Fency ids as engram derives them (docs/fency.md, "Events and webhooks"), reimplemented here so
// tests check the C code against an independent implementation.
import crypto from 'node:crypto';

// The Fency id of engram event "evt_<ms>_<seq>" of workspace wsId: AES-128 of the two numbers
// (big-endian 64-bit each) under the first 16 bytes of SHA-256("engram fency event id\n" + wsId).
export function fencyEventId(wsId, eventId) {
    const m = /^evt_(\d+)_(\d+)$/.exec(eventId);
    if (!m) throw new Error(`not an engram event id: ${eventId}`);
    const key = crypto.createHash('sha256').update(`engram fency event id\n${wsId}`).digest().subarray(0, 16);
    const block = Buffer.alloc(16);
    block.writeBigUInt64BE(BigInt(m[1]), 0);
    block.writeBigUInt64BE(BigInt(m[2]), 8);
    const c = crypto.createCipheriv('aes-128-ecb', key, null);
    c.setAutoPadding(false);
    return 'evt_' + Buffer.concat([c.update(block), c.final()]).toString('hex');
}

// The organizationId of a workspace whose id is a UUID.
export const fencyOrgId = (wsId) => 'org_' + wsId.replaceAll('-', '').toLowerCase();

// engram's createdAt (milliseconds) with Fency's six fraction digits.
export const fencyTime = (iso) => iso.replace(/\.(\d{3})Z$/, '.$1000Z');
