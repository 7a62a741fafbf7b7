/* Firmware for simavr: classify the inputs the harness (simavr_harness.c) puts in SRAM.
 * It speaks through GPIOR0, a general-purpose I/O register the harness watches: it announces where
 * its buffers are, asks for the next input (GPIOR1 reads 1 if one was placed, 0 when done), and
 * marks the start and the end of each inference so the harness can count its cycles and stack.
 * The buffers are the model's own (its zero-copy API): no copy of the input, no RAM of ours. */
#include <stdint.h>

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>

#include "tinydigits_model.h"

enum { SAY_INPUT = 1, SAY_OUTPUT = 2, NEXT = 3, START = 4, STOP = 5, DONE = 6 };

static void say(uint8_t what, const void *address) {
    uint16_t value = (uint16_t)(uintptr_t)address;
    GPIOR1 = (uint8_t)value;
    GPIOR2 = (uint8_t)(value >> 8);
    GPIOR0 = what;
}

int main(void) {
    say(SAY_INPUT, tinydigits_input());
    say(SAY_OUTPUT, tinydigits_output());
    for (;;) {
        GPIOR0 = NEXT;
        if (!GPIOR1) break;
        __asm__ volatile("" ::: "memory");  /* the harness wrote `input` behind the compiler's back */
        GPIOR0 = START;
        tinydigits_invoke();
        __asm__ volatile("" ::: "memory");
        GPIOR0 = STOP;
    }
    GPIOR0 = DONE;
    cli();
    sleep_mode();
    return 0;
}
