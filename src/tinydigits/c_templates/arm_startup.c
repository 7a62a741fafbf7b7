/* Minimal Cortex-M start-up for QEMU: vector table, copy .data, clear .bss, run main, exit over semihosting. */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, __bss_start__, __bss_end__;
extern int main(void);
extern void exit_qemu(int status);

void Reset_Handler(void) {
    for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    exit_qemu(main());
}

static void Default_Handler(void) { for (;;) {} }

__attribute__((section(".isr_vector"), used))
const void *const vector_table[16] = {
    &_estack, (void *)Reset_Handler, (void *)Default_Handler, (void *)Default_Handler,
    (void *)Default_Handler, (void *)Default_Handler, (void *)Default_Handler, 0, 0, 0, 0,
    (void *)Default_Handler, (void *)Default_Handler, 0, (void *)Default_Handler, (void *)Default_Handler,
};
