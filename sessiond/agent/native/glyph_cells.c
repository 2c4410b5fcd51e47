/*
 * glyph_cells: the two per-pixel passes of a GLYPHS frame in the agent
 * (sessiond/agent/glyph_native.py loads this with ctypes), in C.
 *
 * Why: a scrolling terminal sends nearly every frame as a whole new screen
 * of GLYPHS (sessiond/agent/glyph_encoder.py).  In Python + Pillow, telling
 * whether the screen has exactly two colours (Image.getcolors) and cutting
 * its text cells out of the capture (glyph_grid.cut_band's strided views
 * and transpose) each cost ~1.2 ms of the agent's ~5 ms per 1920x1080
 * frame, and no cheaper exact way exists without numpy, which would cost
 * every session's agent memory.  Here each is one plain loop over the
 * pixels: ~0.1-0.3 ms.
 *
 * The Python code stays the reference and the fallback (a unit test runs
 * both over random screens and requires identical results):
 *   sv_two_colours  = Image.getcolors(2) of a BGRX rectangle (colours are
 *                     the whole 4-byte pixels, as Pillow's "RGBX" view sees them);
 *   sv_cut_cells    = glyph_grid.cut_band: the cells' bytes of one band,
 *                     row of cells by row of cells, each cell unit by unit
 *                     (units of `unit` columns), each unit row by row;
 *   sv_index_cells  = numbering the cells' patterns by first appearance
 *                     (the dict the encoder's stripes were built from), so
 *                     Python handles each distinct glyph once, not every cell.
 *
 * Input is only the agent's own X server capture, never network data, but
 * every length, stride and bound is still checked before memory is read or
 * written; a call that fails a check returns SV_BAD_ARGS and touches nothing.
 * No allocation, no global state, no dependencies but libc headers.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bounds.h"

#define BYTES_PER_PIXEL 4
/* A cell is at most this many pixels a side (protocol/media.py GLYPH_MAX_SIDE). */
#define MAX_CELL_SIDE 32
/* The widest unit cut_band moves as one (band_unit: 2 for an even cell width). */
#define MAX_UNIT 2

/* Cells numbered in one call: a 32768 x 32768 screen of 4x4 cells, well within 32-bit ids. */
#define MAX_INDEXED_CELLS (1UL << 26)

/* The calling convention of the library (this file and scroll_rows.c);
 * glyph_native.ABI_VERSION must match.  2: sv_index_cells takes the byte
 * sizes of its output arrays; 3: scroll_rows.c's row comparison, shift
 * vote and row copy; 4: sv_cut_two_colours. */
#define SV_GLYPH_CELLS_ABI 4
/* The widest box sv_cut_two_colours takes (one pixel row of 0/1 flags on the stack). */
#define MAX_FLAG_ROW 8192
#define SV_MORE_COLOURS 3

/*
 * 1 if the w x h pixels at byte `start` of a buffer of `len` bytes with
 * `stride` bytes a row lie inside it (each row within one stride), else 0.
 */
static int rect_inside(size_t len, size_t stride, size_t start, size_t w, size_t h)
{
    size_t row_bytes;
    if (w == 0 || w > MAX_RECT_SIDE || mul_overflows(w, BYTES_PER_PIXEL, &row_bytes))
        return 0;
    return rows_inside(len, stride, start, row_bytes, h);
}

static uint32_t load_pixel(const uint8_t *at)
{
    uint32_t pixel;
    memcpy(&pixel, at, sizeof pixel); /* any alignment; compared, never interpreted */
    return pixel;
}

/* The first pixel (row after row) of the w x h box at START that is not FIRST; FIRST if there is none.
 * The caller has checked the box with rect_inside. */
