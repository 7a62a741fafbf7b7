"""Load test of `tinydigits serve` on loopback: concurrent clients for a bounded time.

Starts the server as a separate process, then opens N keep-alive connections that each POST a
real test digit as JSON pixels to /api/predict, back to back, for D seconds (the loop stops by
itself). Reports requests per second, p50/p99 latency and errors.

    TINYDIGITS_DATA=../shared/datasets python bench/serve_load.py runs/lesson --clients 32 --seconds 10
"""
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np


async def client(port: int, body: bytes, stop: float, latencies: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if b" 200 " not in status:
                errors.append(status.decode().strip())
    except (OSError, asyncio.IncompleteReadError) as e:
        errors.append(repr(e))
    finally:
        writer.close()


async def load(port: int, body: bytes, clients: int, seconds: float):
    latencies, errors = [], []
    stop = time.perf_counter() + seconds
    await asyncio.gather(*(client(port, body, stop, latencies, errors) for _ in range(clients)))
    return latencies, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    from tinydigits.data import load_dataset

    body = json.dumps({"pixels": load_dataset("mnist").x_test[0].ravel().tolist()}).encode()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tinydigits", "serve", str(args.run), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        asyncio.run(load(port, body, args.clients, 1.0))  # warm-up
        latencies, errors = asyncio.run(load(port, body, args.clients, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    ms = np.array(latencies) * 1000
    print(f"{args.clients} clients, {args.seconds:g} s: {len(ms)} requests, {len(ms) / args.seconds:.0f} req/s, "
          f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms, "
          f"errors {len(errors)}")
    print(f"target: p99 under 20 ms at 32 clients with zero errors: "
          f"{'met' if np.percentile(ms, 99) < 20 and not errors else 'NOT met'}")


if __name__ == "__main__":
    main()
