/* ---- dot products of int8 rows: the multiply-accumulate engine of FULLY_CONNECTED and CONV_2D ----
   Weights as the generator laid them out (codegen.kernel_layout): rows in blocks of 4 (the last may
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
