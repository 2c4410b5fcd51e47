/*
 * bounds.h: the overflow-safe size arithmetic and the "rows inside the
 * buffer" check every entry point of the agent's native library
 * (glyph_cells.c, scroll_rows.c) runs before it touches memory.
 *
 * Why one header: both files take buffers as (pointer, length, stride,
 * start) and must refuse the same bad bounds the same way; one copy of the
 * check is one thing to get right.
 */
#ifndef SV_BOUNDS_H
#define SV_BOUNDS_H

#include <stddef.h>
#include <stdint.h>

#define SV_BAD_ARGS (-1)
/* X11 coordinates are 16-bit: no rectangle is wider or taller (keeps per-row counts in 32 bits). */
#define MAX_RECT_SIDE 32768

/* 1 if a + b overflows (then *sum is not set), else 0 and *sum = a + b. */
static inline int add_overflows(size_t a, size_t b, size_t *sum)
{
    if (a > SIZE_MAX - b)
        return 1;
    *sum = a + b;
    return 0;
}

static inline int mul_overflows(size_t a, size_t b, size_t *product)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *product = a * b;
    return 0;
}

/*
 * 1 if h rows of row_bytes bytes, `stride` bytes apart from byte `start`,
 * lie inside a buffer of `len` bytes (each row within one stride), else 0.
 */
static inline int rows_inside(size_t len, size_t stride, size_t start, size_t row_bytes, size_t h)
{
    size_t last_row, end;
    if (row_bytes == 0 || h == 0 || stride == 0 || h > MAX_RECT_SIDE || row_bytes > stride)
        return 0;
    if (start % stride + row_bytes > stride) /* a row would run into the next one */
        return 0;
    if (mul_overflows(h - 1, stride, &last_row) || add_overflows(start, last_row, &end)
        || add_overflows(end, row_bytes, &end))
        return 0;
    return end <= len;
}

#endif
