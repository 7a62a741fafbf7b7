"""Talk to a board running the ClassifySerial sketch (export-arduino, upload): send an image, read the digit
and the ten probabilities the board computed, beside the host build's answer for the same input.

The sketch (c_templates/arduino_sketch.ino) reads 784 pixels 0-255, row by row, quantizes them itself and
answers one line, `digit 7 probabilities 0.0000 ... 0.9961 0.0000 0.0000`, each probability (q - zero_point)
* scale of its int8 output q with four decimals: with the softmax's scale of 1/256 that gives q back
exactly. Opening the port resets an Uno (its auto-reset); its bootloader listens for about a second,
then the sketch classifies its built-in test digit: that line says it is ready.

Each image is preprocessed as `predict` does (preprocess.mnist_like). The host's answer is the run's
standalone C compiled for this machine (targets.host), on the input quantized as the sketch does.

    with BoardLink("/dev/ttyACM0") as board, HostBuild(Run("runs/lesson")) as host:
        print(compare(board, host, [Path("seven.png")]))    # [{"file", "board", "host", "same", ...}]
"""
from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codegen import write_standalone
from .runtimes import LiteRT
from .errors import TinyDigitsError
from .preprocess import is_blank, mnist_like, open_image
from .runs import Run
from .targets.host import compile_host, run_batch

BAUD = 115200                # the sketch's Serial.begin
READY_TIMEOUT_S = 8.0        # an Uno: its bootloader's second, then the built-in digit; a slow host pty: more
ANSWER_TIMEOUT_S = 3.0       # 784 bytes at 115200 baud (68 ms), an inference (13 ms on an Uno), the line
ANSWER = re.compile(r"digit (\d+) probabilities((?: -?\d+\.\d{4}){2,})\s*$")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Answer:
    digit: int                 # the argmax as the board computed it
    outputs: tuple[int, ...]   # its int8 outputs, read back from the printed probabilities
    printed: tuple[str, ...]   # the probabilities as the board printed them


def parse_answer(line: str, scale: float, zero_point: int) -> Answer:
    """`digit D probabilities p0 ... p9` -> Answer; each p, printed with four decimals, is within 0.00005 of
    (q - zero_point) * scale, so q = round(p / scale) + zero_point while scale > 0.0001."""
    match = ANSWER.search(line)
    if not match:
        raise ValueError(line)
    printed = [float(p) for p in match.group(2).split()]
    outputs = [int(round(p / scale)) + zero_point for p in printed]
    if any(abs((q - zero_point) * scale - p) > 0.5e-4 + 1e-9 or not -128 <= q <= 127 for q, p in zip(outputs, printed)):
        raise ValueError(line)  # not what an int8 output with this quantization prints
    return Answer(int(match.group(1)), tuple(outputs), tuple(match.group(2).split()))


def sketch_print(q: int, scale: float, zero_point: int) -> str:
    """An int8 output as the sketch prints it on an AVR: (q - zero_point) * scale in float (32 bits there),
    then Arduino's Print::printFloat with 4 digits (add 0.00005, then one truncated digit at a time)."""
    f = np.float32
    number = f(q - zero_point) * f(scale) + f(0.5) / f(10) / f(10) / f(10) / f(10)
    whole = int(number)
    remainder, digits = number - f(whole), ""
    for _ in range(4):
        remainder = remainder * f(10)
        digits += str(int(remainder))
        remainder = remainder - f(int(remainder))
    return f"{whole}.{digits}"


