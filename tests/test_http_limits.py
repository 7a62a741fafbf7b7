"""`tinydigits serve` as a process, over raw sockets: request heads too big, Host headers, HEAD, a decompression
bomb beside an ordinary request, slow-loris clients, a client that leaves mid-request. (Latency under load is
measured in bench/serve_load.py, not here.)"""
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from conftest import save_tiny_run
from tinydigits.http_limits import REQUEST_SECONDS


@pytest.fixture(scope="module")
def server(tmp_path_factory, mnist):
    """A server on a free port; yields (port, its stderr file)."""
    run = save_tiny_run(tmp_path_factory.mktemp("runs") / "tiny", int8=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("log") / "stderr.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tinydigits", "serve", str(run), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(1200):
            if b" 200 " in ask(port, b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"):
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        yield port, log
    finally:
        proc.terminate()
        proc.wait(30)


def ask(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send `request` whole, then read until the server closes: the response bytes (b"" if none)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out
    except ConnectionRefusedError:
        return b""


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *headers, "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def test_a_huge_request_head_gets_431_and_the_server_goes_on(server):
    port, _ = server
    big = ask(port, get("/api/health", "Host: localhost", "X-Big: " + "a" * 1_000_000))
    many = ask(port, get("/api/health", "Host: localhost", *(f"X-{i}: 1" for i in range(10_000))))
    assert status(big) == 431 and b"request headers over 32,768 bytes" in big, big[:200]
    assert status(many) == 431, many[:200]
    assert status(ask(port, get("/api/health", "Host: localhost", *(f"X-{i}: 1" for i in range(60))))) == 200


@pytest.mark.parametrize("headers, code", [
    ([], 400), (["Host: localhost", "Host: localhost"], 400), (["Host: a b"], 400), (["Host: x:99999"], 400),
    (["Host: evil.example.com"], 400),  # a page on another site that rebinds its name to 127.0.0.1
    (["Host: localhost:8000"], 200), (["Host: 127.0.0.1"], 200), (["Host: [::1]:1"], 200),
])
def test_the_host_header_is_checked(server, headers, code):
    response = ask(server[0], get("/api/health", *headers))
    assert status(response) == code, response[:300]


def test_head_is_answered_like_get_without_a_body(server):
    port, _ = server
    for path in ("/", "/api/health", "/model.json"):
        full = ask(port, get(path, "Host: localhost"))
        head = ask(port, get(path, "Host: localhost", method="HEAD"))
        head_headers, body = head.split(b"\r\n\r\n", 1)
        assert status(head) == 200 and body == b"", head
        length = int(next(line.split(b":")[1] for line in head_headers.split(b"\r\n") if line.lower().startswith(b"content-length")))
        assert length == len(full.split(b"\r\n\r\n", 1)[1])


def png_bomb(width: int = 39_999_999, height: int = 1) -> bytes:
    """A valid 8-bit grey PNG of width x height black pixels: a few tens of KB that decode to `width * height` bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compressobj(9)
    pixels = b"".join(rows.compress(b"\x00" + bytes(width)) for _ in range(height)) + rows.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def upload(image: bytes) -> bytes:
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n'
            + image + b"\r\n--b--\r\n")
    return get("/api/predict", "Host: localhost", "Content-Type: multipart/form-data; boundary=b",
               f"Content-Length: {len(body)}", method="POST") + body


def test_a_decompression_bomb_gets_a_4xx_at_once_and_holds_no_one_up(server):
    port, _ = server
    bomb = png_bomb()
    assert len(bomb) < 60_000
    answers = {}

    def post():
        start = time.monotonic()
        answers["bomb"] = ask(port, upload(bomb)), time.monotonic() - start

    poster = threading.Thread(target=post)
    poster.start()
    time.sleep(0.01)
    start = time.monotonic()
    health = ask(port, get("/api/health", "Host: localhost"))
    health_seconds = time.monotonic() - start
    poster.join(30)
    response, bomb_seconds = answers["bomb"]
    assert status(health) == 200 and health_seconds < 1, health_seconds
    assert status(response) == 400 and b"image too large (39999999x1 pixels" in response and bomb_seconds < 5


def test_slow_clients_are_cut_off_and_hold_no_one_up(server):
    """64 slow-loris clients, each sending one more header line a second: all cut off with a 408 within 30 s,
    while ordinary requests are answered at once."""
    port, _ = server
    assert REQUEST_SECONDS < 30
    ends = []

    def loris():
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
            answer = b""
            while time.monotonic() - start < 40:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                    chunk = s.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                answer += chunk
        ends.append((time.monotonic() - start, status(answer)))

    clients = [threading.Thread(target=loris) for _ in range(64)]
    for c in clients:
        c.start()
    time.sleep(1)
    waits = []
    for _ in range(20):
        start = time.monotonic()
        assert status(ask(port, get("/api/health", "Host: localhost"))) == 200
        waits.append(time.monotonic() - start)
        time.sleep(0.2)
    for c in clients:
        c.join(60)
    assert max(waits) < 1, waits
    assert len(ends) == 64 and all(seconds < 30 and code == 408 for seconds, code in ends), ends


def test_a_client_that_leaves_mid_request_is_one_info_line(server):
    port, log = server
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000\r\n\r\n{\"pixels\": [1, 2, ")
        time.sleep(0.3)
    time.sleep(0.5)
    assert status(ask(port, get("/api/health", "Host: localhost"))) == 200
    text = log.read_text()
    lines = [line for line in text.splitlines() if "disconnected before its POST /api/predict was received" in line]
    assert len(lines) == 1 and lines[0].startswith("INFO:"), text
    assert "Traceback" not in text and "ERROR" not in text, text