static uint32_t other_colour(const uint8_t *buf, size_t stride, size_t start, size_t w, size_t h, uint32_t first)
{
    for (size_t y = 0; y < h; y++) {
        const uint8_t *row = buf + start + y * stride;
        for (size_t x = 0; x < w; x++) {
            uint32_t pixel = load_pixel(row + x * BYTES_PER_PIXEL);
            if (pixel != first)
                return pixel;
        }
    }
    return first;
}

/*
 * The distinct pixels of the w x h rectangle at byte `start` of `buf`:
 * returns how many (1 or 2, with each pixel's 4 bytes in colours[i*4..]
 * and its count in counts[i], in order of first appearance), or
 * SV_MORE_COLOURS as soon as a third one appears, or SV_BAD_ARGS.
 */
int sv_two_colours(const uint8_t *buf, size_t len, size_t stride, size_t start, size_t w, size_t h,
                   uint8_t colours[8], uint64_t counts[2])
{
    uint32_t first, second;
    uint64_t n_first = 0;
    size_t x, y;

    if (buf == NULL || colours == NULL || counts == NULL || !rect_inside(len, stride, start, w, h))
        return SV_BAD_ARGS;
    first = load_pixel(buf + start);
    second = other_colour(buf, stride, start, w, h, first);
    for (y = 0; y < h; y++) {
        /* Branch-free, so the compiler can vectorize: count `first`, flag a third colour. */
        const uint8_t *row = buf + start + y * stride;
        uint32_t third = 0, seen = 0;
        for (x = 0; x < w; x++) {
            uint32_t pixel = load_pixel(row + x * BYTES_PER_PIXEL);
            seen += pixel == first;
            third |= (pixel != first) & (pixel != second);
        }
        if (third)
            return SV_MORE_COLOURS;
        n_first += seen;
    }
    memcpy(colours, &first, BYTES_PER_PIXEL);
    memcpy(colours + BYTES_PER_PIXEL, &second, BYTES_PER_PIXEL);
    counts[0] = n_first;
    counts[1] = (uint64_t)w * h - n_first;
    return second == first ? 1 : 2;
}

/*
 * The cells of cell_w x cell_h pixels of the (cols * cell_w) x (rows * cell_h)
 * rectangle at byte `start` of `buf`, byte `band` (0-3) of each pixel, into
 * out (out_len must be exactly cols * rows * cell_w * cell_h): cell after
 * cell, row of cells by row of cells; in a cell, its columns in units of
 * `unit` (1, or 2 when cell_w is even), each unit's rows top to bottom, each
 * row's `unit` bytes left to right.  Returns 0, or SV_BAD_ARGS.
 */
int sv_cut_cells(const uint8_t *buf, size_t len, size_t stride, size_t start, size_t cols, size_t rows,
                 size_t cell_w, size_t cell_h, size_t band, size_t unit, uint8_t *out, size_t out_len)
{
    size_t w, h, cells, cell_bytes, total, row, col, u, y, i;
    uint8_t *at = out;

    if (buf == NULL || out == NULL || band >= BYTES_PER_PIXEL)
        return SV_BAD_ARGS;
    if (cell_w < 1 || cell_w > MAX_CELL_SIDE || cell_h < 1 || cell_h > MAX_CELL_SIDE)
        return SV_BAD_ARGS;
    if (unit < 1 || unit > MAX_UNIT || cell_w % unit != 0)
        return SV_BAD_ARGS;
    if (mul_overflows(cols, cell_w, &w) || mul_overflows(rows, cell_h, &h) || mul_overflows(cols, rows, &cells)
        || mul_overflows(cell_w, cell_h, &cell_bytes) || mul_overflows(cells, cell_bytes, &total))
        return SV_BAD_ARGS;
    if (total != out_len || !rect_inside(len, stride, start, w, h))
        return SV_BAD_ARGS;
    for (row = 0; row < rows; row++) {
        const uint8_t *cell_row = buf + start + row * cell_h * stride + band;
        for (col = 0; col < cols; col++) {
            const uint8_t *cell = cell_row + col * cell_w * BYTES_PER_PIXEL;
            for (u = 0; u < cell_w; u += unit) {
                const uint8_t *column = cell + u * BYTES_PER_PIXEL;
                for (y = 0; y < cell_h; y++) {
                    const uint8_t *pixel = column + y * stride;
                    for (i = 0; i < unit; i++)
                        *at++ = pixel[i * BYTES_PER_PIXEL];
                }
            }
        }
    }
    return 0;
}

