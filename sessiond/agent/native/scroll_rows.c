/*
 * scroll_rows: the row passes of the agent's scroll history (sessiond/agent/
 * scroll.py, loaded by row_native.py with ctypes from the same library as
 * glyph_cells.c): which rows of a damaged rectangle equal the rows the
 * client holds (unshifted or shifted), the shift most rows vote for, and
 * the copy of the sent rows into the history.
 *
 * Why: the history used to keep every row as a Python bytes object (one
 * malloc of ~4 KiB per row, 654 a frame for a scrolling xterm) so that rows
 * could be compared and hashed by the dict the shift vote used (SipHash of
 * every sampled row); here the rows stay in the capture and in the
 * history's one contiguous buffer, and are compared with memcmp and hashed
 * with a cheap multiply-xor (equality is always confirmed with memcmp, so
 * the hash only has to be fast).
 *
 * The Python code stays the reference and the fallback
 * (sessiond/agent/row_compare.py; tests/unit/test_scroll_rows.py requires
 * identical results over random rows):
 *   sv_rows_equal     = [cur[i] == prev[i + shift]] for every row i;
 *   sv_vote_shift     = row_compare.vote: the shift the indexed previous
 *                       rows and the voting current rows agree on most,
 *                       ties to the shift voted for first (Counter.most_common);
 *   sv_copy_rows      = the history's slice assignment of each row (but
 *                       the rows the plan found unchanged).
 *
 * A set of rows is (buffer, its length, stride, start): h rows of row_bytes
 * bytes, each `stride` bytes after the last, from byte `start`.  Every
 * length, stride and bound is checked, overflow-safe, before memory is read
 * or written; a call that fails a check returns SV_BAD_ARGS and touches
 * nothing.  No allocation (the vote's scratch is the caller's), no global
 * state, libc only.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bounds.h"

/* The shift vote's scratch: a hash table of the indexed previous rows, then per indexed row its
 * hash, how often it occurs and where it last occurs, then per shift its votes and per vote order
 * its shift.  Sizes in entries. */
struct layout {
    size_t n, table_len, table, hashes, counts, lasts, votes, order, total;
};

/* The scratch layout for h rows indexed every `step`-th, in bytes from the start; 0 if impossible. */
static int vote_layout(size_t h, size_t step, struct layout *out)
{
    size_t n, table_len = 2;
    if (h == 0 || h > MAX_RECT_SIDE || step == 0)
        return 0;
    n = (h - 1) / step + 1; /* rows 0, step, ... below h (no overflow for any step) */
    while (table_len < 2 * n)
        table_len *= 2;
    out->n = n;
    out->table_len = table_len;
    out->hashes = 0;                                        /* uint64_t[n] first: 8-byte aligned */
    out->table = out->hashes + n * sizeof(uint64_t);        /* uint32_t[table_len] */
    out->counts = out->table + table_len * sizeof(uint32_t); /* uint32_t[n] */
    out->lasts = out->counts + n * sizeof(uint32_t);        /* uint32_t[n] */
    out->votes = out->lasts + n * sizeof(uint32_t);         /* uint32_t[2h]: shift d at d + h */
    out->order = out->votes + 2 * h * sizeof(uint32_t);     /* uint32_t[h]: shifts in first-vote order */
    out->total = out->order + h * sizeof(uint32_t);
    return 1; /* h <= 32768: no sum above can overflow */
}

/* The scratch bytes sv_vote_shift needs for h rows indexed every `step`-th (0: bad arguments). */
size_t sv_vote_scratch_bytes(size_t h, size_t step)
{
    struct layout layout;
    return vote_layout(h, step, &layout) ? layout.total : 0;
}

