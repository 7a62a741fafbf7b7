/* ---- integer kernels: TFLite's reference int8 arithmetic, operation for operation ----------- */
/* Portable to 8-, 16- and 32-bit targets: every constant and intermediate that needs 32 bits is
   int32_t or written INT32_C/UINT32_C, since `int` may be 16 bits (AVR). */

/* Constant tables live in flash. On AVR (Harvard: flash is not in the data address space) that
   takes PROGMEM and explicit reads, else avr-gcc copies every const table into SRAM at start-up;
   elsewhere const data already stays in flash and a read is a plain load. */
#ifdef __AVR__
#include <avr/pgmspace.h>
#define TINYDIGITS_FLASH PROGMEM
#define read_i8(p) ((int8_t)pgm_read_byte(p))
#define read_i32(p) ((int32_t)pgm_read_dword(p))
#else
#define TINYDIGITS_FLASH
#define read_i8(p) (*(p))
#define read_i32(p) (*(p))
#endif
/* Cortex-M0: the softmax reads its exponentials from a table the generator computed (~2,000
   instructions per inference fewer: each costs ~300 there, with no 32 x 32 -> 64-bit multiply).
   -DTINYDIGITS_SOFTMAX_EXP_TABLE=0 computes them instead (to compare). */
#ifndef TINYDIGITS_SOFTMAX_EXP_TABLE
#if defined(__ARM_ARCH_6M__) && !TINYDIGITS_NAIVE_KERNELS && !TINYDIGITS_MATCH_LITERT
#define TINYDIGITS_SOFTMAX_EXP_TABLE 1
#else
#define TINYDIGITS_SOFTMAX_EXP_TABLE 0
#endif
#endif
#if TINYDIGITS_MATCH_LITERT
#ifdef __AVR__
#define read_f32(p) pgm_read_float(p)
#else
#define read_f32(p) (*(p))
#endif
#endif

#if defined(__AVR__) && defined(__GNUC__) && !TINYDIGITS_NAIVE_KERNELS
/* (a * b + 2^30) >> 31 on AVR in ~150 cycles; avr-gcc's 64-bit product and shift take ~330. The
   unsigned 64-bit product in r29:r28:r17:r16:r31:r30:r27:r26 is the 4 byte products on the diagonal
   (MOVW into place) plus the 12 others (added, carry carried to the top); then a signed operand's
   other operand is taken off the top half; then + 2^30, and bits 31..62 are the result. */
