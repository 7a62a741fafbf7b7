/* An Arduino board on a pseudo-terminal, for the upload and send tests: an AVR in simavr (libsimavr)
 * with a bootloader in its boot section, whose USART0 is served on a pty as a USB-serial chip would.
 *
 *   emulated_board MCU HZ BOOTLOADER.hex LINK
 *       e.g. emulated_board atmega328p 16000000 optiboot.hex /tmp/ttyACM0
 *
 * Prints "port /dev/pts/N" once LINK (a symlink to the pty) is in place, then runs until killed.
 * - The chip starts at the bootloader's first address (the BOOTRST fuse) and keeps its flash, which
 *   the bootloader rewrites with SPM, for as long as this process lives.
 * - Opening the port resets the chip as an external reset (EXTRF), as the Uno's auto-reset does when
 *   DTR drops: a pty has no DTR line, so the reset follows the open itself.
 * - Bytes from the port reach the chip's UART one per byte time at the baud rate the chip has set
 *   (UBRR0, U2X0), from a queue without limit. What the chip sends goes to the port while it is open.
 *   A host port set to another baud rate (5% off or more) carries nothing either way, where a real
 *   wire would carry framing errors.
 * - The emulated clock never runs ahead of the wall clock, so the bootloader's watchdog time-out is
 *   one second and not a fraction of one (simavr alone runs several times faster than real time).
 * simavr's packaged uart_pty part is not used: it drops bytes past its 512-byte buffer, and the UART's
 * polling sleep (switched off here) stretches the bootloader's time-out to minutes.
 */
#define _DEFAULT_SOURCE  /* cfmakeraw, cfsetspeed */
#define _XOPEN_SOURCE 600
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "avr_uart.h"
#include "sim_avr.h"
#include "sim_irq.h"

#define UCSR0A 0xC0 /* data addresses of USART0, the same on the ATmega328P and the ATmega2560 */
#define UBRR0L 0xC4
#define UBRR0H 0xC5
#define U2X0 1         /* its bit in UCSR0A */
#define BITS_PER_BYTE 10      /* start, 8 data, stop */
#define SLICE_CYCLES 1600     /* 100 us at 16 MHz: how often the port is looked at */
#define MAX_DEBT_NS 10000000  /* behind the wall clock by more than 10 ms: forget it rather than race later */

static struct {
    int fd, open;                      /* the pty's master side; whether a program holds the port open */
    uint8_t *queue;                    /* bytes from the port not yet given to the chip */
    size_t head, tail, size;
    avr_cycle_count_t next_byte;       /* the cycle at which the next byte may arrive */
    int full;                          /* simavr's UART input FIFO is full (XOFF) */
    avr_irq_t *input;
} port;

static void fail(const char *what) { fprintf(stderr, "emulated_board: %s (%s)\n", what, strerror(errno)); exit(2); }

static int hex_byte(const char *s) {
    unsigned v;
    return sscanf(s, "%2x", &v) == 1 ? (int)v : -1;
}

/* Intel HEX into flash: data (00), end (01), extended segment (02) and linear (04) addresses; the start
 * addresses (03, 05), which simavr's own reader refuses, say nothing about flash. The lowest address. */
static uint32_t load_hex(avr_t *avr, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) fail("cannot open the bootloader");
    char line[600];
    uint32_t base = 0, lowest = UINT32_MAX;
    while (fgets(line, sizeof line, f)) {
        if (line[0] != ':') continue;
        int n = hex_byte(line + 1), type = hex_byte(line + 7), hi = hex_byte(line + 3), lo = hex_byte(line + 5);
        if (n < 0 || type < 0 || hi < 0 || lo < 0) fail("a malformed line in the bootloader");
        uint32_t address = base + ((uint32_t)hi << 8 | (uint32_t)lo);
        if (type == 0) {
            for (int i = 0; i < n; ++i) {
                int b = hex_byte(line + 9 + 2 * i);
                if (b < 0 || address + i > avr->flashend) fail("bootloader data outside the flash");
                avr->flash[address + i] = (uint8_t)b;
            }
            if (n > 0 && address < lowest) lowest = address;
        } else if (type == 1) {
            break;
        } else if (type == 2 || type == 4) {
            base = (uint32_t)(hex_byte(line + 9) << 8 | hex_byte(line + 11)) << (type == 2 ? 4 : 16);
        }
    }
    fclose(f);
    if (lowest == UINT32_MAX) fail("no data in the bootloader");
    return lowest;
}

static void on_xon(avr_irq_t *irq, uint32_t value, void *param) { (void)irq; (void)value; (void)param; port.full = 0; }
static void on_xoff(avr_irq_t *irq, uint32_t value, void *param) { (void)irq; (void)value; (void)param; port.full = 1; }

static avr_cycle_count_t cycles_per_byte(avr_t *avr) {
    uint32_t ubrr = avr->data[UBRR0L] | (uint32_t)(avr->data[UBRR0H] & 0x0F) << 8;
    return (avr_cycle_count_t)(ubrr + 1) * (avr->data[UCSR0A] & (1 << U2X0) ? 8 : 16) * BITS_PER_BYTE;
}

