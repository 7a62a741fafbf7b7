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
   two int16, SMLAD adds both products. The sums are 16 times the reference's, exactly (no overflow:
   |16 w x| <= 2^14), and are divided by 16 before they are added to acc.
   The block of 4 rows is assembly, as GCC spills its 14 live values: per 8 inputs (loaded and widened
   once) and 4 rows, 2 + 4 + 4 x 11 + 3 = 53 instructions for 32 MACs. The end of the inputs waits on
   the stack; r0 walks the inputs, r1 the weights, r2-r5 accumulate, r6-r9 hold the widened inputs,
   r10 the mask, r11 a row's word, r12 and lr its halves.
   acc[0..3] += the 4 rows of the block times in[0 .. 8 * groups), groups >= 1. */
#define UNUSED __attribute__((unused))  /* the arguments arrive in r0-r3 (AAPCS) */
__attribute__((naked, noinline))
static void block_dot_int4_4_rows_m4(const int8_t *in UNUSED, int groups UNUSED, const uint8_t *block UNUSED,
                                     int32_t *acc UNUSED) {
    __asm__ volatile(
        "push   {r4-r11, lr}\n\t"
        "add    r1, r0, r1, lsl #3\n\t"       /* the end of the inputs */
        "push   {r1, r3}\n\t"                 /* [sp] = end, [sp, #4] = acc */
        "mov    r1, r2\n\t"
        "movs   r2, #0\n\t movs r3, #0\n\t movs r4, #0\n\t movs r5, #0\n\t"
        "mov    r10, #0xF0F0F0F0\n\t"
        "1:\n\t"
        "ldr    r12, [r0], #4\n\t"            /* x0..x3, widened: r6 = (x0, x2), r7 = (x1, x3) */
        "sxtb16 r6, r12\n\t sxtb16 r7, r12, ror #8\n\t"
        "ldr    r12, [r0], #4\n\t"            /* x4..x7: r8 = (x4, x6), r9 = (x5, x7) */
        "sxtb16 r8, r12\n\t sxtb16 r9, r12, ror #8\n\t"
        ".irp   acc, r2, r3, r4, r5\n\t"       /* each row: its 8 weights, 16 times each */
        "ldr    r11, [r1], #4\n\t"
        "and    r12, r10, r11, lsl #4\n\t"    /* w0..w3 */
        "sxtb16 lr, r12\n\t smlad \\acc, lr, r6, \\acc\n\t"
        "sxtb16 lr, r12, ror #8\n\t smlad \\acc, lr, r7, \\acc\n\t"
        "and    r11, r11, r10\n\t"            /* w4..w7 */
        "sxtb16 lr, r11\n\t smlad \\acc, lr, r8, \\acc\n\t"
        "sxtb16 lr, r11, ror #8\n\t smlad \\acc, lr, r9, \\acc\n\t"
        ".endr\n\t"
        "ldr    r12, [sp]\n\t"
        "cmp    r0, r12\n\t"
        "bne    1b\n\t"
        "pop    {r1, r12}\n\t"                /* r12 = acc */
        ".irp   acc, r2, r3, r4, r5\n\t"       /* acc[r] += sum / 16 */
        "ldr    r1, [r12]\n\t add r1, r1, \\acc, asr #4\n\t str r1, [r12], #4\n\t"
        ".endr\n\t"
        "pop    {r4-r11, pc}\n\t");
}
#undef UNUSED