#define UNUSED __attribute__((unused))  /* a arrives in r25:r22, b in r21:r18; the result goes in r25:r22 */
#define CROSS(ai, bj, k0, k1, carry) "mul " ai ", " bj "\n\t add " k0 ", r0\n\t adc " k1 ", r1\n\t" carry
#define C5 "adc r31, r15\n\t adc r16, r15\n\t adc r17, r15\n\t adc r28, r15\n\t adc r29, r15\n\t"
#define C4 "adc r16, r15\n\t adc r17, r15\n\t adc r28, r15\n\t adc r29, r15\n\t"
#define C3 "adc r17, r15\n\t adc r28, r15\n\t adc r29, r15\n\t"
#define C2 "adc r28, r15\n\t adc r29, r15\n\t"
#define C1 "adc r29, r15\n\t"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wreturn-type"  /* the asm returns it, in r25:r22 */
__attribute__((naked, noinline))
static int32_t mul_round_shift31_avr(int32_t a UNUSED, int32_t b UNUSED) {
    __asm__ volatile(
        "push r15\n\t push r16\n\t push r17\n\t push r28\n\t push r29\n\t"
        "clr  r15\n\t"
        "mul  r22, r18\n\t movw r26, r0\n\t"   /* a0 b0 at byte 0 */
        "mul  r23, r19\n\t movw r30, r0\n\t"   /* a1 b1 at byte 2 */
        "mul  r24, r20\n\t movw r16, r0\n\t"   /* a2 b2 at byte 4 */
        "mul  r25, r21\n\t movw r28, r0\n\t"   /* a3 b3 at byte 6 */
        CROSS("r22", "r19", "r27", "r30", C5) CROSS("r23", "r18", "r27", "r30", C5)   /* byte 1 */
        CROSS("r22", "r20", "r30", "r31", C4) CROSS("r24", "r18", "r30", "r31", C4)   /* byte 2 */
        CROSS("r22", "r21", "r31", "r16", C3) CROSS("r25", "r18", "r31", "r16", C3)   /* byte 3 */
        CROSS("r23", "r20", "r31", "r16", C3) CROSS("r24", "r19", "r31", "r16", C3)
        CROSS("r23", "r21", "r16", "r17", C2) CROSS("r25", "r19", "r16", "r17", C2)   /* byte 4 */
        CROSS("r24", "r21", "r17", "r28", C1) CROSS("r25", "r20", "r17", "r28", C1)   /* byte 5 */
        "sbrs r25, 7\n\t rjmp 1f\n\t"          /* a < 0: take b off the top half */
        "sub  r16, r18\n\t sbc r17, r19\n\t sbc r28, r20\n\t sbc r29, r21\n\t"
        "1:\n\t sbrs r21, 7\n\t rjmp 2f\n\t"   /* b < 0: take a off */
        "sub  r16, r22\n\t sbc r17, r23\n\t sbc r28, r24\n\t sbc r29, r25\n\t"
        "2:\n\t ldi r18, 0x40\n\t"             /* + 2^30: bit 6 of byte 3 */
        "add  r31, r18\n\t adc r16, r15\n\t adc r17, r15\n\t adc r28, r15\n\t adc r29, r15\n\t"
        "lsl  r31\n\t rol r16\n\t rol r17\n\t rol r28\n\t rol r29\n\t"   /* bits 31..62 */
        "movw r22, r16\n\t movw r24, r28\n\t"
        "clr  r1\n\t"
        "pop  r29\n\t pop r28\n\t pop r17\n\t pop r16\n\t pop r15\n\t"
        "ret\n\t");
}
#pragma GCC diagnostic pop
#undef CROSS
#undef C1
#undef C2
#undef C3
#undef C4
#undef C5
#undef UNUSED
#endif

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b * 2) >> 32, rounded, saturated. gemmlowp adds
   2^30 (or 1 - 2^30 when ab < 0) and divides by 2^31 rounding toward zero; that is exactly adding
   2^30 and shifting right by 31 (rounding down), which is one SMLAL and a shift on a Cortex-M. */
static inline int32_t srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
#if defined(__AVR__) && defined(__GNUC__) && !TINYDIGITS_NAIVE_KERNELS
    return mul_round_shift31_avr(a, b);
#elif defined(__ARM_ARCH_6M__) && !TINYDIGITS_NAIVE_KERNELS
    /* Cortex-M0: no 32 x 32 -> 64-bit multiply, and the library's 64 x 64 costs ~40 instructions;
       four 16 x 16-bit products (one MULS each) and the carries cost ~25. */
    int32_t ah = a >> 16, bh = b >> 16, al = a & 0xFFFF, bl = b & 0xFFFF;
    int32_t m1 = ah * bl, m2 = bh * al;  /* each fits: |ah| <= 2^15, bl < 2^16 */
    uint32_t lo = (uint32_t)al * (uint32_t)bl, t;
    int32_t hi = ah * bh + (m1 >> 16) + (m2 >> 16);  /* the 64-bit a * b is hi * 2^32 + lo */
    t = (uint32_t)m1 << 16, lo += t, hi += lo < t;
    t = (uint32_t)m2 << 16, lo += t, hi += lo < t;
    t = lo + (UINT32_C(1) << 30), hi += t < lo;      /* + 2^30 */
    return (int32_t)(((uint32_t)hi << 1) | (t >> 31));  /* bits 31..62 */
#else
    return (int32_t)(((int64_t)a * (int64_t)b + (INT32_C(1) << 30)) >> 31);
