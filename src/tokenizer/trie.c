/* The byte trie of the SentencePiece tokenizer (see trie.h). */
#include "src/tokenizer/trie.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"

static int trie_key_cmp(const void *a, const void *b)
{
    const px_trie_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

void px_trie_free(px_trie *t)
{
    free(t->nodes);
    t->nodes = NULL;
    t->n_nodes = 0;
}

/* Build from keys (sorted in place). A duplicate key is an error; *dup gets its
 * value. Breadth-first: each node is created with the key range sharing its
 * prefix, so children of one node come out contiguous and sorted. */
int px_trie_build(px_trie *t, px_trie_key *keys, size_t n, int32_t *dup)
{
    *dup = -1;
    qsort(keys, n, sizeof *keys, trie_key_cmp);
    for (size_t i = 1; i < n; i++)
        if (trie_key_cmp(&keys[i - 1], &keys[i]) == 0) { *dup = keys[i].value; return -1; }
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += keys[i].len;
    t->nodes = px_calloc(cap, sizeof *t->nodes, "sentencepiece trie");
    size_t *lo = px_calloc(cap, sizeof *lo, "sentencepiece trie build");
    size_t *hi = px_calloc(cap, sizeof *hi, "sentencepiece trie build");
    uint32_t *depth = px_calloc(cap, sizeof *depth, "sentencepiece trie build");
    if (!t->nodes || !lo || !hi || !depth) {
        free(lo); free(hi); free(depth); px_trie_free(t);
        return -2;
    }
    size_t count = 1;
    t->nodes[0].value = -1;
    lo[0] = 0; hi[0] = n; depth[0] = 0;
    for (size_t q = 0; q < count; q++) {
        size_t a = lo[q], b = hi[q];
        uint32_t d = depth[q];
        px_trie_node *nd = &t->nodes[q];
        if (a < b && keys[a].len == d) { nd->value = keys[a].value; a++; }
        nd->first_child = (uint32_t)count;
        while (a < b) {
            uint8_t c = keys[a].s[d];
            size_t e = a + 1;
            while (e < b && keys[e].s[d] == c) e++;
            px_trie_node *ch = &t->nodes[count];
            ch->label = c;
            ch->value = -1;
            lo[count] = a; hi[count] = e; depth[count] = d + 1;
            count++;
            nd->n_children++;
            a = e;
        }
    }
    free(lo); free(hi); free(depth);
    t->n_nodes = count;
    return 0;
}


int32_t px_trie_exact(const px_trie *t, const uint8_t *s, size_t len)
{
    if (!t->nodes) return -1;
    size_t node = 0;
    for (size_t i = 0; i < len; i++) {
        long ch = px_trie_child(t, node, s[i]);
        if (ch < 0) return -1;
        node = (size_t)ch;
    }
    return t->nodes[node].value;
}

/* Length of the longest key that is a prefix of s[0..len), 0 if none. */
size_t px_trie_longest_prefix(const px_trie *t, const uint8_t *s, size_t len)
{
    if (!t->nodes) return 0;
    size_t node = 0, best = 0;
    for (size_t i = 0; i < len; i++) {
        long ch = px_trie_child(t, node, s[i]);
        if (ch < 0) break;
        node = (size_t)ch;
        if (t->nodes[node].value >= 0) best = i + 1;
    }
    return best;
}