/*
 * sv_two_colours and sv_cut_cells of the same box in one pass over its
 * pixels (the capture is read once, row after row, instead of twice): the
 * cells of cell_w x cell_h pixels of the (cols * cell_w) x (rows * cell_h)
 * box at byte `start` of `buf` go into out (out_len must be exactly
 * cols * rows * cell_w * cell_h) in sv_cut_cells' order, each pixel as 0
 * if it has the colour of the box's first pixel, else 1 (not a band's
 * byte: the caller maps 0/1 to the glyph bits once it knows which colour
 * is the background).  Returns 1 or 2 with colours and counts as
 * sv_two_colours gives them for the box, SV_MORE_COLOURS as soon as a
 * third colour appears (out then holds part of the cells), or SV_BAD_ARGS
 * (nothing written).  The box is at most MAX_FLAG_ROW pixels wide.
 */
int sv_cut_two_colours(const uint8_t *buf, size_t len, size_t stride, size_t start, size_t cols, size_t rows,
                       size_t cell_w, size_t cell_h, size_t unit, uint8_t *out, size_t out_len, uint8_t colours[8],
                       uint64_t counts[2])
{
    uint8_t flags[MAX_FLAG_ROW];
    size_t w, h, cells, cell_bytes, row_bytes, total, row, y, col, u, x;
    uint32_t first, second;
    uint64_t n_first = 0;

    if (buf == NULL || out == NULL || colours == NULL || counts == NULL)
        return SV_BAD_ARGS;
    if (cell_w < 1 || cell_w > MAX_CELL_SIDE || cell_h < 1 || cell_h > MAX_CELL_SIDE)
        return SV_BAD_ARGS;
    if (unit < 1 || unit > MAX_UNIT || cell_w % unit != 0)
        return SV_BAD_ARGS;
    if (mul_overflows(cols, cell_w, &w) || mul_overflows(rows, cell_h, &h) || mul_overflows(cols, rows, &cells)
        || mul_overflows(cell_w, cell_h, &cell_bytes) || mul_overflows(cells, cell_bytes, &total)
        || mul_overflows(cols, cell_bytes, &row_bytes))
        return SV_BAD_ARGS;
    if (w > MAX_FLAG_ROW || total != out_len || !rect_inside(len, stride, start, w, h))
        return SV_BAD_ARGS;
    first = load_pixel(buf + start);
    second = other_colour(buf, stride, start, w, h, first);
    for (row = 0; row < rows; row++) {
        uint8_t *cell_row = out + row * row_bytes;
        for (y = 0; y < cell_h; y++) {
            /* Branch-free over the pixel row (vectorized), then the flags to their cells. */
            const uint8_t *line = buf + start + (row * cell_h + y) * stride;
            uint32_t third = 0, seen = 0;
            for (x = 0; x < w; x++) {
                uint32_t pixel = load_pixel(line + x * BYTES_PER_PIXEL);
                seen += pixel == first;
                third |= (pixel != first) & (pixel != second);
                flags[x] = (uint8_t)(pixel != first);
            }
            if (third)
                return SV_MORE_COLOURS;
            n_first += seen;
            if (unit == 2) {
                for (col = 0; col < cols; col++)
                    for (u = 0; u < cell_w; u += 2)
                        memcpy(cell_row + col * cell_bytes + u * cell_h + y * 2, flags + col * cell_w + u, 2);
            } else {
                for (col = 0; col < cols; col++)
                    for (u = 0; u < cell_w; u++)
                        cell_row[col * cell_bytes + u * cell_h + y] = flags[col * cell_w + u];
            }
        }
    }
    memcpy(colours, &first, BYTES_PER_PIXEL);
    memcpy(colours + BYTES_PER_PIXEL, &second, BYTES_PER_PIXEL);
    counts[0] = n_first;
    counts[1] = (uint64_t)w * h - n_first;
    return second == first ? 1 : 2;
}

