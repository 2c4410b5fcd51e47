/* GLYPHS cells painted into a 4-byte-pixel framebuffer (client/glyph_paint.py).
 *
 * Why C: the cells of a region are cell_w pixels wide, so every way numpy
 * has of putting them in place moves 24-byte pieces one at a time through
 * its generic strided loops (a transposed copy of the gathered cells):
 * ~0.3 ms per half of a 180x50 xterm, the largest part of the viewer's
 * reactor thread in a scroll. Here each used glyph is drawn once in the
 * region's two colours, then each screen row of the region is its cells'
 * rows copied in place: one pass over the region's pixels.
 *
 * Every length, offset and index is checked before any memory is touched;
 * on a bad argument nothing is written and SV_PAINT_BAD_ARGS is returned.
 * The Python reference (media.glyphs.render, and the numpy path) must give
 * the same pixels: tests/unit/test_glyph_paint.py compares them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SV_PAINT_CELLS_ABI 1
#define SV_PAINT_BAD_ARGS (-1)
#define SV_PAINT_NO_MEMORY (-2)
#define PIXEL_BYTES 4u
/* Glyphs of one region at most (its indices are single bytes). */
#define MAX_GLYPHS 256u
/* A cell's side at most (media/glyphs.py GLYPH_MAX_SIDE is smaller). */
#define MAX_SIDE 256u

int sv_paint_cells_abi(void) { return SV_PAINT_CELLS_ABI; }

/* Paint BANDS x COLUMNS cells of CELL_W x CELL_H pixels into DST (DST_LEN
 * bytes, STRIDE bytes a row), the region's top-left pixel at byte START.
 * GLYPHS: GLYPH_COUNT cells of column-major bytes (0: ink 0, 1: ink 1),
 * BITS_LEN = GLYPH_COUNT * CELL_W * CELL_H. INDICES: one glyph index per
 * cell, row of cells after row (INDICES_LEN = BANDS * COLUMNS). INK: the two
 * colours as the 4 bytes of a pixel each (8 bytes). 0 when painted. */
int sv_paint_cells(uint8_t *dst, size_t dst_len, size_t stride, size_t start,
                   const uint8_t *glyphs, size_t bits_len, size_t glyph_count, size_t cell_w, size_t cell_h,
                   const uint8_t *indices, size_t indices_len, size_t bands, size_t columns,
                   const uint8_t *ink)
{
    if (!dst || !glyphs || !indices || !ink)
        return SV_PAINT_BAD_ARGS;
    if (cell_w < 1 || cell_w > MAX_SIDE || cell_h < 1 || cell_h > MAX_SIDE)
        return SV_PAINT_BAD_ARGS;
    if (glyph_count < 1 || glyph_count > MAX_GLYPHS || bits_len != glyph_count * cell_w * cell_h)
        return SV_PAINT_BAD_ARGS;
    if (bands < 1 || columns < 1 || columns > SIZE_MAX / (cell_w * PIXEL_BYTES) || bands > SIZE_MAX / columns
        || indices_len != bands * columns)
        return SV_PAINT_BAD_ARGS;
    if (bands > SIZE_MAX / cell_h)
        return SV_PAINT_BAD_ARGS;
    size_t row_bytes = columns * cell_w * PIXEL_BYTES;
    size_t rows = bands * cell_h;
    /* Every row inside DST: start + (rows - 1) * stride + row_bytes <= dst_len, rows apart by stride. */
    if (row_bytes > stride || start > dst_len || dst_len - start < row_bytes
        || rows - 1 > (dst_len - start - row_bytes) / stride)
        return SV_PAINT_BAD_ARGS;
    for (size_t i = 0; i < indices_len; i++)
        if (indices[i] >= glyph_count)
            return SV_PAINT_BAD_ARGS;
    size_t cell_pixels = cell_w * cell_h;
    for (size_t i = 0; i < bits_len; i++)
        if (glyphs[i] > 1)
            return SV_PAINT_BAD_ARGS;
    /* Each glyph drawn once, row-major: drawn[(g * cell_h + row) * cell_w + col]. */
    uint8_t *drawn = malloc(glyph_count * cell_pixels * PIXEL_BYTES);
    if (!drawn)
        return SV_PAINT_NO_MEMORY;
    for (size_t g = 0; g < glyph_count; g++)
        for (size_t col = 0; col < cell_w; col++)
            for (size_t row = 0; row < cell_h; row++) {
                uint8_t bit = glyphs[g * cell_pixels + col * cell_h + row];
                memcpy(drawn + ((g * cell_h + row) * cell_w + col) * PIXEL_BYTES, ink + bit * PIXEL_BYTES,
                       PIXEL_BYTES);
            }
    size_t piece = cell_w * PIXEL_BYTES;
    for (size_t band = 0; band < bands; band++) {
        const uint8_t *grid = indices + band * columns;
        for (size_t row = 0; row < cell_h; row++) {
            uint8_t *out = dst + start + (band * cell_h + row) * stride;
            const uint8_t *source = drawn + row * piece;
            for (size_t column = 0; column < columns; column++) {
                const uint8_t *cell = source + (size_t)grid[column] * cell_h * piece;
                uint8_t *to = out + column * piece;
                for (size_t byte = 0; byte < piece; byte += PIXEL_BYTES)
                    memcpy(to + byte, cell + byte, PIXEL_BYTES);
            }
        }
    }
    free(drawn);
    return 0;
}