/* A fast hash of a row (four independent multiply-xor lanes); equal rows hash equal. */
static uint64_t row_hash(const uint8_t *row, size_t n)
{
    uint64_t lane[4] = {0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL, 0x165667B19E3779F9ULL, 0x27D4EB2F165667C5ULL};
    uint64_t word, hash;
    size_t i = 0, k;
    for (; i + 4 * sizeof word <= n; i += 4 * sizeof word)
        for (k = 0; k < 4; k++) {
            memcpy(&word, row + i + k * sizeof word, sizeof word);
            lane[k] = (lane[k] ^ word) * 0xFF51AFD7ED558CCDULL;
        }
    hash = lane[0] ^ (lane[1] >> 17) ^ (lane[1] << 47) ^ (lane[2] >> 31) ^ (lane[2] << 33) ^ (lane[3] >> 43)
        ^ (lane[3] << 21);
    for (; i < n; i++)
        hash = (hash ^ row[i]) * 1099511628211ULL;
    hash ^= hash >> 33;
    hash *= 0xC4CEB9FE1A85EC53ULL;
    return hash ^ (hash >> 29);
}

/*
 * out[i] = 1 if row i of cur equals row i + shift of prev (0 <= i + shift < h), else 0, for the h
 * rows of row_bytes bytes of each (out_len >= h).  Returns how many rows are equal, or SV_BAD_ARGS.
 */
long sv_rows_equal(const uint8_t *cur, size_t cur_len, size_t cur_stride, size_t cur_start, const uint8_t *prev,
                   size_t prev_len, size_t prev_stride, size_t prev_start, size_t row_bytes, size_t h, long shift,
                   uint8_t *out, size_t out_len)
{
    size_t i, equal = 0;
    if (cur == NULL || prev == NULL || out == NULL || out_len < h || shift > MAX_RECT_SIDE || shift < -MAX_RECT_SIDE)
        return SV_BAD_ARGS;
    if (!rows_inside(cur_len, cur_stride, cur_start, row_bytes, h)
        || !rows_inside(prev_len, prev_stride, prev_start, row_bytes, h))
        return SV_BAD_ARGS;
    for (i = 0; i < h; i++) {
        long j = (long)i + shift;
        uint8_t same = 0;
        if (j >= 0 && (size_t)j < h)
            same = memcmp(cur + cur_start + i * cur_stride, prev + prev_start + (size_t)j * prev_stride, row_bytes) == 0;
        out[i] = same;
        equal += same;
    }
    return (long)equal;
}

/*
 * The shift vote (row_compare.vote): prev rows 0, step, 2 * step, ... are indexed, those occurring
 * at most max_repeats times among them (at their last occurrence); cur rows vote in blocks (`take`
 * rows every `period`: rows 0..take-1, period..period+take-1, ...), except where skip[i] != 0
 * (skip may be NULL: none; else skip_len >= h); a cur row equal to an indexed row j != i votes
 * for shift j - i.  result[0] = the shift with most votes (ties: the first voted for), result[1] =
 * its votes (0 and 0 if none); result_size >= 2 entries' bytes.  `scratch` (8-byte aligned,
 * scratch_len >= sv_vote_scratch_bytes(h, step)) is overwritten.  Returns 0, or SV_BAD_ARGS.
 */