/*
 * Number the n cells of cell_bytes bytes each in `cells` (cells_len must be
 * exactly n * cell_bytes) by first appearance: ids[k] (and ids8[k], its low
 * byte) is the number of cell k's pattern, firsts[d] the first cell of
 * pattern d.  ids_size, ids8_size and firsts_size are those arrays' sizes in
 * bytes: each must hold n entries.  `table` (table_len entries, a power of
 * two >= 2 * n, zeroed here) is the scratch hash table.  Returns the number
 * of patterns, or SV_BAD_ARGS.
 */
long sv_index_cells(const uint8_t *cells, size_t cells_len, size_t cell_bytes, size_t n, uint32_t *table,
                    size_t table_len, uint32_t *ids, size_t ids_size, uint8_t *ids8, size_t ids8_size,
                    uint32_t *firsts, size_t firsts_size)
{
    size_t k, total, mask, table_bytes, id_bytes;
    uint32_t distinct = 0;

    if (cells == NULL || table == NULL || ids == NULL || ids8 == NULL || firsts == NULL)
        return SV_BAD_ARGS;
    if (cell_bytes < 1 || cell_bytes > MAX_CELL_SIDE * MAX_CELL_SIDE || n > MAX_INDEXED_CELLS)
        return SV_BAD_ARGS;
    if (mul_overflows(n, cell_bytes, &total) || total != cells_len)
        return SV_BAD_ARGS;
    if (table_len < 2 * n || table_len == 0 || (table_len & (table_len - 1)) != 0
        || mul_overflows(table_len, sizeof *table, &table_bytes))
        return SV_BAD_ARGS;
    /* Every output array holds n entries (firsts: n patterns at most). */
    if (mul_overflows(n, sizeof *ids, &id_bytes) || ids_size < id_bytes || firsts_size < id_bytes || ids8_size < n)
        return SV_BAD_ARGS;
    memset(table, 0, table_bytes);
    mask = table_len - 1;
    for (k = 0; k < n; k++) {
        const uint8_t *cell = cells + k * cell_bytes;
        uint64_t hash = 14695981039346656037ULL, word;
        size_t i, slot;
        for (i = 0; i + sizeof word <= cell_bytes; i += sizeof word) { /* 8 bytes a step, then the rest */
            memcpy(&word, cell + i, sizeof word);
            hash = (hash ^ word) * 0x9E3779B97F4A7C15ULL;
            hash ^= hash >> 29;
        }
        for (; i < cell_bytes; i++)
            hash = (hash ^ cell[i]) * 1099511628211ULL;
        for (slot = (size_t)(hash ^ (hash >> 32)) & mask;; slot = (slot + 1) & mask) {
            uint32_t entry = table[slot]; /* a pattern's first cell + 1, 0 if free */
            if (entry == 0) {
                table[slot] = (uint32_t)k + 1;
                firsts[distinct] = (uint32_t)k;
                ids[k] = distinct++;
                break;
            }
            if (memcmp(cells + (size_t)(entry - 1) * cell_bytes, cell, cell_bytes) == 0) {
                ids[k] = ids[entry - 1];
                break;
            }
        }
        ids8[k] = (uint8_t)ids[k];
    }
    return (long)distinct;
}

/* The calling convention this build has (SV_GLYPH_CELLS_ABI): the loader
 * refuses any other, so a library left from an older install is not called
 * with arguments it would misread. */
int sv_glyph_cells_abi(void)
{
    return SV_GLYPH_CELLS_ABI;
}
