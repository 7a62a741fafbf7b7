/* Firmware for QEMU (Cortex-M and RISC-V): classify int8 inputs read from the host over semihosting;
 * report the cost. Reads inputs.bin (N inputs), writes outputs.bin (N outputs) and figures.bin (five
 * uint64: inputs, counter ticks over all inferences, ticks of a calibration loop, its instructions,
 * stack bytes). Under `qemu -icount shift=0` one instruction is one nanosecond of virtual time, so the
 * counter counts instructions: SysTick on Cortex-M, the instret CSR on RISC-V. The calibration loop
 * of known length converts ticks to instructions (and proves the counter counts them). It uses the
 * model's zero-copy API: each input is read straight into the model's arena. */
#include <stdint.h>

#include "tinydigits_model.h"

#define PAINT 0xA5A5A5A5u
#define CALIBRATION_LOOPS 100000u  /* 2 instructions a loop */

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_EXIT = 0x18, SYS_EXIT_EXTENDED = 0x20 };
enum { MODE_READ_BINARY = 1, MODE_WRITE_BINARY = 5, APPLICATION_EXIT = 0x20026, RUNTIME_ERROR = 0x20024 };

extern uint32_t end;  /* the linker script: first free byte of RAM after .bss */

#if defined(__riscv)
/* The RISC-V semihosting trap: ebreak between two marker instructions, uncompressed and in one page (the
 * function's 16-byte alignment keeps the 12 bytes from straddling one); op in a0, args in a1, result in a0. */
__attribute__((naked, noinline, aligned(16))) static uint32_t semihost(uint32_t op, const void *args) {
    (void)op, (void)args;
    __asm__ volatile(".option push\n .option norvc\n slli zero, zero, 0x1f\n ebreak\n srai zero, zero, 7\n .option pop\n ret");
}

static void start_counter(void) {}

static uint32_t ticks(void) {  /* instructions retired (low 32 bits: one inference is far fewer) */
    uint32_t n;
    __asm__ volatile("csrr %0, instret" : "=r"(n));
    return n;
}

static uint32_t ticks_since(uint32_t start) { return ticks() - start; }

static void calibration_loop(uint32_t loops) { __asm__ volatile("1: addi %0, %0, -1\n bnez %0, 1b" : "+r"(loops)); }
#else
#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)

static uint32_t semihost(uint32_t op, const void *args) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void start_counter(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5;  /* enable, processor clock */
}

static uint32_t ticks(void) { return SYST_CVR; }

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }  /* SysTick counts down, 24 bits */

static void calibration_loop(uint32_t loops) {
#ifdef __thumb2__
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(loops) : : "cc");
#else  /* Thumb-1 (Cortex-M0/M0+), which GCC assembles in divided syntax: `sub` sets the flags */
    __asm__ volatile("1: sub %0, #1\n bne 1b" : "+l"(loops) : : "cc");
#endif
}
#endif

static uint32_t open_file(const char *name, uint32_t length, uint32_t mode) {
    uint32_t args[3] = {(uint32_t)(uintptr_t)name, mode, length};
    return semihost(SYS_OPEN, args);
}

static uint32_t transfer(uint32_t op, uint32_t file, const void *buffer, uint32_t size) {
    uint32_t args[3] = {file, (uint32_t)(uintptr_t)buffer, size};
    return semihost(op, args);  /* the bytes NOT transferred */
}

/* Paint the free RAM below us, run one inference, and return the deepest byte it touched. */
static __attribute__((noinline)) uint32_t stack_used(void) {
    volatile uint32_t marker;
    uint32_t *top = (uint32_t *)((uintptr_t)&marker & ~3u) - 16;
    for (volatile uint32_t *p = &end; p < top; ++p) *p = PAINT;  /* volatile: not a memset call, which uses this stack */
    tinydigits_invoke();
    uint32_t *p = &end;
    while (p < top && *p == PAINT) ++p;
    return (uint32_t)((uintptr_t)&marker - (uintptr_t)p);
}

int main(void) {
    start_counter();
    uint32_t start = ticks();
    calibration_loop(CALIBRATION_LOOPS);
    uint64_t figures[5] = {0, 0, ticks_since(start), 2 * CALIBRATION_LOOPS, 0};

    uint32_t in = open_file("inputs.bin", 10, MODE_READ_BINARY), out = open_file("outputs.bin", 11, MODE_WRITE_BINARY);
    if (in == 0xFFFFFFFFu || out == 0xFFFFFFFFu) return 2;
    int8_t first[TINYDIGITS_INPUT_SIZE];  /* the stack measurement's inference overwrites the arena's input */
    while (transfer(SYS_READ, in, tinydigits_input(), TINYDIGITS_INPUT_SIZE) == 0) {
        if (figures[0] == 0) {
            for (int i = 0; i < TINYDIGITS_INPUT_SIZE; ++i) first[i] = tinydigits_input()[i];
            figures[4] = stack_used();
            for (int i = 0; i < TINYDIGITS_INPUT_SIZE; ++i) tinydigits_input()[i] = first[i];
        }
        start = ticks();
        tinydigits_invoke();
        figures[1] += ticks_since(start);
        if (transfer(SYS_WRITE, out, tinydigits_output(), TINYDIGITS_OUTPUT_SIZE) != 0) return 2;
        ++figures[0];
    }
    semihost(SYS_CLOSE, &in);
    semihost(SYS_CLOSE, &out);
    uint32_t report = open_file("figures.bin", 11, MODE_WRITE_BINARY);
    if (report == 0xFFFFFFFFu || transfer(SYS_WRITE, report, figures, sizeof figures) != 0) return 2;
    semihost(SYS_CLOSE, &report);
    return 0;
}

void exit_qemu(int status) {
#if defined(__riscv)  /* QEMU exits with `status` */
    uint32_t args[2] = {APPLICATION_EXIT, (uint32_t)status};
    semihost(SYS_EXIT_EXTENDED, args);
#else  /* ADP_Stopped_ApplicationExit (QEMU exits with 0), or RunTimeErrorUnknown (1) */
    semihost(SYS_EXIT, (const void *)(uintptr_t)(status == 0 ? APPLICATION_EXIT : RUNTIME_ERROR));
#endif
    for (;;) {}
}