/* The host side's baud rate agrees with the chip's within 5% (a real UART tolerates about that). */
static int same_baud(avr_t *avr) {
    struct termios t;
    if (tcgetattr(port.fd, &t) != 0) return 1;
    static const struct { speed_t code; double baud; } rates[] = {
        {B9600, 9600}, {B19200, 19200}, {B38400, 38400}, {B57600, 57600}, {B115200, 115200}, {B230400, 230400}};
    speed_t code = cfgetospeed(&t);
    double chip = (double)avr->frequency / ((double)cycles_per_byte(avr) / BITS_PER_BYTE);
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; ++i)
        if (rates[i].code == code) return rates[i].baud > chip * 0.95 && rates[i].baud < chip * 1.05;
    return 0;
}

static void on_output(avr_irq_t *irq, uint32_t value, void *param) {
    (void)irq;
    uint8_t byte = (uint8_t)value;
    if (!port.open || !same_baud((avr_t *)param)) return;
    if (write(port.fd, &byte, 1) < 0 && errno != EAGAIN && errno != EIO) fail("cannot write to the pty");
}

static void read_port(void) {
    for (;;) {
        if (port.tail == port.size) {
            port.size = port.size ? 2 * port.size : 4096;
            if (!(port.queue = realloc(port.queue, port.size))) fail("out of memory");
        }
        ssize_t n = read(port.fd, port.queue + port.tail, port.size - port.tail);
        if (n <= 0) return;  /* EAGAIN: nothing more; EIO: the port was closed */
        port.tail += (size_t)n;
    }
}

static void feed_chip(avr_t *avr) {
    if (port.head == port.tail) {
        port.head = port.tail = 0;
        return;
    }
    if (avr->cycle < port.next_byte || port.full || cycles_per_byte(avr) == 0) return;
    uint8_t byte = port.queue[port.head++];
    if (same_baud(avr)) avr_raise_irq(port.input, byte);
    port.next_byte = avr->cycle + cycles_per_byte(avr);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Whether a program holds the port open: the master side hangs up while no one has the other side open. */
static int port_is_open(void) {
    struct pollfd p = {port.fd, POLLIN, 0};
    return poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP);
}

static void open_pty(const char *link) {
    port.fd = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (port.fd < 0 || grantpt(port.fd) != 0 || unlockpt(port.fd) != 0) fail("cannot make a pty");
    struct termios t;
    if (tcgetattr(port.fd, &t) != 0) fail("cannot read the pty's settings");
    cfmakeraw(&t);  /* raw at 115200 until the program that opens it says otherwise */
    cfsetspeed(&t, B115200);
    if (tcsetattr(port.fd, TCSANOW, &t) != 0) fail("cannot set the pty's settings");
    const char *name = ptsname(port.fd);
    int slave = open(name, O_RDWR | O_NOCTTY);  /* opened and closed once, the master side hangs up until the next open */
    if (slave < 0 || close(slave) != 0) fail("cannot open the pty");
    unlink(link);
    if (symlink(name, link) != 0) fail("cannot make the port's link");
    printf("port %s\n", name);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MCU HZ BOOTLOADER.hex LINK\n", argv[0]);
        return 2;
    }
    avr_t *avr = avr_make_mcu_by_name(argv[1]);
    if (!avr) fail("unknown AVR");
    avr_init(avr);
    avr->log = LOG_NONE;
    avr->frequency = (uint32_t)strtoul(argv[2], NULL, 10);
    avr->reset_pc = avr->pc = load_hex(avr, argv[3]);  /* BOOTRST: the reset vector is the bootloader's */
    avr->codeend = avr->flashend;
    uint32_t flags = 0;  /* no polling sleep, no console echo */
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    port.input = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_output, avr);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
    open_pty(argv[4]);

    int64_t start = now_ns();
    avr_cycle_count_t start_cycle = 0;
    for (;;) {
        int open = port_is_open();
        if (open && !port.open) {  /* auto-reset: the program that opened the port talks to the bootloader */
            tcflush(port.fd, TCIOFLUSH);
            port.head = port.tail = 0;
            avr_reset(avr);
            avr_regbit_set(avr, avr->reset_flags.extrf);
        }
        if (!open) port.head = port.tail = 0;
        port.open = open;
        if (open) read_port();
        avr_cycle_count_t stop = avr->cycle + SLICE_CYCLES;
        while (avr->cycle < stop) {
            feed_chip(avr);
            int state = avr_run(avr);
            if (state == cpu_Done || state == cpu_Crashed) {
                fprintf(stderr, "emulated_board: the chip stopped (state %d) at pc 0x%x\n", state, avr->pc);
                return 3;
            }
        }
        int64_t ahead = (int64_t)((avr->cycle - start_cycle) * 1000000000.0 / avr->frequency) - (now_ns() - start);
        if (ahead < -MAX_DEBT_NS) {
            start = now_ns();
            start_cycle = avr->cycle;
        } else if (ahead > 0) {
            struct timespec t = {0, (long)ahead};
            nanosleep(&t, NULL);
        }
    }
}