int sv_vote_shift(const uint8_t *cur, size_t cur_len, size_t cur_stride, size_t cur_start, const uint8_t *prev,
                  size_t prev_len, size_t prev_stride, size_t prev_start, size_t row_bytes, size_t h, size_t step,
                  size_t take, size_t period, size_t max_repeats, const uint8_t *skip, size_t skip_len,
                  uint8_t *scratch, size_t scratch_len, int64_t *result, size_t result_size)
{
    struct layout at;
    uint64_t *hashes;
    uint32_t *table, *counts, *lasts, *votes, *order;
    size_t mask, i, j, block, voted = 0, best;

    if (cur == NULL || prev == NULL || scratch == NULL || result == NULL || result_size < 2 * sizeof *result)
        return SV_BAD_ARGS;
    if (!vote_layout(h, step, &at) || scratch_len < at.total || (uintptr_t)scratch % sizeof(uint64_t) != 0)
        return SV_BAD_ARGS;
    if (take == 0 || period < take || (skip != NULL && skip_len < h))
        return SV_BAD_ARGS;
    if (!rows_inside(cur_len, cur_stride, cur_start, row_bytes, h)
        || !rows_inside(prev_len, prev_stride, prev_start, row_bytes, h))
        return SV_BAD_ARGS;
    hashes = (uint64_t *)(void *)(scratch + at.hashes);
    table = (uint32_t *)(void *)(scratch + at.table);
    counts = (uint32_t *)(void *)(scratch + at.counts);
    lasts = (uint32_t *)(void *)(scratch + at.lasts);
    votes = (uint32_t *)(void *)(scratch + at.votes);
    order = (uint32_t *)(void *)(scratch + at.order);
    memset(table, 0, at.table_len * sizeof *table);
    memset(votes, 0, 2 * h * sizeof *votes);
    mask = at.table_len - 1;
    for (j = 0; j < at.n; j++) { /* index: entry = the first sampled row of its content + 1 */
        const uint8_t *row = prev + prev_start + j * step * prev_stride;
        uint64_t hash = row_hash(row, row_bytes);
        size_t slot;
        hashes[j] = hash;
        for (slot = (size_t)hash & mask;; slot = (slot + 1) & mask) {
            uint32_t entry = table[slot];
            if (entry == 0) {
                table[slot] = (uint32_t)j + 1;
                counts[j] = 1;
                lasts[j] = (uint32_t)(j * step);
                break;
            }
            if (hashes[entry - 1] == hash
                && memcmp(prev + prev_start + (size_t)(entry - 1) * step * prev_stride, row, row_bytes) == 0) {
                counts[entry - 1]++;
                lasts[entry - 1] = (uint32_t)(j * step);
                break;
            }
        }
    }
    for (block = 0; block < h; block += period)
        for (i = block; i < block + take && i < h; i++) {
            const uint8_t *row = cur + cur_start + i * cur_stride;
            uint64_t hash;
            size_t slot;
            if (skip != NULL && skip[i] != 0)
                continue;
            hash = row_hash(row, row_bytes);
            for (slot = (size_t)hash & mask; table[slot] != 0; slot = (slot + 1) & mask) {
                uint32_t first = table[slot] - 1;
                if (hashes[first] != hash
                    || memcmp(prev + prev_start + (size_t)first * step * prev_stride, row, row_bytes) != 0)
                    continue;
                if (counts[first] <= max_repeats && lasts[first] != i) {
                    size_t shift_at = lasts[first] + h - i; /* shift lasts - i, offset by h */
                    if (votes[shift_at]++ == 0)
                        order[voted++] = (uint32_t)shift_at;
                }
                break;
            }
        }
    result[0] = 0;
    result[1] = 0;
    for (best = 0; best < voted; best++)
        if (votes[order[best]] > result[1]) {
            result[0] = (int64_t)order[best] - (int64_t)h;
            result[1] = votes[order[best]];
        }
    return 0;
}

/*
 * Copy the h rows of row_bytes bytes of src into dst (rows as described above), except rows i where
 * skip[i] != 0 (skip may be NULL: none; else skip_len >= h).  Returns 0, or SV_BAD_ARGS.
 */
int sv_copy_rows(uint8_t *dst, size_t dst_len, size_t dst_stride, size_t dst_start, const uint8_t *src,
                 size_t src_len, size_t src_stride, size_t src_start, size_t row_bytes, size_t h,
                 const uint8_t *skip, size_t skip_len)
{
    size_t i;
    if (dst == NULL || src == NULL || (skip != NULL && skip_len < h)
        || !rows_inside(dst_len, dst_stride, dst_start, row_bytes, h)
        || !rows_inside(src_len, src_stride, src_start, row_bytes, h))
        return SV_BAD_ARGS;
    if (skip == NULL && dst_stride == row_bytes && src_stride == row_bytes) { /* whole rows: one block */
        memmove(dst + dst_start, src + src_start, h * row_bytes);
        return 0;
    }
    for (i = 0; i < h; i++)
        if (skip == NULL || skip[i] == 0)
            memmove(dst + dst_start + i * dst_stride, src + src_start + i * src_stride, row_bytes);
    return 0;
}
