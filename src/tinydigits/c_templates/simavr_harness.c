/* Run an AVR firmware in simavr (libsimavr), cycle-exact, and talk to it without a UART.
 *
 *   simavr_harness model MCU HZ firmware.elf inputs.bin outputs.bin INPUT_SIZE OUTPUT_SIZE
 *       avr_firmware.c's protocol on GPIOR0: the harness writes each input into the firmware's
 *       input buffer, reads its outputs back, counts the cycles of each inference and the deepest
 *       stack pointer reached during it. Prints one line of figures.
 *   simavr_harness uart MCU HZ firmware.elf|.hex bytes.bin CHUNK LINES
 *       an Arduino sketch: prints what it writes on USART0 and feeds bytes.bin into USART0, CHUNK
 *       bytes after each line it prints (a host that waits for each answer), with simavr's XON/XOFF
 *       flow control; stops after LINES lines.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_hex.h"
#include "sim_irq.h"

#define GPIOR0 0x3E /* data addresses, the same on the ATmega328P and the ATmega2560 */
#define GPIOR1 0x4A
#define GPIOR2 0x4B
#define SPL 0x5D
#define SPH 0x5E
#define MAX_CYCLES 4000000000ull /* 250 s of a 16 MHz chip: a firmware that never finishes */

enum { SAY_INPUT = 1, SAY_OUTPUT = 2, NEXT = 3, START = 4, STOP = 5, DONE = 6 }; /* avr_firmware.c */

static struct {
    FILE *in, *out;
    int input_size, output_size;
    uint16_t input_addr, output_addr, start_sp, min_sp;
    int measuring, done;
    avr_cycle_count_t start, total, max;
    unsigned long images;
    unsigned max_stack;
} model;

static void fail(const char *what) { fprintf(stderr, "simavr_harness: %s\n", what); exit(2); }

static void on_gpior0(avr_t *avr, avr_io_addr_t addr, uint8_t v, void *param) {
    (void)addr; (void)param;
    uint16_t value = (uint16_t)(avr->data[GPIOR1] | avr->data[GPIOR2] << 8);
    uint16_t sp = (uint16_t)(avr->data[SPL] | avr->data[SPH] << 8);
    if (v == SAY_INPUT) model.input_addr = value;
    else if (v == SAY_OUTPUT) model.output_addr = value;
    else if (v == NEXT) {  /* the firmware reads GPIOR1: 1 = an input is in place, 0 = no more */
        if (model.input_addr < 0x100 || model.input_addr + model.input_size > avr->ramend + 1 ||
            model.output_addr < 0x100 || model.output_addr + model.output_size > avr->ramend + 1)
            fail("the firmware did not announce buffers inside its SRAM");
        int got = fread(avr->data + model.input_addr, 1, model.input_size, model.in) == (size_t)model.input_size;
        avr->data[GPIOR1] = (uint8_t)got;
    } else if (v == START) {
        model.start = avr->cycle;
        model.start_sp = model.min_sp = sp;
        model.measuring = 1;
    } else if (v == STOP) {
        avr_cycle_count_t cycles = avr->cycle - model.start;
        model.total += cycles;
        if (cycles > model.max) model.max = cycles;
        if ((unsigned)(model.start_sp - model.min_sp) > model.max_stack) model.max_stack = model.start_sp - model.min_sp;
        model.measuring = 0;
        model.images++;
        fwrite(avr->data + model.output_addr, 1, model.output_size, model.out);
    } else if (v == DONE) model.done = 1;
}