#endif
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent (0 <= exponent <= 31), rounded half away from zero. */
static inline int32_t rdbpot(int32_t x, int exponent) {
    int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

#if TINYDIGITS_MATCH_LITERT
/* LiteRT's CPU kernels (TFLITE_SINGLE_ROUNDING): x * multiplier * 2^shift with one rounding, in 64 bits. */
static int32_t requantize(int32_t x, int32_t multiplier, int shift) {
    int total = 31 - shift;
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << (total - 1))) >> total);
}
#else
/* TFLite MultiplyByQuantizedMultiplier, rounding twice as the reference kernels and TFLM do:
   x * multiplier * 2^shift. */
static int32_t requantize(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return rdbpot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}
#endif

#if TINYDIGITS_USES_SOFTMAX && !TINYDIGITS_MATCH_LITERT
/* gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent: saturating x << exponent. */
static int32_t sat_shl(int32_t x, int exponent) {
    int32_t threshold = (int32_t)((UINT32_C(1) << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

#endif

#if TINYDIGITS_USES_FULLY_CONNECTED
/* Weights as the generator laid them out (codegen.kernel_layout): rows in blocks of 4 (the last may
   have fewer), each row padded with zeros to a multiple of 4 bytes; inside a block the rows take
   turns 4 bytes at a time. So the 4 bytes of row r at depth d..d+3 (d a multiple of 4) are at
   block + d * rows + 4 * r, and the block of rows first.. starts at weights + first * padded_depth. */

/* Portable reference: acc[r] += w[r][d] * in[d] over the block's rows, one MAC at a time. Written
   so that -O3 vectorizes it on a PC and -Os keeps it at about 4 instructions per MAC on a Cortex-M. */
static void block_dot_reference(const int8_t *in, int depth, const int8_t *block, int rows, int32_t *acc) {
    const int8_t *end = in + (depth - depth % 4);
    for (int r = 0; r < rows; ++r) {
        const int8_t *w = block + 4 * r, *x = in;
        int32_t sum = 0;
        for (; x != end; x += 4, w += 4 * rows) {  /* row r's 4 weights, then the block's other rows' */
            sum += read_i8(&w[0]) * x[0];  /* int8 * int8 fits an int, even a 16-bit one */
            sum += read_i8(&w[1]) * x[1];
            sum += read_i8(&w[2]) * x[2];
            sum += read_i8(&w[3]) * x[3];
        }
        for (int i = 0; i < depth % 4; ++i) sum += read_i8(&w[i]) * x[i];  /* the zero-padded last group */
        acc[r] += sum;
    }
}

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !TINYDIGITS_NAIVE_KERNELS
#include <arm_acle.h>
#include <string.h>
/* Cortex-M4/M7/M33 with the DSP extension. SXTB16 widens bytes 0 and 2 of a word into two int16
   (with ROR #8, bytes 1 and 3); SMLAD adds both products of two int16 pairs to an int32. Four input
   bytes are loaded and widened once for the block's 4 rows; per row, 4 weights are one load, two
   widenings and two SMLAD: 22 instructions per 16 MACs. The int32 sums are the reference's, in
   another order (exact: no overflow, as in TFLM). Two one-instruction asm helpers: GCC's arm_acle.h
   has no rotated SXTB16, and GCC at -Os loads the 4 weights of a row with 4 LDR instead of 2 LDRD. */
static inline int32_t sxtb16_ror8(int32_t x) {  /* bytes 1 and 3 of x as two int16 */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* k0, k1 = the next 8 bytes at w (word-aligned), w += 8 */
#define LOAD_2_WORDS(k0, k1, w) __asm__("ldrd %0, %1, [%2], #8" : "=r"(k0), "=r"(k1), "+r"(w) : : "memory")
/* acc += the 4 int8 of word k times the 4 input int8 widened as x_odd, x_even */
#define MAC_4(acc, k, x_odd, x_even) (acc = __smlad(__sxtb16(k), x_even, __smlad(sxtb16_ror8(k), x_odd, acc)))
/* 4 inputs (one unaligned 32-bit load, fine on these cores) times 4 rows of 4 weights */
#define MAC_4x4 do {                                                                  \
        int32_t x, k0, k1, k2, k3;                                                     \
        memcpy(&x, in, 4), in += 4;                                                    \
        int32_t x_odd = sxtb16_ror8(x), x_even = __sxtb16(x);                          \
        LOAD_2_WORDS(k0, k1, w); MAC_4(a0, k0, x_odd, x_even); MAC_4(a1, k1, x_odd, x_even); \
        LOAD_2_WORDS(k2, k3, w); MAC_4(a2, k2, x_odd, x_even); MAC_4(a3, k3, x_odd, x_even); \
    } while (0)

__attribute__((noinline))  /* its own registers: inlined, GCC spills the accumulators */
static void block_dot(const int8_t *in, int depth, const int8_t *block, int rows, int32_t *acc) {
    const int8_t *w = block, *end = in + (depth & ~3);
    if (rows == 4) {
        int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        if (in != end) switch ((depth >> 2) & 3) {  /* Duff's device: 16 inputs per pass, any count of 4 */
            case 0: do { MAC_4x4;  /* fall through */
            case 3:      MAC_4x4;  /* fall through */
            case 2:      MAC_4x4;  /* fall through */
            case 1:      MAC_4x4;
                    } while (in != end);
        }
        acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
    } else {  /* the last block's 1-3 rows, one at a time */
        const int8_t *start = in;
        for (int r = 0; r < rows; ++r) {
            const int8_t *k = block + 4 * r;
            int32_t a = acc[r];
            for (in = start; in != end; in += 4, k += 4 * rows) {
                int32_t x, kr;
                memcpy(&x, in, 4), memcpy(&kr, k, 4);
                MAC_4(a, kr, sxtb16_ror8(x), __sxtb16(x));
            }
            acc[r] = a;
        }
        w = block + (depth & ~3) * rows;
    }
    block_dot_reference(in, depth & 3, w, rows, acc);  /* the last 1-3 inputs, if any */
}
#undef MAC_4x4
#undef MAC_4
#undef LOAD_2_WORDS
#elif defined(__ARM_ARCH_6M__) && defined(__GNUC__) && !TINYDIGITS_NAIVE_KERNELS
/* Cortex-M0/M0+ (ARMv6-M): no DSP, no multiply-accumulate, LDRSB only with a register offset, and
   GCC spills 4 accumulators. So the 4-row loop is assembly: per input byte, one LDRSB of the input
   and, per row, LDRSB + MULS + ADD into an accumulator kept in a high register: 58 instructions per
   16 MACs. One pointer p walks row 0's weights; row r's are at p + 4r, the input at p + e.
   acc[0..3] += the 4 rows of the block times in[0 .. 4 * groups), groups >= 1. */
#define UNUSED __attribute__((unused))  /* the arguments arrive in r0-r3 (AAPCS) */
#define GROUP                                                                              \
        ".irp  step, 1, 1, 1, 13\n\t"     /* one input byte x (r6) times 4 rows (product in r7) */ \
        "ldrsb r6, [r0, r1]\n\t"                                                           \
        "ldrsb r7, [r0, r2]\n\t muls r7, r6, r7\n\t add r8, r7\n\t"                        \
        "ldrsb r7, [r0, r3]\n\t muls r7, r6, r7\n\t add r9, r7\n\t"                        \
        "ldrsb r7, [r0, r4]\n\t muls r7, r6, r7\n\t add r10, r7\n\t"                       \
        "ldrsb r7, [r0, r5]\n\t muls r7, r6, r7\n\t add r11, r7\n\t"                       \
        "adds  r0, #\\step\n\t"           /* the next byte; after the 4th, the next 16 */   \
        ".endr\n\t"                                                                        \
        "subs  r1, #12\n\t"               /* the next 4 inputs: e = in - p shrinks by 12 */
__attribute__((naked, noinline))
static void block_dot_4_rows_m0(const int8_t *in UNUSED, int groups UNUSED, const int8_t *block UNUSED, int32_t *acc UNUSED) {
    __asm__ volatile(
        ".syntax unified\n\t"            /* GCC reads inline Thumb-1 asm in the old divided syntax */
        "push  {r4-r7, lr}\n\t"
        "mov   r4, r8\n\t mov r5, r9\n\t mov r6, r10\n\t mov r7, r11\n\t"
        "push  {r3-r7}\n\t"                /* acc, and the caller's r8-r11 */
        "ldr   r4, [r3, #0]\n\t mov r8, r4\n\t"
        "ldr   r4, [r3, #4]\n\t mov r9, r4\n\t"
        "ldr   r4, [r3, #8]\n\t mov r10, r4\n\t"
        "ldr   r4, [r3, #12]\n\t mov r11, r4\n\t"
        "lsls  r7, r1, #31\n\t"            /* r7 != 0: an odd number of groups */
        "lsls  r1, r1, #4\n\t"
        "adds  r1, r2, r1\n\t mov r12, r1\n\t" /* r12: end of the block's weights */
        "subs  r1, r0, r2\n\t"             /* r1 = e: the input's address minus p's */
        "mov   r0, r2\n\t"                 /* r0 = p */
        "movs  r2, #0\n\t movs r3, #4\n\t movs r4, #8\n\t movs r5, #12\n\t"
        "cmp   r7, #0\n\t"
        "bne   2f\n\t"                     /* two groups per pass: enter at the second if odd */
        "1:\n\t" GROUP
        "2:\n\t" GROUP
        "cmp   r0, r12\n\t"
        "bne   1b\n\t"
        "pop   {r3}\n\t"
        "mov   r4, r8\n\t str r4, [r3, #0]\n\t"
        "mov   r4, r9\n\t str r4, [r3, #4]\n\t"
        "mov   r4, r10\n\t str r4, [r3, #8]\n\t"
        "mov   r4, r11\n\t str r4, [r3, #12]\n\t"
        "pop   {r4-r7}\n\t"
        "mov   r8, r4\n\t mov r9, r5\n\t mov r10, r6\n\t mov r11, r7\n\t"
        "pop   {r4-r7, pc}\n\t"
        ".syntax divided\n\t");
}
#undef GROUP
#undef UNUSED

static void block_dot(const int8_t *in, int depth, const int8_t *block, int rows, int32_t *acc) {
    int groups = depth / 4;
    if (rows == 4 && groups > 0) {
        block_dot_4_rows_m0(in, groups, block, acc);
        block_dot_reference(in + 4 * groups, depth % 4, block + 16 * groups, rows, acc);
    } else {
        block_dot_reference(in, depth, block, rows, acc);
    }
}
#elif defined(__AVR__) && defined(__GNUC__) && TINYDIGITS_WEIGHTS_SYMMETRIC && !TINYDIGITS_NAIVE_KERNELS
/* 8-bit AVR: avr-gcc's C takes ~30 cycles per MAC; this loop takes 9.75. Per group of 4 inputs it
   loads them into r18-r21, then streams the block's 16 weights from flash in the order they are
   stored (LPM Z+, 3 cycles), two at a time: MULS (2) gives an int16 product in r1:r0. The weights
   are in [-127, 127] (TFLite's int8 weights are symmetric), so two products p + q lie in
   [-32512, 32512] and p + q + 0x8000 in [256, 65280]: added to a 32-bit accumulator as an
   unsigned 16-bit number, with no sign extension. The extra 0x8000 per pair, 0x10000 per row and
   group, is taken off before the loop. Accumulators: r2-r17; r28 holds zero, r29 the groups left.
   acc[0..3] += the 4 rows of the block (in flash) times in[0 .. 4 * groups), 1 <= groups <= 255. */
#define UNUSED __attribute__((unused))  /* the arguments arrive in r24, r22, r20, r18 (avr-gcc ABI) */
#define MAC_2(acc0, acc1, acc2, acc3, x, y)                                                      \
        "lpm  r22, Z+\n\t muls r22, " x "\n\t movw r24, r0\n\t"   /* r25:r24 = w * x */           \
        "lpm  r22, Z+\n\t muls r22, " y "\n\t"                    /* r1:r0 = w' * y */            \
        "add  r0, r24\n\t adc r1, r25\n\t add r1, r23\n\t"        /* + w * x + 0x8000 */          \
        "add  " acc0 ", r0\n\t adc " acc1 ", r1\n\t adc " acc2 ", r28\n\t adc " acc3 ", r28\n\t"
#define ROW(acc0, acc1, acc2, acc3) \
        MAC_2(acc0, acc1, acc2, acc3, "r18", "r19") MAC_2(acc0, acc1, acc2, acc3, "r20", "r21")
#define LOAD_ACC(acc0, acc1, acc2, acc3) /* and subtract groups << 16 */ \
        "ld " acc0 ", X+\n\t ld " acc1 ", X+\n\t ld " acc2 ", X+\n\t ld " acc3 ", X+\n\t" \
        "sub " acc2 ", r22\n\t sbc " acc3 ", r28\n\t"
#define STORE_ACC(acc0, acc1, acc2, acc3) "st X+, " acc0 "\n\t st X+, " acc1 "\n\t st X+, " acc2 "\n\t st X+, " acc3 "\n\t"
__attribute__((naked, noinline))
static void block_dot_4_rows_avr(const int8_t *in UNUSED, uint8_t groups UNUSED, const int8_t *block UNUSED,
                                 int32_t *acc UNUSED) {
    __asm__ volatile(
        "push r2\n\t push r3\n\t push r4\n\t push r5\n\t push r6\n\t push r7\n\t push r8\n\t push r9\n\t"
        "push r10\n\t push r11\n\t push r12\n\t push r13\n\t push r14\n\t push r15\n\t push r16\n\t push r17\n\t"
        "push r28\n\t push r29\n\t"
        "clr  r28\n\t"                     /* a zero: r1 holds products here */
        "movw r26, r18\n\t"                /* X = acc */
        LOAD_ACC("r2", "r3", "r4", "r5") LOAD_ACC("r6", "r7", "r8", "r9")
        LOAD_ACC("r10", "r11", "r12", "r13") LOAD_ACC("r14", "r15", "r16", "r17")
        "push r18\n\t push r19\n\t"       /* acc, for the end */
        "mov  r29, r22\n\t"                /* groups left */
        "movw r30, r20\n\t"                /* Z = the block's weights, in flash */
        "movw r26, r24\n\t"                /* X = in */
        "ldi  r23, 0x80\n\t"
        "1:\n\t"
        "ld   r18, X+\n\t ld r19, X+\n\t ld r20, X+\n\t ld r21, X+\n\t"
        ROW("r2", "r3", "r4", "r5") ROW("r6", "r7", "r8", "r9")
        ROW("r10", "r11", "r12", "r13") ROW("r14", "r15", "r16", "r17")
        "dec  r29\n\t"
        "breq 2f\n\t"
        "rjmp 1b\n\t"                      /* the loop is too long for BRNE's reach */
        "2:\n\t"
        "pop  r27\n\t pop r26\n\t"        /* X = acc */
        STORE_ACC("r2", "r3", "r4", "r5") STORE_ACC("r6", "r7", "r8", "r9")
        STORE_ACC("r10", "r11", "r12", "r13") STORE_ACC("r14", "r15", "r16", "r17")
        "clr  r1\n\t"                      /* avr-gcc's zero register */
        "pop  r29\n\t pop r28\n\t"
        "pop  r17\n\t pop r16\n\t pop r15\n\t pop r14\n\t pop r13\n\t pop r12\n\t pop r11\n\t pop r10\n\t"
        "pop  r9\n\t pop r8\n\t pop r7\n\t pop r6\n\t pop r5\n\t pop r4\n\t pop r3\n\t pop r2\n\t"
        "ret\n\t");
}
#undef ROW
#undef MAC_2
#undef LOAD_ACC
#undef STORE_ACC
#undef UNUSED

static void block_dot(const int8_t *in, int depth, const int8_t *block, int rows, int32_t *acc) {
    int groups = depth / 4;
    if (rows == 4) {
        for (; groups > 0; groups -= 255) {  /* at most 255 groups (1,020 inputs) per call */
            uint8_t n = (uint8_t)(groups < 255 ? groups : 255);
            block_dot_4_rows_avr(in, n, block, acc);
            in += 4 * n, block += 16 * n, depth -= 4 * n;
        }
    }
    block_dot_reference(in, depth, block, rows, acc);
}
#else
#define block_dot block_dot_reference
#endif

static void fully_connected(const int8_t *in, int8_t *out, int depth, int units, const int8_t *weights,
                            const int32_t *bias, const int32_t *multiplier, const int8_t *shift,
                            int per_channel, int32_t output_offset, int32_t act_min, int32_t act_max) {
    const int8_t *block = weights;
    for (int first = 0; first < units; first += 4) {
        int rows = units - first < 4 ? units - first : 4;
        int32_t acc[4];
        acc[0] = acc[1] = acc[2] = acc[3] = 0;
        block_dot(in, depth, block, rows, acc);
        block += (depth + 3) / 4 * 4 * rows;
        for (int r = 0; r < rows; ++r) {
            int c = per_channel ? first + r : 0;
            /* the generator folded input_offset * sum(w) into the bias: exact, one add less per weight */
            int32_t v = requantize(acc[r] + read_i32(&bias[first + r]), read_i32(&multiplier[c]), read_i8(&shift[c])) + output_offset;
            out[first + r] = (int8_t)(v < act_min ? act_min : v > act_max ? act_max : v);
        }
    }
}

#endif

#if TINYDIGITS_USES_AVERAGE_POOL_2D
static void average_pool(const int8_t *in, int8_t *out, int height, int width, int channels, int pool,
                         int stride, int32_t act_min, int32_t act_max) {
    int out_h = (height - pool) / stride + 1, out_w = (width - pool) / stride + 1;
    for (int y = 0; y < out_h; ++y)
        for (int x = 0; x < out_w; ++x)
            for (int ch = 0; ch < channels; ++ch) {
                int32_t acc = 0, count = 0;
                for (int dy = 0; dy < pool; ++dy)
                    for (int dx = 0; dx < pool; ++dx) {
                        acc += in[((y * stride + dy) * width + (x * stride + dx)) * channels + ch];
                        ++count;
                    }
                acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                out[(y * out_w + x) * channels + ch] = (int8_t)(acc < act_min ? act_min : acc > act_max ? act_max : acc);
            }
}

#endif

#if TINYDIGITS_USES_STRIDED_SLICE
/* STRIDED_SLICE with stride 1: the (out_h, out_w) window of a (height, width, channels) tensor at (top, left) */
static void crop(const int8_t *in, int8_t *out, int width, int channels, int top, int left, int out_h, int out_w) {
    for (int y = 0; y < out_h; ++y)
        for (int i = 0; i < out_w * channels; ++i)
            out[y * out_w * channels + i] = in[((y + top) * width + left) * channels + i];
}

#endif

#if TINYDIGITS_USES_SOFTMAX && !TINYDIGITS_MATCH_LITERT && !TINYDIGITS_SOFTMAX_EXP_TABLE
/* gemmlowp fixed point: Q0.31 for FixedPoint<int32,0>, Q2.29 for FixedPoint<int32,2>, Q5.26 ... */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) in Q0.31 */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 in Q0.31 */
    int32_t x = a + (INT32_C(1) << 28);          /* a + 1/8 */
    int32_t x2 = srdhm(x, x), x3 = srdhm(x2, x), x4 = srdhm(x2, x2);
    int32_t x4_over_4 = rdbpot(x4, 2);
    int32_t poly = rdbpot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + srdhm(constant_term, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values<int32, 5>). */
static int32_t exp_on_negative_values(int32_t a) {
    static const int32_t multipliers[7] TINYDIGITS_FLASH = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    if (a == 0) return INT32_MAX;  /* exp(0): the largest logit; gemmlowp selects this at the end */
    const int32_t one_quarter = INT32_C(1) << 24;
    int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(sat_shl(a_mod_quarter_minus_one_quarter, 5));
    int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int i = 0; i < 7; ++i)  /* exponents -2..4: bits 24..30 of the remainder */
        if (remainder & (INT32_C(1) << (24 + i))) result = srdhm(result, read_i32(&multipliers[i]));
    return result;
}

#endif

#if TINYDIGITS_USES_SOFTMAX && !TINYDIGITS_MATCH_LITERT
/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    int64_t sum = (int64_t)a + INT32_MAX;
    int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t constant_48_over_17 = 1515870810, constant_neg_32_over_17 = -1010580540;
    int32_t x = constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17);
    for (int i = 0; i < 3; ++i) {
        int32_t one_minus_half_denominator_times_x = (INT32_C(1) << 29) - srdhm(half_denominator, x);
        x = x + sat_shl(srdhm(x, one_minus_half_denominator_times_x), 2);
    }
    return sat_shl(x, 1);
}