class BoardLink:
    """A serial port with the sketch behind it; opening it waits for the sketch's ready line."""

    def __init__(self, port: str, baud: int = BAUD, ready_timeout: float = READY_TIMEOUT_S):
        import serial  # pyserial

        self.port = str(port)
        if not Path(self.port).exists() and not self.port.startswith(("COM", "socket://", "rfc2217://")):
            raise TinyDigitsError(f"{self.port}: no such port (is the board plugged in? `upload --port auto` finds it)")
        try:
            self.serial = serial.serial_for_url(self.port, baud, timeout=0.05)
        except (serial.SerialException, OSError) as e:
            raise TinyDigitsError(f"{self.port}: cannot be opened ({why(e)})") from None
        self.ready = self.read_line(ready_timeout, "ready line (the sketch's built-in test digit)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.serial.close()

    def read_line(self, timeout: float, what: str) -> str:
        """The next complete line the board sends, within `timeout` seconds."""
        data, deadline = b"", time.monotonic() + timeout
        while not data.endswith(b"\n"):
            if time.monotonic() > deadline:
                said = f"; it sent {data[:60]!r}" if data else ""
                raise TinyDigitsError(f"{self.port}: the board sent no {what} within {timeout:g} s{said} (is the "
                                      f"ClassifySerial sketch on it? `tinydigits upload RUN --board uno --port {self.port}`)")
            data += self.serial.read_until(b"\n")
        return data.decode("ascii", "replace").strip()

    def classify(self, pixels: np.ndarray, scale: float, zero_point: int, name: str = "the image") -> Answer:
        """Send one (28, 28) uint8 image, read the board's answer."""
        self.serial.write(np.ascontiguousarray(pixels, np.uint8).tobytes())
        line = self.read_line(ANSWER_TIMEOUT_S, f"answer to {name}")
        try:
            return parse_answer(line, scale, zero_point)
        except ValueError:
            raise TinyDigitsError(f"{self.port}: the board answered {line[:80]!r} to {name}, "
                                  "not 'digit D probabilities p0 ... p9'") from None


def why(e: Exception) -> str:
    text = str(e)
    if "Permission denied" in text:
        return "permission denied: add yourself to the dialout group, then log in again"
    return re.sub(r"^\[Errno \d+\] (could not open port [^:]*: )?(\[Errno \d+\] )?", "", text).split(":")[0]


class HostBuild:
    """The run's standalone C compiled for this machine: the answer the board must give, byte for byte."""

    def __init__(self, run: Run | Path):
        run = run if isinstance(run, Run) else Run(run)
        model = run.int8_model()
        self.litert = LiteRT(model)
        q = self.litert.output_q
        self.scale, self.zero_point = float(q.scale), int(q.zero_point)
        self._tmp = tempfile.TemporaryDirectory()
        c_dir = Path(self._tmp.name) / "c"
        write_standalone(model, c_dir, str(run.paths.int8_model), "tinydigits send")
        self.exe = compile_host(c_dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._tmp.cleanup()

    def outputs(self, pixels: np.ndarray) -> np.ndarray:
        """(28, 28) uint8 -> its (10,) int8 outputs, quantized as the sketch quantizes."""
        return run_batch(self.exe, self.litert.prepare(pixels[None]).reshape(1, -1))[0]


def send_file(board: BoardLink, host: HostBuild | None, path: Path) -> dict:
    """Preprocess one image file as `predict` does, classify it on the board (and on the host): its result,
    or {"file", "error"} for a file that is not a readable image."""
    try:
        pixels = mnist_like(open_image(path))
    except TinyDigitsError as e:
        return {"file": str(path), "error": str(e)}
    scale, zero_point = (host.scale, host.zero_point) if host else (1 / 256, -128)  # the softmax's int8 output
    answer = board.classify(pixels, scale, zero_point, Path(path).name)
    result = {"file": str(path), "blank": is_blank(pixels), "board_digit": answer.digit,
              "board_outputs": list(answer.outputs), "board_printed": list(answer.printed)}
    if host is not None:
        expected = host.outputs(pixels)
        result.update(host_digit=int(expected.argmax()), host_outputs=expected.tolist(),
                      host_printed=[sketch_print(int(q), scale, zero_point) for q in expected],
                      same=answer.digit == int(expected.argmax()) and list(answer.outputs) == expected.tolist())
    return result


def new_images(folder: Path, poll_s: float = 0.2, settle_s: float = 0.5):
    """Yield each image file saved into `folder` from now on, once it has not changed for `settle_s` seconds
    (a file still being written is not read); the files there already are not yielded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TinyDigitsError(f"--watch {folder}: not a folder")

    def images():
        stats = {p: p.stat() for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
        return {p: (st.st_size, st.st_mtime_ns) for p, st in stats.items()}

    seen, pending = set(images()), {}  # pending: path -> (size, mtime, when it was last seen changing)
    while True:
        time.sleep(poll_s)
        now = time.monotonic()
        for path, state in sorted(images().items()):
            if path in seen:
                continue
            if path in pending and pending[path][:2] == state:
                if now - pending[path][2] >= settle_s and state[0] > 0:
                    seen.add(path)
                    del pending[path]
                    yield path
            else:
                pending[path] = (*state, now)


def format_result(r: dict) -> str:
    """Two lines: the board's digit and probabilities, then the host's and whether the bytes agree."""
    if "error" in r:
        return f"error: {r['error']}"
    lines = [f"{r['file']}{'  [blank image]' if r['blank'] else ''}",
             f"  board  {r['board_digit']}  {' '.join(r['board_printed'])}"]
    if "host_outputs" in r:
        lines.append(f"  host   {r['host_digit']}  {' '.join(r['host_printed'])}  "
                     + ("same bytes" if r["same"] else "DIFFERENT: board " + " ".join(map(str, r["board_outputs"]))
                        + " / host " + " ".join(map(str, r["host_outputs"]))))
    return "\n".join(lines)
