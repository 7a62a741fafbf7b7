/* Firmware for QEMU: classify int8 inputs read from the host over semihosting; report the cost.
 * It uses the model's zero-copy API: each input is read straight into the model's arena. 
 * Reads inputs.bin (N inputs), writes outputs.bin (N outputs) and figures.bin (five uint32: inputs,
 * SysTick ticks over all inferences, ticks of a calibration loop, its instructions, stack bytes).
 * Under `qemu -icount shift=0` one instruction is one nanosecond of virtual time, so SysTick counts
 * instructions; the calibration loop of known length converts ticks to instructions. */
#include <stdint.h>

#include "tinydigits_model.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define PAINT 0xA5A5A5A5u
#define CALIBRATION_LOOPS 100000u  /* 2 instructions a loop */

enum { SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITE = 0x05, SYS_READ = 0x06, SYS_EXIT = 0x18 };
enum { MODE_READ_BINARY = 1, MODE_WRITE_BINARY = 5, APPLICATION_EXIT = 0x20026 };

extern uint32_t end;  /* the linker script: first free byte of RAM after .bss */

static uint32_t semihost(uint32_t op, const void *args) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static uint32_t open_file(const char *name, uint32_t length, uint32_t mode) {
    uint32_t args[3] = {(uint32_t)name, mode, length};
    return semihost(SYS_OPEN, args);
}

static uint32_t transfer(uint32_t op, uint32_t file, const void *buffer, uint32_t size) {
    uint32_t args[3] = {file, (uint32_t)buffer, size};
    return semihost(op, args);  /* the bytes NOT transferred */
}

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

/* Paint the free RAM below us, run one inference, and return the deepest byte it touched. */
static __attribute__((noinline)) uint32_t stack_used(void) {
    volatile uint32_t marker;
    uint32_t *top = (uint32_t *)((uintptr_t)&marker & ~3u) - 16;
    for (uint32_t *p = &end; p < top; ++p) *p = PAINT;
    tinydigits_invoke();
    uint32_t *p = &end;
    while (p < top && *p == PAINT) ++p;
    return (uint32_t)((uintptr_t)&marker - (uintptr_t)p);
}

int main(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5;  /* enable, processor clock */
    uint32_t start = SYST_CVR, loops = CALIBRATION_LOOPS;
#ifdef __thumb2__
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(loops) : : "cc");
#else  /* Thumb-1 (Cortex-M0/M0+), which GCC assembles in divided syntax: `sub` sets the flags */
    __asm__ volatile("1: sub %0, #1\n bne 1b" : "+l"(loops) : : "cc");
#endif
    uint32_t figures[5] = {0, 0, ticks_since(start), 2 * CALIBRATION_LOOPS, 0};

    uint32_t in = open_file("inputs.bin", 10, MODE_READ_BINARY), out = open_file("outputs.bin", 11, MODE_WRITE_BINARY);
    if (in == 0xFFFFFFFFu || out == 0xFFFFFFFFu) return 2;
    int8_t first[TINYDIGITS_INPUT_SIZE];  /* the stack measurement's inference overwrites the arena's input */
    while (transfer(SYS_READ, in, tinydigits_input(), TINYDIGITS_INPUT_SIZE) == 0) {
        if (figures[0] == 0) {
            for (int i = 0; i < TINYDIGITS_INPUT_SIZE; ++i) first[i] = tinydigits_input()[i];
            figures[4] = stack_used();
            for (int i = 0; i < TINYDIGITS_INPUT_SIZE; ++i) tinydigits_input()[i] = first[i];
        }
        start = SYST_CVR;
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
    semihost(SYS_EXIT, (const void *)(status == 0 ? APPLICATION_EXIT : 0x20024));  /* 0x20024: RunTimeErrorUnknown */
    for (;;) {}
}
