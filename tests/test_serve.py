"""The web app's API through the framework's test client, including the bad inputs it must survive."""
import io
import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinydigits.runs import Run
from tinydigits.serve import MAX_BODY_BYTES, create_app


@pytest.fixture(scope="module")
def client(converted_run):
    from fastapi.testclient import TestClient

    return TestClient(create_app(Run(converted_run)), raise_server_exceptions=False)


def test_health_model_and_openapi(client):
    assert client.get("/api/health").json() == {"status": "ok", "models": ["float", "int8"]}
    facts = client.get("/api/model").json()
    assert facts["params"] == 15910 and facts["models"] == ["float", "int8"] and facts["int8_bytes"] > 10000
    assert [layer["type"] for layer in facts["layers"]] == ["Flatten", "Dense", "Dense"]
    spec = client.get("/api/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    page = client.get("/")
    assert page.status_code == 200 and "canvas" in page.text and "//cdn" not in page.text.lower()
    assert client.get("/static/app.js").status_code == 200


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_predict_json_pixels_either_scale(client, mnist, scale):
    pixels = (mnist.x_test[0] / 255.0 * scale).ravel().tolist()
    for model in ("float", "int8"):
        r = client.post("/api/predict", json={"pixels": pixels, "model": model})
        result = r.json()
        assert r.status_code == 200 and result["digit"] == 7 and result["model"] == model
        assert sum(result["probabilities"]) == pytest.approx(1, abs=0.02) and len(result["seen"]) == 784


def test_predict_uploaded_image(client, mnist):
    buf = io.BytesIO()
    Image.fromarray(255 - mnist.x_test[1]).resize((150, 150)).save(buf, format="PNG")  # a 2, dark on light
    r = client.post("/api/predict", files={"file": ("two.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200 and r.json()["digit"] == 2


def test_mistakes_view(client):
    page = client.get("/api/mistakes?limit=5").json()
    assert page["total"] > 50 and len(page["items"]) == 5
    for m in page["items"]:
        assert m["digit"] != m["label"] and len(m["pixels"]) == 784


@pytest.mark.parametrize("kwargs, status, message", [
    ({"json": {"pixels": [0.5] * 783}}, 422, "pixels: List should have at least 784 items after validation, not 783"),
    ({"json": {"pixels": ["a"] * 784}}, 422, "pixels.0: Input should be a valid number; pixels.1: "),
    ({"json": {"pixels": ["1"] * 784}}, 422, "valid number"),
    ({"json": {"pixels": [True] * 784}}, 422, "valid number"),
    ({"json": {"pixels": [[1, 2], *[0] * 783]}}, 422, "pixels.0: Input should be a valid number"),  # ragged
    ({"json": {"pixels": [[0] * 28] * 28}}, 422, "valid number"),
    ({"content": '{"pixels": [' + ",".join(["NaN"] * 784) + "]}", "headers": {"content-type": "application/json"}}, 422,
     "finite number (and 781 more)"),
    ({"content": '{"pixels": [' + ",".join(["1e999"] * 784) + "]}", "headers": {"content-type": "application/json"}}, 422,
     "finite number"),
    ({"json": {"pixels": [300] * 784}}, 422, "less than or equal to 255"),
    ({"json": {"pixels": [-1] * 784}}, 422, "greater than or equal to 0"),
    ({"json": {"image": []}}, 422, "pixels: Field required"),
    ({"json": [1, 2, 3]}, 422, "Input should be an object"),
    ({"json": {"pixels": [0] * 784, "model": "fp16"}}, 422, "model: Input should be 'float' or 'int8'"),
    ({"json": {"pixels": [0] * 784, "model": []}}, 422, "model: Input should be 'float' or 'int8'"),
    ({"json": {"pixels": [0] * 784, "model": {"a": 1}}}, 422, "model: Input should be 'float' or 'int8'"),
    ({"json": {"pixels": [0] * 784, "modle": "int8"}}, 422, "modle: Extra inputs are not permitted"),
    ({"content": "{not json", "headers": {"content-type": "application/json"}}, 422, "Invalid JSON"),
    ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 422, "Invalid JSON"),
    ({"content": "hello", "headers": {"content-type": "text/plain"}}, 415, "application/json or multipart"),
    ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 400, "not a readable image"),
    ({"files": {"other": ("x.png", b"x", "image/png")}}, 422, "file: Field required"),
    ({"files": {"file": ("x.png", b"x", "image/png")}, "data": {"model": "fp16"}}, 422, "model: Input should be"),
    ({"data": {"file": "not a file"}, "files": {"other": ("a.txt", b"", "text/plain")}}, 422, "file: Value error, Expected UploadFile"),
    ({"content": b"--xyz\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 422, "file: Field required"),
    ({"content": b"--xyz\r\nbroken", "headers": {"content-type": "multipart/form-data"}}, 400, "malformed multipart"),
    ({"content": b"0" * (MAX_BODY_BYTES + 1), "headers": {"content-type": "application/json"}}, 413, "over"),
])
def test_bad_input_gets_a_clear_4xx(client, kwargs, status, message):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status and message in r.json()["detail"], r.text
    assert client.get("/api/health").status_code == 200  # and the server is still fine


def test_blank_drawing_says_so(client, mnist):
    assert client.post("/api/predict", json={"pixels": [0] * 784}).json()["blank"] is True
    assert client.post("/api/predict", json={"pixels": mnist.x_test[0].ravel().tolist()}).json()["blank"] is False


@pytest.mark.parametrize("query", ["limit=1000", "limit=0", "offset=-1", "limit=abc"])
def test_mistakes_query_is_validated(client, query):
    r = client.get(f"/api/mistakes?{query}")
    assert r.status_code == 422 and isinstance(r.json()["detail"], str), r.text


def test_body_cap_without_content_length(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"0" * 65536

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over" in r.json()["detail"]


def test_serve_cli_refuses_a_folder_without_model(tmp_path, capsys):
    from tinydigits.cli import main

    assert main(["serve", str(tmp_path)]) == 2 and "not a run folder" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_a_missing_folder_fails_before_announcing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinydigits", "serve", str(tmp_path / "missing"), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'missing'}: no such run folder"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "no-such-host.invalid"])
def test_serve_on_a_taken_port_or_unknown_host_fails_before_announcing(converted_run, capsys, host):
    from tinydigits.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", str(converted_run), "--host", host, "--port", str(port)])
    out, err = capsys.readouterr()
    expected = f"cannot listen on 127.0.0.1:{port} (Address already in use" if host == "127.0.0.1" else \
        "--host no-such-host.invalid: not an address of this machine"
    assert code == 2 and out == "" and err.startswith(f"error: {expected}") and len(err.strip().splitlines()) == 1, err


def test_an_odd_key_stays_on_one_line(client):
    r = client.post("/api/predict", json={"\n": 1, "x" * 100: 2})
    detail = r.json()["detail"]
    assert r.status_code == 422 and "\n" not in detail and "'\\n': Extra inputs are not permitted" in detail, detail
    assert "; " + "x" * 40 + ": Extra" in detail and "x" * 41 not in detail


def test_the_worker_pool_is_bounded():
    """Past MAX_PENDING requests in or waiting for the pool, a request gets 429 instead of a place in the queue."""
    import asyncio
    import threading

    from fastapi import HTTPException

    from tinydigits.http_limits import Pool

    pool, release = Pool(threads=1, pending=2), threading.Event()

    async def three_at_once():
        first = asyncio.ensure_future(pool.run(release.wait))
        second = asyncio.ensure_future(pool.run(threading.get_ident))
        await asyncio.sleep(0.05)
        with pytest.raises(HTTPException) as e:
            await pool.run(threading.get_ident)
        release.set()
        return e.value.status_code, await first, await second

    code, _, worker = asyncio.run(three_at_once())
    assert code == 429 and worker != threading.get_ident()  # the work ran on a pool thread, not the loop's
