/* ---- dot products of int8 rows with int4 weights: FULLY_CONNECTED and CONV_2D with 4-bit filters ----
   Weights as the generator laid them out (codegen.kernel_layout_int4), packed: each row padded with
   zeros to a multiple of 8 weights; every 8 weights w0..w7 of a row are 4 bytes, byte j holding w_j in
   its low nibble and w_{j+4} in its high nibble (two's complement); rows in blocks of 4 (the last may
   have fewer) taking turns 4 bytes at a time. So the 8 weights of row r at depth d..d+7 (d a multiple
   of 8) are at block + d / 2 * rows + 4 * r, and the block of rows first.. starts at
   weights + first * padded_depth / 2. */
#ifndef read_u8
#ifdef __AVR__
#define read_u8(p) ((uint8_t)pgm_read_byte(p))
#else
#define read_u8(p) (*(p))
#endif
#endif
/* A nibble as its signed value, -8..7, with no implementation-defined shift or conversion. */
#define LOW_NIBBLE(b) ((int)(((b) & 0x0F) ^ 0x08) - 8)
#define HIGH_NIBBLE(b) ((int)((((b) >> 4) & 0x0F) ^ 0x08) - 8)

/* Portable reference: acc[r] += w[r][d] * in[d] over the block's rows, nibble by nibble. Every product
   fits a 16-bit int (|w x| <= 8 * 128); the sums are int32_t. */
static void block_dot_int4_reference(const int8_t *in, int depth, const uint8_t *block, int rows, int32_t *acc) {
    int groups = depth / 8, rest = depth % 8;
    for (int r = 0; r < rows; ++r) {
        const uint8_t *w = block + 4 * r;
        const int8_t *x = in;
        int32_t sum = 0;
        for (int g = 0; g < groups; ++g, x += 8, w += 4 * rows) {  /* row r's 8 weights, then the other rows' */
            for (int j = 0; j < 4; ++j) {
                uint8_t b = read_u8(&w[j]);
                sum += LOW_NIBBLE(b) * x[j];
                sum += HIGH_NIBBLE(b) * x[j + 4];
            }
        }
        for (int i = 0; i < rest; ++i) {  /* the zero-padded last group: w_i is in byte i % 4 */
            uint8_t b = read_u8(&w[i % 4]);
            sum += (i < 4 ? LOW_NIBBLE(b) : HIGH_NIBBLE(b)) * x[i];
        }
        acc[r] += sum;
    }
}

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !TINYDIGITS_NAIVE_KERNELS
#include <arm_acle.h>
#include <string.h>
/* Cortex-M4/M7/M33 with the DSP extension. A word of 8 weights becomes two words of 4 int8, each 16
   times its weights: (k << 4) & 0xF0F0F0F0 holds w0..w3 in its bytes' high nibbles, k & 0xF0F0F0F0
   w4..w7. Then as for int8 weights (dot.c): SXTB16 widens bytes 0 and 2 (with ROR #8, 1 and 3) into
   two int16, SMLAD adds both products. The 8 inputs are loaded and widened once for the block's 4
   rows. The sums are 16 times the reference's, exactly (no overflow: |16 w x| <= 2^14), and are
   divided by 16 before they are added to acc. */
static inline int32_t int4_sxtb16_ror8(int32_t x) {  /* bytes 1 and 3 of x as two int16 */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

#define INT4_MASK 0xF0F0F0F0u
/* acc += 16 x (the 8 weights of word k times the 8 inputs, widened as e0/o0 (inputs 0-3), e1/o1 (4-7)) */
#define MAC_8(acc, k, mask) do {                                                             \
        int32_t lo_ = (int32_t)(((uint32_t)(k) << 4) & (mask)), hi_ = (int32_t)((uint32_t)(k) & (mask)); \
        acc = __smlad(__sxtb16(lo_), e0, acc);                                               \
        acc = __smlad(int4_sxtb16_ror8(lo_), o0, acc);                                       \
        acc = __smlad(__sxtb16(hi_), e1, acc);                                               \
        acc = __smlad(int4_sxtb16_ror8(hi_), o1, acc);                                       \
    } while (0)

__attribute__((noinline))  /* its own registers: inlined, GCC spills the accumulators */
static void block_dot_int4(const int8_t *in, int depth, const uint8_t *block, int rows, int32_t *acc) {
    const int8_t *x = in, *end = in + (depth & ~7);
    const uint8_t *w = block;
    uint32_t mask = INT4_MASK;
    __asm__("" : "+r"(mask));  /* in a register, once */
    if (rows == 4) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (; x != end; x += 8, w += 16) {
            int32_t x0, x1, k0, k1, k2, k3;
            memcpy(&x0, x, 4), memcpy(&x1, x + 4, 4);  /* unaligned loads: fine on these cores */
            int32_t e0 = __sxtb16(x0), o0 = int4_sxtb16_ror8(x0), e1 = __sxtb16(x1), o1 = int4_sxtb16_ror8(x1);
            memcpy(&k0, w, 4), memcpy(&k1, w + 4, 4);
            MAC_8(a0, k0, mask);
            MAC_8(a1, k1, mask);
            memcpy(&k2, w + 8, 4), memcpy(&k3, w + 12, 4);
            MAC_8(a2, k2, mask);
            MAC_8(a3, k3, mask);
        }
        acc[0] += a0 >> 4, acc[1] += a1 >> 4, acc[2] += a2 >> 4, acc[3] += a3 >> 4;
    } else {  /* the last block's 1-3 rows, one at a time */
        for (int r = 0; r < rows; ++r) {
            const uint8_t *k = block + 4 * r;
            int32_t a = 0;
            for (x = in; x != end; x += 8, k += 4 * rows) {
                int32_t x0, x1, kr;
                memcpy(&x0, x, 4), memcpy(&x1, x + 4, 4), memcpy(&kr, k, 4);
                int32_t e0 = __sxtb16(x0), o0 = int4_sxtb16_ror8(x0), e1 = __sxtb16(x1), o1 = int4_sxtb16_ror8(x1);
                MAC_8(a, kr, mask);
            }
            acc[r] += a >> 4;
        }
        w = block + (depth & ~7) / 2 * rows;
    }
    block_dot_int4_reference(x, depth & 7, w, rows, acc);  /* the last 1-7 inputs, if any */
}
#undef MAC_8
#else
#define block_dot_int4 block_dot_int4_reference
#endif