static int count_leading_zeros(uint32_t x) {
    int n = 0;
    while (n < 32 && !(x & (UINT32_C(0x80000000) >> n))) ++n;
    return n;
}

/* TFLite reference int8 softmax (output scale 1/256, zero point -128). On a Cortex-M0 the
   exponentials come from the generator's table (softmax_exp.py: exp_table[-diff], 0 past its end). */
#if TINYDIGITS_SOFTMAX_EXP_TABLE
static void softmax(const int8_t *in, int8_t *out, int depth, const int32_t *exp_table, int exp_table_size) {
#else
static void softmax(const int8_t *in, int8_t *out, int depth, int32_t input_multiplier,
                    int input_left_shift, int32_t diff_min) {
#endif
    int8_t max_in = -128;
    for (int c = 0; c < depth; ++c) if (in[c] > max_in) max_in = in[c];
    int32_t sum_of_exps = 0;  /* Q12.19 */
    int32_t exps[TINYDIGITS_OUTPUT_SIZE];  /* the softmax is the model's output: depth is this size */
    for (int c = 0; c < depth; ++c) {
        int32_t diff = (int32_t)in[c] - max_in;
#if TINYDIGITS_SOFTMAX_EXP_TABLE
        exps[c] = -diff < exp_table_size ? read_i32(&exp_table[-diff]) : 0;
#else
        int32_t x = diff >= diff_min ? srdhm(diff * (INT32_C(1) << input_left_shift), input_multiplier) : INT32_MIN;
        /* exp(x) for x <= -15 is about 656 in Q0.31, well under 2^11: it adds 0 to the sum below
           (which drops 12 bits) and gives an output of -128, exactly as 0 does. So skip it. */
        exps[c] = x > -(INT32_C(15) << 26) ? exp_on_negative_values(x) : 0;  /* x in Q5.26 */
#endif
        sum_of_exps += rdbpot(exps[c], 12);
    }
    int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
    int num_bits_over_unit = 12 - headroom_plus_one;
    int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - (UINT32_C(1) << 31));
    int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
    for (int c = 0; c < depth; ++c) {
#if TINYDIGITS_SOFTMAX_EXP_TABLE
        if (exps[c] != 0) {  /* an exponential of 0 gives -128 below, as a difference under diff_min does */
#else
        int32_t diff = (int32_t)in[c] - max_in;
        if (diff >= diff_min) {
#endif
            int32_t v = rdbpot(srdhm(shifted_scale, exps[c]), num_bits_over_unit + 31 - 8) - 128;
            out[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
        } else {
            out[c] = -128;
        }
    }
}
#endif

#if TINYDIGITS_USES_SOFTMAX && TINYDIGITS_MATCH_LITERT
/* LiteRT's optimized int8 softmax: exp from a 256-entry float table, normalized in float.
   Float arithmetic, so only with TINYDIGITS_MATCH_LITERT; compile without contraction (-std=c99). */
static void softmax(const int8_t *in, int8_t *out, int depth, const float *table) {
    int max_in = -128;
    for (int c = 0; c < depth; ++c) if (in[c] > max_in) max_in = in[c];
    const float *row = table + 255 - max_in;  /* row[x] = exp(input_scale * (x - max)) */
    float sum = 0.0f;
    for (int c = 0; c < depth; ++c) sum += read_f32(&row[in[c]]);
    const float inverse = 1.0f / (sum * (1.0f / 256));
    for (int c = 0; c < depth; ++c) {
        int32_t v = (int32_t)(read_f32(&row[in[c]]) * inverse + 0.5f) - 128;
        out[c] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
}
#endif
