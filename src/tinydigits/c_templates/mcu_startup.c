/* Minimal Cortex-M4 start-up for the MPS2 AN386 board in QEMU: vector table, .data copy, newlib. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t _estack, _sidata, _sdata, _edata, __bss_start__, __bss_end__;
extern void initialise_monitor_handles(void);  /* newlib rdimon: stdio over semihosting */
extern int main(void);

void Reset_Handler(void) {
    memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
    memset(&__bss_start__, 0, (size_t)((char *)&__bss_end__ - (char *)&__bss_start__));
    initialise_monitor_handles();
    exit(main());  /* semihosting SYS_EXIT: QEMU quits with main's status */
}

static void Default_Handler(void) { for (;;) {} }

__attribute__((section(".isr_vector"), used))
const void *const vector_table[16] = {
    &_estack, (void *)Reset_Handler, (void *)Default_Handler, (void *)Default_Handler,
    (void *)Default_Handler, (void *)Default_Handler, (void *)Default_Handler, 0, 0, 0, 0,
    (void *)Default_Handler, (void *)Default_Handler, 0, (void *)Default_Handler, (void *)Default_Handler,
};

void _init(void) {}  /* no C++ constructors here: newlib's init/fini hooks have nothing to do */
void _fini(void) {}
