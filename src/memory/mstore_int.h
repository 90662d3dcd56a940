/* Memory store internals shared by mstore_codec.c, mstore_write.c, mstore.c and mstore_doc.c:
 * the key set every script gets, the Lua helpers the mutating scripts share, and small C helpers.
 *
 * Every mutating script gets the same KEYS (EG__MEM_KEYS of them, in the order of
 * eg__mem_key_t), so the Lua helpers below can name them. The scripts never re-encode a record:
 * Redis's cjson prints numbers with 14 significant digits, which would round microsecond times.
 * C builds every record; Lua stores strings, counts with HINCRBY and decodes records only to read
 * ids from them.
 *
 * Links: link_count counts links whose both units exist. A semantic or causal link is an entry
 * on each of its units. A temporal link is one entry on its holder plus a count in K.lr for the
 * other end ("so many temporal links name this id"), which is what lets a delete take the links
 * others hold to a unit out of link_count without finding them: the count stays while its
 * holders do, and a unit stored again under that id (a replaced document's derived ids) makes
 * them links again. */
#ifndef ENGRAM_MSTORE_INT_H
#define ENGRAM_MSTORE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

#include "engram/arena.h"
#include "engram/mstore.h"
#include "engram/store.h"

/* The keys of one bank's memory, in the order scripts receive them. */
typedef enum {
    EG__MK_BANK = 0, /* the bank record (bank.c), whose counters the scripts keep */
    EG__MK_U,
    EG__MK_V,
    EG__MK_L,
    EG__MK_D,
    EG__MK_C,
    EG__MK_E,
    EG__MK_ES,
    EG__MK_EN,
    EG__MK_X,
    EG__MK_DU,
    EG__MK_WK,
    EG__MK_LR,
    EG__MK_SO,
    EG__MEM_KEYS
} eg__mem_key_t;

/* Key suffixes, indexed by eg__mem_key_t. */
extern const char *const eg__mem_key_suffix[EG__MEM_KEYS];

/* Fill keys[EG__MEM_KEYS] for a bank, in the arena. */
void eg__mem_keys(eg_arena_t *a, const char *ws_id, const char *bank_id, const char **keys);

/* Map a script's error reply ("EG_NOTFOUND ...", "EG_CONFLICT ...", "EG_INVALID ...") to an
 * error code; anything else is logged and is EG_EREDIS. */
int eg__mem_reply_error(const redisReply *r);

/* True for a caller's document id: 1..EG_MEM_DOC_ID_MAX bytes without ASCII control characters
 * (the change stream separates document ids with newlines). */
bool eg__mem_doc_id_valid(const char *id);

/* True when a unit can be stored: UUID id, text, known type, tag and entity limits, UUID entity
 * ids without duplicates. */
bool eg__mem_unit_valid(const eg_mem_unit_t *u);

/* Print j unformatted into the arena and delete it. */
char *eg__mem_print(eg_arena_t *a, cJSON *j);

/* A vector as stored: dim float32 little-endian (4 * dim bytes), in the arena. */
char *eg__mem_vec_bytes(eg_arena_t *a, const float *v, size_t dim);

/* "%lld" of a time, or "" for EG_MEM_TIME_NONE, in the arena. */
const char *eg__mem_time_arg(eg_arena_t *a, int64_t t);

/* Run a mutating script whose reply is a count: KEYS are the bank's keys (eg__mem_keys), then
 * args (arg_lens[i] for binary ones, 0 or a NULL arg_lens for strings). 0 (cb runs once with
 * the count or the mapped error) or EG_EUNAVAIL. */
int eg__mem_count_eval(eg_script_t *script, const char *ws_id, const char *bank_id,
                       const char *const *args, const size_t *arg_lens, size_t nargs,
                       eg_mem_count_fn cb, void *udata);

/* Shared Lua of the mutating scripts. K names the keys; the change sets cu/ce/cd (with their
 * insertion-ordered lists) collect what the change entry lists; cnt collects counter deltas.
 *   links_drop(id)       delete the links a unit holds (the other side of semantic and causal
 *                        ones too; a temporal one stops counting for its other end)
 *   unit_drop(id)        delete a unit: vector, links_drop, entity mentions (an entity left with
 *                        none is deleted), document membership; the temporal links other units
 *                        hold to it stop counting (see K.lr); an observation leaves K.so; a fact
 *                        some observation is made from (K.so) goes to gone (below); true if it
 *                        existed
 *   so_link(oid, rec, add)  add / remove observation oid (record rec) in K.so under each of its
 *                        source facts: K.so is "fact id -> comma-terminated observation ids",
 *                        so nothing ever scans the bank to find a fact's observations
 *   gone, gonel          facts whose observations must forget them: finish removes them from
 *                        those observations' source_ids (found through K.so; proof_count
 *                        follows, updated_at becomes now), deletes an observation left with no
 *                        source, and drops the facts' K.so entries
 *   doc_drop(bank, doc)  delete a document, its units and chunks; units dropped, or -1
 *   finish(now, reset)   apply the counter deltas and last_write_at, append the change entry
 *                        (reset = '1' appends a reset entry instead); nothing when unchanged */