static avr_t *load(const char *mcu, const char *hz, const char *path) {
    elf_firmware_t f;
    memset(&f, 0, sizeof f);
    size_t n = strlen(path);
    if (n > 4 && strcmp(path + n - 4, ".hex") == 0) {
        uint32_t size, base;
        uint8_t *code = read_ihex_file(path, &size, &base);
        if (!code) fail("cannot read the .hex file");
        f.flash = code; f.flashsize = size; f.flashbase = base;
    } else if (elf_read_firmware(path, &f) != 0) {
        fail("cannot read the ELF file");
    }
    snprintf(f.mmcu, sizeof f.mmcu, "%s", mcu);
    f.frequency = (uint32_t)strtoul(hz, NULL, 10);
    avr_t *avr = avr_make_mcu_by_name(f.mmcu);
    if (!avr) fail("unknown AVR core");
    avr->log = LOG_NONE;  /* no "Loaded ..." chatter on stdout */
    avr_init(avr);
    avr_load_firmware(avr, &f);
    return avr;
}

static int run_model(char **argv) {
    avr_t *avr = load(argv[2], argv[3], argv[4]);
    model.in = fopen(argv[5], "rb");
    model.out = fopen(argv[6], "wb");
    if (!model.in || !model.out) fail("cannot open the input or output file");
    model.input_size = atoi(argv[7]);
    model.output_size = atoi(argv[8]);
    avr_register_io_write(avr, GPIOR0, on_gpior0, NULL);
    while (!model.done) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) fail("the firmware stopped before it was done");
        if (avr->cycle > MAX_CYCLES) fail("the firmware ran too long");
        if (model.measuring) {
            uint16_t sp = (uint16_t)(avr->data[SPL] | avr->data[SPH] << 8);
            if (sp < model.min_sp) model.min_sp = sp;
        }
    }
    fclose(model.in);
    if (fclose(model.out) != 0) fail("cannot write the outputs");
    printf("images=%lu cycles=%llu max_cycles=%llu stack=%u\n", model.images, (unsigned long long)model.total,
           (unsigned long long)model.max, model.max_stack);
    return 0;
}

static struct { uint8_t *bytes; size_t size, sent, chunk; int lines, off; avr_irq_t *input; } uart;

static void on_uart_output(avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq; (void)param;
    putchar((int)value);
    if (value == '\n') { uart.lines++; fflush(stdout); }
}

static void on_xon(avr_irq_t *irq, uint32_t value, void *param) { (void)irq; (void)value; (void)param; uart.off = 0; }
static void on_xoff(avr_irq_t *irq, uint32_t value, void *param) { (void)irq; (void)value; (void)param; uart.off = 1; }

static int run_uart(char **argv) {
    avr_t *avr = load(argv[2], argv[3], argv[4]);
    FILE *in = fopen(argv[5], "rb");
    if (!in) fail("cannot open the bytes to send");
    fseek(in, 0, SEEK_END);
    uart.size = (size_t)ftell(in);
    rewind(in);
    uart.bytes = malloc(uart.size + 1);
    if (fread(uart.bytes, 1, uart.size, in) != uart.size) fail("cannot read the bytes to send");
    fclose(in);
    uart.chunk = (size_t)atol(argv[6]);
    int want = atoi(argv[7]);
    uint32_t flags = 0;  /* no console echo, no host sleeps while the firmware polls */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    uart.input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_uart_output, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
    while (uart.lines < want) {
        int state = avr_run(avr);
        if (state == cpu_Done || state == cpu_Crashed) fail("the sketch stopped");
        if (avr->cycle > MAX_CYCLES) fail("the sketch ran too long");
        size_t allowed = (size_t)uart.lines * uart.chunk;
        while (!uart.off && uart.sent < uart.size && uart.sent < allowed) avr_raise_irq(uart.input, uart.bytes[uart.sent++]);
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 9 && strcmp(argv[1], "model") == 0) return run_model(argv);
    if (argc == 8 && strcmp(argv[1], "uart") == 0) return run_uart(argv);
    fprintf(stderr, "usage: %s model MCU HZ ELF IN OUT INPUT_SIZE OUTPUT_SIZE | uart MCU HZ ELF|HEX BYTES CHUNK LINES\n", argv[0]);
    return 2;
}
