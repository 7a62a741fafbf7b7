/* ---- integer arithmetic shared by every kernel: TFLite's reference int8 arithmetic ----------- */
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
__attribute__((naked, noinline, unused))
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
static inline int32_t requantize(int32_t x, int32_t multiplier, int shift) {
    int total = 31 - shift;
    return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << (total - 1))) >> total);
}
#else
/* TFLite MultiplyByQuantizedMultiplier, rounding twice as the reference kernels and TFLM do:
   x * multiplier * 2^shift. */
static inline int32_t requantize(int32_t x, int32_t multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return rdbpot(srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}
#endif

static inline int8_t clamp_i8(int32_t v, int32_t low, int32_t high) {
    return (int8_t)(v < low ? low : v > high ? high : v);
}