#define EG__MEM_LUA_LIB                                                                            \
    "local K = {bank = KEYS[1], u = KEYS[2], v = KEYS[3], l = KEYS[4], d = KEYS[5], c = "          \
    "KEYS[6],\n"                                                                                   \
    "  e = KEYS[7], es = KEYS[8], en = KEYS[9], x = KEYS[10], du = KEYS[11], wk = KEYS[12],\n"     \
    "  lr = KEYS[13], so = KEYS[14]}\n"                                                            \
    "local cu, cul, ce, cel, cd, cdl = {}, {}, {}, {}, {}, {}\n"                                   \
    "local cnt = {facts = 0, links = 0, docs = 0, chunks = 0}\n"                                   \
    "local function mark(set, list, id)\n"                                                         \
    "  if not set[id] then set[id] = true; list[#list + 1] = id end\n"                             \
    "end\n"                                                                                        \
    "local function replace_plain(s, a, b)\n"                                                      \
    "  local out, i = {}, 1\n"                                                                     \
    "  while true do\n"                                                                            \
    "    local p = string.find(s, a, i, true)\n"                                                   \
    "    if not p then break end\n"                                                                \
    "    out[#out + 1] = string.sub(s, i, p - 1)\n"                                                \
    "    out[#out + 1] = b\n"                                                                      \
    "    i = p + #a\n"                                                                             \
    "  end\n"                                                                                      \
    "  out[#out + 1] = string.sub(s, i)\n"                                                         \
    "  return table.concat(out)\n"                                                                 \
    "end\n"                                                                                        \
    "local function strip_links(s, id)\n"                                                          \
    "  local out, p = {}, id .. ' '\n"                                                             \
    "  for ent in string.gmatch(s, '[^;]+;') do\n"                                                 \
    "    if string.sub(ent, 1, #p) ~= p then out[#out + 1] = ent end\n"                            \
    "  end\n"                                                                                      \
    "  return table.concat(out)\n"                                                                 \
    "end\n"                                                                                        \
    "local function list_remove(s, item)\n"                                                        \
    "  local pat = item .. ','\n"                                                                  \
    "  local p = string.find(s, pat, 1, true)\n"                                                   \
    "  while p and p > 1 and string.sub(s, p - 1, p - 1) ~= ',' do\n"                              \
    "    p = string.find(s, pat, p + 1, true)\n"                                                   \
    "  end\n"                                                                                      \
    "  if not p then return s end\n"                                                               \
    "  return string.sub(s, 1, p - 1) .. string.sub(s, p + #pat)\n"                                \
    "end\n"                                                                                        \
    "local function decode(rec)\n"                                                                 \
    "  local ok, o = pcall(cjson.decode, rec)\n"                                                   \
    "  if ok and type(o) == 'table' then return o end\n"                                           \
    "  return {}\n"                                                                                \
    "end\n"                                                                                        \
    "local function entity_drop(eid)\n"                                                            \
    "  local rec = redis.call('HGET', K.e, eid)\n"                                                 \
    "  if rec then\n"                                                                              \
    "    local f = decode(rec).folded\n"                                                           \
    "    if type(f) == 'string' and redis.call('HGET', K.en, f) == eid then\n"                     \
    "      redis.call('HDEL', K.en, f)\n"                                                          \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  redis.call('HDEL', K.e, eid)\n"                                                             \
    "  redis.call('HDEL', K.es, eid .. ':n', eid .. ':f', eid .. ':l')\n"                          \
    "end\n"                                                                                        \
    "local function entity_dec(eid)\n"                                                             \
    "  mark(ce, cel, eid)\n"                                                                       \
    "  if redis.call('HINCRBY', K.es, eid .. ':n', -1) <= 0 then entity_drop(eid) end\n"           \
    "end\n"                                                                                        \
    "local function links_drop(id)\n"                                                              \
    "  local ls = redis.call('HGET', K.l, id)\n"                                                   \
    "  if not ls then return end\n"                                                                \
    "  for other, typ in string.gmatch(ls, '([^ ;]+) ([^ ;]+) [^;]*;') do\n"                       \
    "    if typ == 'temporal' then\n"                                                              \
    "      if redis.call('HEXISTS', K.u, other) == 1 then cnt.links = cnt.links - 1 end\n"         \
    "      if redis.call('HINCRBY', K.lr, other, -1) <= 0 then redis.call('HDEL', K.lr, other) "   \
    "end\n"                                                                                        \
    "    else\n"                                                                                   \
    "      cnt.links = cnt.links - 1\n"                                                            \
    "      local ol = redis.call('HGET', K.l, other)\n"                                            \
    "      if ol and other ~= id then\n"                                                           \
    "        local rest = strip_links(ol, id)\n"                                                   \
    "        if rest == '' then redis.call('HDEL', K.l, other)\n"                                  \
    "        else redis.call('HSET', K.l, other, rest) end\n"                                      \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  redis.call('HDEL', K.l, id)\n"                                                              \
    "end\n"                                                                                        \
    "local function src_ids(rec)\n"                                                                \
    "  local out = {}\n"                                                                           \
    "  local _, e = string.find(rec, '\"source_ids\":[', 1, true)\n"                               \
    "  local c = e and string.find(rec, ']', e + 1, true)\n"                                       \
    "  if not c then return out end\n"                                                             \
    "  for sid in string.gmatch(string.sub(rec, e + 1, c - 1), '\"([^\"]*)\"') do out[#out + 1] = sid end\n"\
    "  return out\n"                                                                               \
    "end\n"                                                                                        \
    "local function so_link(oid, rec, add)\n"                                                      \
    "  for _, sid in ipairs(src_ids(rec)) do\n"                                                    \
    "    local cur = redis.call('HGET', K.so, sid)\n"                                              \
    "    if add then\n"                                                                            \
    "      if not cur then redis.call('HSET', K.so, sid, oid .. ',')\n"                            \
    "      elseif list_remove(cur, oid) == cur then redis.call('HSET', K.so, sid, cur .. oid .. ',') end\n"\
    "    elseif cur then\n"                                                                        \
    "      local rest = list_remove(cur, oid)\n"                                                   \
    "      if rest == '' then redis.call('HDEL', K.so, sid) else redis.call('HSET', K.so, sid, rest) end\n"\
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local gone, gonel = {}, {}\n"                                                                 \
    "local function unit_drop(id)\n"                                                               \
    "  local rec = redis.call('HGET', K.u, id)\n"                                                  \
    "  if not rec then return false end\n"                                                         \
    "  local o = decode(rec)\n"                                                                    \
    "  if o.fact_type == 'observation' then so_link(id, rec, false)\n"                             \
    "  elseif redis.call('HEXISTS', K.so, id) == 1 then mark(gone, gonel, id) end\n"               \
    "  if type(o.entity_ids) == 'table' then\n"                                                    \
    "    for _, eid in ipairs(o.entity_ids) do\n"                                                  \
    "      if type(eid) == 'string' then entity_dec(eid) end\n"                                    \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  if type(o.document_id) == 'string' then\n"                                                  \
    "    local m = redis.call('HGET', K.du, o.document_id)\n"                                      \
    "    if m then redis.call('HSET', K.du, o.document_id, list_remove(m, id)) end\n"              \
    "    mark(cd, cdl, o.document_id)\n"                                                           \
    "  end\n"                                                                                      \
    "  links_drop(id)\n"                                                                           \
    "  cnt.links = cnt.links - (tonumber(redis.call('HGET', K.lr, id)) or 0)\n"                    \
    "  redis.call('HDEL', K.u, id)\n"                                                              \
    "  redis.call('HDEL', K.v, id)\n"                                                              \
    "  cnt.facts = cnt.facts - 1\n"                                                                \
    "  mark(cu, cul, id)\n"                                                                        \
    "  return true\n"                                                                              \
    "end\n"                                                                                        \
    "local function doc_drop(bank, doc)\n"                                                         \
    "  local rec = redis.call('HGET', K.d, doc)\n"                                                 \
    "  if not rec then return -1 end\n"                                                            \
    "  local n = 0\n"                                                                              \
    "  local m = redis.call('HGET', K.du, doc) or ''\n"                                            \
    "  for id in string.gmatch(m, '([^,]+),') do\n"                                                \
    "    if unit_drop(id) then n = n + 1 end\n"                                                    \
    "  end\n"                                                                                      \
    "  local nc = tonumber(decode(rec).chunk_count) or 0\n"                                        \
    "  for i = 0, nc - 1 do\n"                                                                     \
    "    redis.call('HDEL', K.c, bank .. '_' .. doc .. '_' .. string.format('%d', i))\n"           \
    "  end\n"                                                                                      \
    "  cnt.chunks = cnt.chunks - nc\n"                                                             \
    "  redis.call('HDEL', K.d, doc)\n"                                                             \
    "  redis.call('HDEL', K.du, doc)\n"                                                            \
    "  cnt.docs = cnt.docs - 1\n"                                                                  \
    "  mark(cd, cdl, doc)\n"                                                                       \
    "  return n\n"                                                                                 \
    "end\n"                                                                                        \
    "local function unsource(oid, rec, nowus)\n"                                                   \
    "  local _, e = string.find(rec, '\"source_ids\":[', 1, true)\n"                               \
    "  local c = e and string.find(rec, ']', e + 1, true)\n"                                       \
    "  if not c then return end\n"                                                                 \
    "  local kept, hit = {}, false\n"                                                              \
    "  for sid in string.gmatch(string.sub(rec, e + 1, c - 1), '\"([^\"]*)\"') do\n"               \
    "    if gone[sid] then hit = true else kept[#kept + 1] = '\"' .. sid .. '\"' end\n"            \
    "  end\n"                                                                                      \
    "  if not hit then return end\n"                                                               \
    "  if #kept == 0 then unit_drop(oid); return end\n"                                            \
    "  rec = string.sub(rec, 1, e) .. table.concat(kept, ',') .. string.sub(rec, c)\n"             \
    "  rec = string.gsub(rec, '\"proof_count\":%-?%d+', '\"proof_count\":' .. #kept, 1)\n"         \
    "  local us, ue = string.find(rec, '\"updated_at\":', 1, true)\n"                              \
    "  if us then\n"                                                                               \
    "    local v = string.match(rec, '^%-?%d+', ue + 1)\n"                                         \
    "    local old = v or string.match(rec, '^null', ue + 1) or ''\n"                              \
    "    local t = nowus\n"                                                                        \
    "    if v and tonumber(v) >= t then t = tonumber(v) + 1 end\n"                                 \
    "    rec = string.sub(rec, 1, ue) .. string.format('%d', t) .. string.sub(rec, ue + 1 + "      \
    "#old)\n"                                                                                      \
    "  end\n"                                                                                      \
    "  redis.call('HSET', K.u, oid, rec)\n"                                                        \
    "  mark(cu, cul, oid)\n"                                                                       \
    "end\n"                                                                                        \
    "local function sources_drop(now)\n"                                                           \
    "  if #gonel == 0 then return end\n"                                                           \
    "  local nowus = (tonumber(now) or 0) * 1000\n"                                                \
    "  for _, sid in ipairs(gonel) do\n"                                                           \
    "    local l = redis.call('HGET', K.so, sid)\n"                                                \
    "    if l then\n"                                                                              \
    "      for oid in string.gmatch(l, '[^,]+') do\n"                                              \
    "        local rec = redis.call('HGET', K.u, oid)\n"                                           \
    "        if rec then unsource(oid, rec, nowus) end\n"                                          \
    "      end\n"                                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  for _, sid in ipairs(gonel) do redis.call('HDEL', K.so, sid) end\n"                         \
    "  gone, gonel = {}, {}\n"                                                                     \
    "end\n"                                                                                        \
    "local function finish(now, reset)\n"                                                          \
    "  sources_drop(now)\n"                                                                        \
    "  if reset ~= '1' and #cul + #cel + #cdl == 0 then return end\n"                              \
    "  if redis.call('EXISTS', K.bank) == 1 then\n"                                                \
    "    if cnt.facts ~= 0 then redis.call('HINCRBY', K.bank, 'fact_count', cnt.facts) end\n"      \
    "    if cnt.links ~= 0 then redis.call('HINCRBY', K.bank, 'link_count', cnt.links) end\n"      \
    "    if cnt.docs ~= 0 then redis.call('HINCRBY', K.bank, 'document_count', cnt.docs) end\n"    \
    "    if cnt.chunks ~= 0 then redis.call('HINCRBY', K.bank, 'chunk_count', cnt.chunks) end\n"   \
    "    redis.call('HSET', K.bank, 'last_write_at', now)\n"                                       \
    "  end\n"                                                                                      \
    "  if reset == '1' then\n"                                                                     \
    "    redis.call('XADD', K.x, 'MAXLEN', '~', '" EG__MEM_STR(                                    \
        EG_MEM_CHANGES_MAX) "', '*',\n"                                                            \
                            "      'reset', '1')\n"                                                \
                            "  else\n"                                                             \
                            "    redis.call('XADD', K.x, 'MAXLEN', '~', '" EG__MEM_STR(            \
                                EG_MEM_CHANGES_MAX) "', '*',\n"                                    \
                                                    "      'u', table.concat(cul, ','), 'e', "     \
                                                    "table.concat(cel, ','), 'd', "                \
                                                    "table.concat(cdl, '\\n'))\n"                  \
                                                    "  end\n"                                      \
                                                    "end\n"

#define EG__MEM_STR_(x) #x
#define EG__MEM_STR(x)  EG__MEM_STR_(x)

#endif