static inline int32_t int4_sxtb16_ror8(int32_t x) {  /* bytes 1 and 3 of x as two int16 */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static void block_dot_int4(const int8_t *in, int depth, const uint8_t *block, int rows, int32_t *acc) {
    int groups = depth / 8;
    const uint8_t *w = block + groups * 4 * rows;
    if (rows == 4) {
        if (groups > 0) block_dot_int4_4_rows_m4(in, groups, block, acc);
    } else {  /* the last block's 1-3 rows, one at a time, in C */
        for (int r = 0; r < rows; ++r) {
            const uint8_t *k = block + 4 * r;
            const int8_t *x = in;
            int32_t a = 0;
            for (int g = 0; g < groups; ++g, x += 8, k += 4 * rows) {
                int32_t x0, x1, kr;
                memcpy(&x0, x, 4), memcpy(&x1, x + 4, 4), memcpy(&kr, k, 4);
                int32_t lo = (int32_t)(((uint32_t)kr << 4) & 0xF0F0F0F0u), hi = (int32_t)((uint32_t)kr & 0xF0F0F0F0u);
                a = __smlad(__sxtb16(lo), __sxtb16(x0), a);
                a = __smlad(int4_sxtb16_ror8(lo), int4_sxtb16_ror8(x0), a);
                a = __smlad(__sxtb16(hi), __sxtb16(x1), a);
                a = __smlad(int4_sxtb16_ror8(hi), int4_sxtb16_ror8(x1), a);
            }
            acc[r] += a >> 4;
        }
    }
    block_dot_int4_reference(in + 8 * groups, depth & 7, w, rows, acc);  /* the last 1-7 inputs, if any */
}
#elif defined(__AVR__) && defined(__GNUC__) && TINYDIGITS_INT4_WEIGHTS_SYMMETRIC && !TINYDIGITS_NAIVE_KERNELS
/* 8-bit AVR: per group of 8 inputs (loaded once into r16-r23) the block's 16 bytes of weights stream
   from flash in the order they are stored (LPM Z+). A byte's nibbles become 16 times the weights in
   one register each (MOV, SWAP, ANDI / ANDI), and MULS gives 16 w x in r1:r0. The weights are in
   [-7, 7] (TINYDIGITS_INT4_WEIGHTS_SYMMETRIC), so the two products of a byte, p + q, lie in [-28672,
   28672] and p + q + 0x8000 is an unsigned 16-bit number, added to a 24-bit accumulator without sign
   extension: 18 cycles per byte, 9 per MAC (int8: 9.75). Per row and group that adds 4 x 0x8000; the
   C around it takes it off, sign-extends the 24 bits and divides by 16 (exact). Accumulators: r2-r13;
   r14 holds zero, r15 the groups left; Y walks the inputs, Z the weights, X holds a product.
   raw[0..3] = the 4 rows' biased 24-bit sums over in[0 .. 8 * groups), 1 <= groups <= 63. */
#define UNUSED __attribute__((unused))  /* the arguments arrive in r24, r22, r20, r18 (avr-gcc ABI) */
#define BYTE(acc0, acc1, acc2, x, y)                                                                  \
        "lpm  r24, Z+\n\t mov r25, r24\n\t swap r25\n\t andi r25, 0xF0\n\t" /* r25 = 16 w_j */ \
        "muls r25, " x "\n\t movw r26, r0\n\t"                                /* X = 16 w_j x_j */  \
        "andi r24, 0xF0\n\t muls r24, " y "\n\t"                              /* r1:r0 = 16 w_j+4 x_j+4 */ \
        "subi r27, 0x80\n\t add r0, r26\n\t adc r1, r27\n\t"                /* + 0x8000 */        \
        "add  " acc0 ", r0\n\t adc " acc1 ", r1\n\t adc " acc2 ", r14\n\t"
#define ROW(acc0, acc1, acc2) BYTE(acc0, acc1, acc2, "r16", "r20") BYTE(acc0, acc1, acc2, "r17", "r21") \
                              BYTE(acc0, acc1, acc2, "r18", "r22") BYTE(acc0, acc1, acc2, "r19", "r23")
#define STORE(acc0, acc1, acc2) "st X+, " acc0 "\n\t st X+, " acc1 "\n\t st X+, " acc2 "\n\t st X+, r14\n\t"
__attribute__((naked, noinline))
static void block_dot_int4_4_rows_avr(const int8_t *in UNUSED, uint8_t groups UNUSED, const uint8_t *block UNUSED,
                                      uint32_t *raw UNUSED) {
    __asm__ volatile(
        "push r2\n\t push r3\n\t push r4\n\t push r5\n\t push r6\n\t push r7\n\t push r8\n\t push r9\n\t"
        "push r10\n\t push r11\n\t push r12\n\t push r13\n\t push r14\n\t push r15\n\t push r16\n\t push r17\n\t"
        "push r28\n\t push r29\n\t"
        "push r18\n\t push r19\n\t"       /* raw, for the end */
        "movw r30, r20\n\t"                  /* Z = the block's weights, in flash */
        "movw r28, r24\n\t"                  /* Y = in */
        "mov  r15, r22\n\t"                  /* groups left */
        "clr  r14\n\t"
        "clr  r2\n\t clr r3\n\t clr r4\n\t clr r5\n\t clr r6\n\t clr r7\n\t"
        "clr  r8\n\t clr r9\n\t clr r10\n\t clr r11\n\t clr r12\n\t clr r13\n\t"
        "1:\n\t"
        "ld   r16, Y+\n\t ld r17, Y+\n\t ld r18, Y+\n\t ld r19, Y+\n\t"
        "ld   r20, Y+\n\t ld r21, Y+\n\t ld r22, Y+\n\t ld r23, Y+\n\t"
        ROW("r2", "r3", "r4") ROW("r5", "r6", "r7") ROW("r8", "r9", "r10") ROW("r11", "r12", "r13")
        "dec  r15\n\t"
        "breq 2f\n\t"
        "rjmp 1b\n\t"                        /* the loop is too long for BRNE's reach */
        "2:\n\t"
        "pop  r27\n\t pop r26\n\t"         /* X = raw */
        STORE("r2", "r3", "r4") STORE("r5", "r6", "r7") STORE("r8", "r9", "r10") STORE("r11", "r12", "r13")
        "clr  r1\n\t"                        /* avr-gcc's zero register */
        "pop  r29\n\t pop r28\n\t"
        "pop  r17\n\t pop r16\n\t pop r15\n\t pop r14\n\t pop r13\n\t pop r12\n\t pop r11\n\t pop r10\n\t"
        "pop  r9\n\t pop r8\n\t pop r7\n\t pop r6\n\t pop r5\n\t pop r4\n\t pop r3\n\t pop r2\n\t"
        "ret\n\t");
}
#undef STORE
#undef ROW
#undef BYTE
#undef UNUSED

static void block_dot_int4(const int8_t *in, int depth, const uint8_t *block, int rows, int32_t *acc) {
    int groups = depth / 8;
    if (rows == 4) {
        while (groups > 0) {  /* at most 63 groups (504 inputs) per call: the sums must fit 24 bits */
            uint8_t n = (uint8_t)(groups < 63 ? groups : 63);
            uint32_t raw[4];
            block_dot_int4_4_rows_avr(in, n, block, raw);
            for (int r = 0; r < 4; ++r) {
                int32_t sum = (int32_t)((raw[r] - ((uint32_t)n << 17)) & UINT32_C(0xFFFFFF));
                if (sum >= INT32_C(0x800000)) sum -= INT32_C(0x1000000);  /* 24-bit two's complement */
                acc[r] += sum / 16;                                       /* exact: 16 w x each */
            }
            in += 8 * n, block += 16 * n, depth -= 8 * n, groups -= n;
        }
    }
    block_dot_int4_reference(in, depth, block, rows, acc);
}
#else
#define block_dot_int4 block_dot_int4_reference
#endif
