/* Minimal RISC-V start-up for QEMU (machine mode): stack, trap vector, copy .data, clear .bss, run main,
 * exit over semihosting. Any trap (an instruction the board's CPU lacks, a bad address) exits with
 * status 3 at once instead of hanging the emulator until its time-out. */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, __bss_start__, __bss_end__;
extern int main(void);
extern void exit_qemu(int status);
void trap_handler(void);
void reset_handler(void);

__attribute__((naked, section(".text.start"))) void _start(void) {
    __asm__ volatile("la sp, _estack\n"
                     "la t0, trap_handler\n"
                     "csrw mtvec, t0\n"
                     "j reset_handler");
}

__attribute__((aligned(4))) void trap_handler(void) { exit_qemu(3); }

void reset_handler(void) {
    for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    exit_qemu(main());
}
