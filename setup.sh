#!/usr/bin/env bash
# Set up tinydigits on a fresh Debian/Ubuntu machine: system packages, then a virtual environment in .venv.
#   ./setup.sh            # apt packages (needs root or sudo) + .venv with tinydigits and its test tools
set -euo pipefail
cd "$(dirname "$0")"
APT_PACKAGES="gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc gcc-avr binutils-avr avr-libc simavr libsimavr-dev avrdude arduino-builder arduino-core-avr clang lld chromium dataset-fashion-mnist wrk"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "tinydigits is set up: .venv/bin/tinydigits --help"
