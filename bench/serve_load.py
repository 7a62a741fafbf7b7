"""Load test of `tinydigits serve` on loopback: concurrent clients for a bounded time.

Starts the server as a separate process, then opens N keep-alive connections that each POST a
real test digit as JSON pixels to /api/predict, back to back, for D seconds (the load stops by
itself). Reports requests per second, p50/p99 latency and errors. The load comes from `wrk`
(Debian's package; C, so it leaves the two cores to the server) when installed, else from an
asyncio client in this process (whose own CPU use then inflates the latencies).

    TINYDIGITS_DATA=../shared/datasets python bench/serve_load.py runs/lesson --clients 32 --seconds 10 --workers 2
    python bench/serve_load.py runs/lesson --clients 64 --target-ms 250 --baseline /tmp/old-checkout

`--baseline DIR` first loads a server run from another checkout's DIR/src (an older commit, say),
then this one, in the same run, so the two figures share the machine's load of the moment.
"""
import argparse
import asyncio
import json
import os
import re
import shutil
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


def wrk_load(port: int, body: bytes, clients: int, seconds: float) -> dict:
    """Run wrk against /api/predict; its latency percentiles, request rate and error counts."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = {json.dumps(body.decode())}\n')
        script.flush()
        url = f"http://127.0.0.1:{port}/api/predict"
        subprocess.run(["wrk", "-t1", f"-c{clients}", "-d1s", "-s", script.name, url], capture_output=True)  # warm-up
        out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", script.name, url],
                             capture_output=True, text=True, check=True).stdout

    def ms(label):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout)[: ]+(\d+)", out))
    return {"requests": int(re.search(r"(\d+) requests in", out).group(1)), "p50": ms("50%"), "p99": ms("99%"),
            "max": ms(r"Latency\s+\S+\s+\S+"), "errors": errors}


def measure(run: Path, body: bytes, args, src: Path | None) -> dict:
    """Start `tinydigits serve` (from `src`/src when given), load it for args.seconds, stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve() / "src")
    server = subprocess.Popen([sys.executable, "-m", "tinydigits", "serve", str(run), "--port", str(port),
                               "--workers", str(args.workers)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        if args.client == "wrk":
            return wrk_load(port, body, args.clients, args.seconds)
        asyncio.run(load(port, body, args.clients, 1.0))  # warm-up
        latencies, errors = asyncio.run(load(port, body, args.clients, args.seconds))
        ms = np.array(latencies) * 1000
        return {"requests": len(ms), "p50": np.percentile(ms, 50), "p99": np.percentile(ms, 99), "max": ms.max(),
                "errors": len(errors)}
    finally:
        server.terminate()
        server.wait(10)


def report(r: dict, args, label: str) -> str:
    return (f"{label}{args.workers} server process(es), {args.clients} clients ({args.client}), {args.seconds:g} s: "
            f"{r['requests']} requests, {r['requests'] / args.seconds:.0f} req/s, p50 {r['p50']:.1f} ms, "
            f"p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms, errors {r['errors']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python")
    parser.add_argument("--target-ms", type=float, default=20.0, help="the p99 goal (default 20 ms)")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured first in the same run")
    args = parser.parse_args()

    from tinydigits.data import load_dataset

    body = json.dumps({"pixels": load_dataset("mnist").x_test[0].ravel().tolist()}).encode()
    if args.baseline:
        old = measure(args.run, body, args, args.baseline)
        print(report(old, args, f"baseline ({args.baseline}): "))
    r = measure(args.run, body, args, None)
    print(report(r, args, "this checkout: " if args.baseline else ""))
    if args.baseline:
        print(f"p99 ratio, this checkout / baseline: {r['p99'] / old['p99']:.2f}")
    met = r["p99"] < args.target_ms and not r["errors"]
    print(f"target: p99 under {args.target_ms:g} ms at {args.clients} clients with zero errors: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
