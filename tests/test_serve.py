"""The web app's API through the framework's test client, including the bad inputs it must survive."""
import io
import json

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
    assert client.get("/api/mistakes?limit=1000").status_code == 400


@pytest.mark.parametrize("kwargs, status, message", [
    ({"json": {"pixels": [0.5] * 783}}, 400, "784 numbers, got 783"),
    ({"json": {"pixels": ["a"] * 784}}, 400, "must all be numbers"),
    ({"json": {"pixels": [True] * 784}}, 400, "must all be numbers"),
    ({"content": '{"pixels": [' + ",".join(["NaN"] * 784) + "]}", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"json": {"pixels": [300] * 784}}, 400, "0-255"),
    ({"json": {"pixels": [-1] * 784}}, 400, "0-255"),
    ({"json": {"image": []}}, 400, "expected a JSON object"),
    ({"json": [1, 2, 3]}, 400, "expected a JSON object"),
    ({"json": {"pixels": [0] * 784, "model": "fp16"}}, 400, "model must be one of"),
    ({"content": "{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": "hello", "headers": {"content-type": "text/plain"}}, 415, "application/json or multipart"),
    ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 400, "not a readable image"),
    ({"files": {"other": ("x.png", b"x", "image/png")}}, 400, 'field "file"'),
    ({"content": b"--xyz\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=xyz"}}, 400, "multipart"),
    ({"content": b"0" * (MAX_BODY_BYTES + 1), "headers": {"content-type": "application/json"}}, 413, "over"),
])
def test_bad_input_gets_a_clear_4xx(client, kwargs, status, message):
    r = client.post("/api/predict", **kwargs)
    assert r.status_code == status and message in r.json()["detail"], r.text
    assert client.get("/api/health").status_code == 200  # and the server is still fine


def test_non_finite_pixels_from_python_callers():
    from tinydigits.errors import TinyDigitsError
    from tinydigits.serve import pixels_from_json

    with pytest.raises(TinyDigitsError, match="finite"):
        pixels_from_json({"pixels": [float("nan")] * 784})
    with pytest.raises(TinyDigitsError, match="must all be numbers"):
        pixels_from_json({"pixels": [[1, 2]] * 784})


def test_body_cap_without_content_length(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"0" * 65536

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 or (r.status_code == 400 and "over" in r.json()["detail"])


def test_serve_cli_refuses_a_folder_without_model(tmp_path, capsys):
    from tinydigits.cli import main

    assert main(["serve", str(tmp_path)]) == 2 and "not a run folder" in capsys.readouterr().err
