/* Firmware for QEMU: classify int8 images read over semihosting and report what it cost.
 * Reads images.bin (N*784 int8), writes outputs.bin (N*10 int8), prints one line of figures.
 * Instructions are counted by SysTick under `qemu -icount shift=0` (1 instruction = 1 ns of
 * virtual time); a calibration loop of known length converts ticks to instructions. */
#include <stdio.h>
#include <stdint.h>

#include "tinydigits_model.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018)
#define STACK_PAINT 8192
#define PAINT 0xA5A5A5A5u

static uint32_t ticks_since(uint32_t start) { return (start - SYST_CVR) & 0xFFFFFFu; }

/* Paint the stack below us, run one inference, and return the deepest byte it touched. */
static __attribute__((noinline)) uint32_t stack_used(const int8_t *input, int8_t *output) {
    volatile uint32_t marker;
    uint32_t *top = (uint32_t *)((uintptr_t)&marker & ~3u) - 16;
    uint32_t *bottom = top - STACK_PAINT / 4;
    for (uint32_t *p = bottom; p < top; ++p) *p = PAINT;
    tinydigits_predict(input, output);
    uint32_t *p = bottom;
    while (p < top && *p == PAINT) ++p;
    return (uint32_t)((uintptr_t)&marker - (uintptr_t)p);
}

int main(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5;  /* enable, processor clock */
    uint32_t start = SYST_CVR, loops = 100000;
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(loops) : : "cc");  /* 2 instructions a loop */
    uint32_t calibration = ticks_since(start);

    FILE *in = fopen("images.bin", "rb"), *out = fopen("outputs.bin", "wb");
    if (!in || !out) { printf("error: cannot open images.bin or outputs.bin\n"); return 2; }
    static int8_t input[TINYDIGITS_INPUT_SIZE];
    int8_t output[TINYDIGITS_OUTPUT_SIZE];
    uint32_t n = 0, stack = 0;
    uint64_t ticks = 0;
    while (fread(input, 1, sizeof input, in) == sizeof input) {
        if (n == 0) stack = stack_used(input, output);
        start = SYST_CVR;
        tinydigits_predict(input, output);
        ticks += ticks_since(start);
        fwrite(output, 1, sizeof output, out);
        ++n;
    }
    fclose(in);
    fclose(out);
    printf("images=%lu ticks=%llu calibration_ticks=%lu calibration_instructions=200000 stack=%lu\n",
           (unsigned long)n, (unsigned long long)ticks, (unsigned long)calibration, (unsigned long)stack);
    return 0;
}
