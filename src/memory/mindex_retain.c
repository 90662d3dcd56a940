/* Memory index: what retain asks of an index beyond recall's needs — the dictionary of entity
 * names that entity resolution searches (engram/resolve.h), and the vectors' sign sketches for
 * its batch threshold scan (engram/vindex.h).
 *
 * Both are built on first use, so a process that only recalls from a bank never pays for them,
 * and then follow the index: the dictionary is updated by every entity put (new or renamed) and
 * removal (mindex_graph.c), the sketches by every vector add and update (vindex.c). Building the
 * dictionary once costs a few microseconds an entity; rebuilding it for every retain (as an
 * earlier version did) cost that for every batch. */
#include "engram/resolve.h"
#include "memory/mindex_int.h"

static eg_resolve_dict_t *names(eg_mindex_t *ix)
{
    if (!ix->names) {
        ix->names = eg_resolve_dict_new();
        for (uint32_t i = 0; i < ix->nents; i++)
            if (ix->ents[i].live)
                eg_resolve_dict_add(ix->names, i, ix->ents[i].pub.name);
    }
    return ix->names;
}

size_t eg_mindex_entity_search(eg_mindex_t *ix, const char *name, double min_sim,
                               eg_resolve_hit_t *out, size_t max)
{
    if (!ix || !name || !out)
        return 0;
    return eg_resolve_dict_search(names(ix), name, min_sim, out, max);
}

bool eg_mindex_entity_names_built(const eg_mindex_t *ix)
{
    return ix && ix->names;
}

void eg__mx_names_add(eg_mindex_t *ix, uint32_t idx)
{
    if (ix->names)
        eg_resolve_dict_add(ix->names, idx, ix->ents[idx].pub.name);
}

void eg__mx_names_remove(eg_mindex_t *ix, uint32_t idx)
{
    if (ix->names)
        eg_resolve_dict_remove(ix->names, idx, ix->ents[idx].pub.name);
}

void eg__mx_names_free(eg_mindex_t *ix)
{
    eg_resolve_dict_free(ix->names);
    ix->names = NULL;
}

size_t eg__mx_names_bytes(const eg_mindex_t *ix)
{
    return eg_resolve_dict_bytes(ix->names);
}

void eg_mindex_sketch_vectors(eg_mindex_t *ix)
{
    if (ix)
        eg_vindex_sketch_enable(ix->vec);
}
