// Deterministic embeddings: each lower-cased word (unigram, weight 1) and each pair of adjacent
// words (bigram, weight 0.5) is hashed with SHA-1; the first four bytes pick the coordinate, the
// fifth byte's low bit the sign. The sum is L2-normalised, so texts sharing words have a positive
// cosine and the same text always gets the same vector.
import { createHash } from 'node:crypto';

function feature(name) {
    const h = createHash('sha1').update(name).digest();
    return { index: h.readUInt32LE(0), sign: h[4] & 1 ? -1 : 1 };
}

// The embedding of text with dim coordinates, as an array of numbers of L2 norm 1.
export function embedText(text, dim) {
    const v = new Float64Array(dim);
    const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
    const add = (name, weight) => {
        const f = feature(name);
        v[f.index % dim] += f.sign * weight;
    };
    for (let i = 0; i < words.length; i++) {
        add(`w:${words[i]}`, 1);
        if (i > 0) add(`b:${words[i - 1]} ${words[i]}`, 0.5);
    }
    if (words.length === 0) add(`t:${text}`, 1); // punctuation only: hash the text itself
    let norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    if (norm === 0) {
        // Every feature cancelled out (opposite signs on one coordinate): fall back to the text.
        v[feature(`t:${text}`).index % dim] = 1;
        norm = 1;
    }
    return Array.from(v, (x) => x / norm);
}

// The vector as OpenAI's encoding_format "base64": little-endian float32s, base64-encoded.
export function toBase64(vec) {
    const f = Float32Array.from(vec);
    return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
}
