/* A byte trie over SentencePiece piece strings: children of a node are
 * contiguous and sorted by label. Used for the unigram Viterbi's prefix
 * search, the user-defined-symbol matcher and piece -> id lookups. */
#ifndef PX_TRIE_H
#define PX_TRIE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t first_child; /* index of the first child in nodes[] */
    uint16_t n_children;  /* 0..256 */
    uint8_t label;        /* byte on the edge from the parent */
    int32_t value;        /* piece id, or -1 */
} px_trie_node;

typedef struct {
    px_trie_node *nodes;
    size_t n_nodes;
} px_trie;

typedef struct {
    const uint8_t *s;
    uint32_t len;
    int32_t value;
} px_trie_key;

/* Builds t from n keys (sorted here). A duplicate key: -1 with *dup = its
 * value. Out of memory: -1 with *dup = -1. */
int px_trie_build(px_trie *t, px_trie_key *keys, size_t n, int32_t *dup);
void px_trie_free(px_trie *t);
/* The value stored for s[0..len), or -1. */
int32_t px_trie_exact(const px_trie *t, const uint8_t *s, size_t len);
/* Length of the longest key that is a prefix of s[0..len), 0 if none. */
size_t px_trie_longest_prefix(const px_trie *t, const uint8_t *s, size_t len);

/* Child of node labelled c, or -1. */
static inline long px_trie_child(const px_trie *t, size_t node, uint8_t c)
{
    const px_trie_node *nd = &t->nodes[node];
    size_t lo = nd->first_child, hi = lo + nd->n_children;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint8_t l = t->nodes[mid].label;
        if (l == c) return (long)mid;
        if (l < c) lo = mid + 1; else hi = mid;
    }
    return -1;
}

#endif
