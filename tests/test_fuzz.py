"""Fuzz: random and corrupted bytes for every file tinydigits reads, random requests for every API endpoint.

The promise under test: bad input gives exit 2 with one `error:` line (or a TinyDigitsError from
the library, or a 4xx from the server); never a traceback or a 5xx; nothing half-written; earlier
results untouched. Hypothesis runs derandomized (a fixed seed per test, no example database), so
CI is reproducible; the example counts are in FUZZ_EXAMPLES, and the cases run are printed at the
end of the session (conftest) and recorded in bench/README.md.

Corruptions of a valid file: truncation, bytes overwritten (biased towards the header), random
bytes inserted, or the whole file replaced by random bytes.
"""
import collections
import contextlib
import functools
import gzip
import hashlib
import io
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from conftest import idx_bytes
from tinydigits.cli import main
from tinydigits.errors import TinyDigitsError

FUZZ_EXAMPLES = {  # cases per test (more where a case is cheap); the file runs in about a minute on 2 cores
    "idx": 300, "verdicts": 100, "manifest": 100, "image": 500, "keras": 60, "tflite": 200, "deploy_json": 80,
    "metrics_json": 40, "search_json": 300, "variants": 300, "api_json": 300, "api_multipart": 150, "api_schema": 100,
}
CASES = collections.Counter()  # cases run per kind; conftest prints them at the end of the session


def fuzz(kind: str):
    return settings(max_examples=FUZZ_EXAMPLES[kind], derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def corrupted(valid: bytes) -> st.SearchStrategy[bytes]:
    """Damaged versions of `valid`: cut short, overwritten, spliced into, or replaced by noise."""
    n = len(valid)
    head = min(n, 256)

    def overwrite(edits):
        data = bytearray(valid)
        for at, value in edits:
            data[at] = value
        return bytes(data)

    position = st.integers(0, head - 1) | st.integers(0, n - 1)
    return st.one_of(
        st.integers(0, n - 1).map(lambda cut: valid[:cut]),
        st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=8).map(overwrite),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(lambda t: valid[:t[0]] + t[1] + valid[t[0]:]),
        st.binary(max_size=512),
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def run_cli(*argv) -> tuple[int, str]:
    """Exit code and stderr of the CLI, in this process (an escaping exception fails the test)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


def assert_clean_failure(code: int, err: str) -> None:
    event(f"exit {code}")
    assert code in (0, 2), code
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err


def refused(e: TinyDigitsError) -> None:
    event("refused")
    assert "\n" not in str(e) and str(e)


def fingerprint(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def copy_of(run: Path, name: str, data: bytes):
    """A temporary copy of a run folder with file `name` replaced by `data`; yields (folder, fingerprint)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        shutil.copytree(run, folder)
        (folder / name).write_bytes(data)
        yield folder, fingerprint(folder)


# ----------------------------------------------------------------------------------------- IDX

SMALL = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
LABELS = np.arange(6, dtype=np.uint8)


@fuzz("idx")
@given(st.sampled_from(["x_train", "y_test"]), st.booleans(), st.data())
def test_idx_files(which, gzipped, data):
    from tinydigits.data import FILES, load_dataset

    CASES["idx"] += 1
    arrays = {"x_train": SMALL, "y_train": LABELS, "x_test": SMALL, "y_test": LABELS}
    valid = idx_bytes(arrays[which])
    damaged = data.draw(corrupted(gzip.compress(valid, mtime=0) if gzipped else valid))
    with tempfile.TemporaryDirectory() as tmp:
        for key, name in FILES.items():
            (Path(tmp) / name[:-3]).write_bytes(idx_bytes(arrays[key]))
        (Path(tmp) / FILES[which][:-3]).unlink()
        (Path(tmp) / (FILES[which] if gzipped else FILES[which][:-3])).write_bytes(damaged)
        try:
            ds = load_dataset("custom", data_dir=Path(tmp))
        except TinyDigitsError as e:
            refused(e)
            return
    assert ds.x_train.shape[1:] == ds.x_test.shape[1:] and len(ds.x_train) == len(ds.y_train)
    assert ds.y_train.max() <= 9


@fuzz("verdicts")
@given(st.one_of(corrupted(b'{"/data/mnist/t10k-labels-idx1-ubyte:10008:1700000000:27ae3e4e": true}'),
                 JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_checksum_cache(monkeypatch, damaged):
    """The cache of checksum verdicts (verified.json) is advisory: damaged, it costs a re-check, never a crash."""
    from tinydigits import data

    CASES["verdicts"] += 1
    arrays = {"x_train": SMALL, "y_train": LABELS, "x_test": SMALL, "y_test": LABELS}
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "tiny", Path(tmp) / "cache"
        folder.mkdir()
        cache.mkdir()
        for key, name in data.FILES.items():
            (folder / name[:-3]).write_bytes(idx_bytes(arrays[key]))
        monkeypatch.setitem(data.CHECKSUMS, "tiny", {k: hashlib.md5(idx_bytes(a)).hexdigest() for k, a in arrays.items()})
        (cache / "verified.json").write_bytes(damaged)
        ds = data.load_dataset("tiny", roots=[Path(tmp)], cache_dir=cache, allow_download=False)
        assert np.array_equal(ds.x_train, SMALL)
        verdicts = json.loads((cache / "verified.json").read_text())
        assert sum(stamp.startswith(str(folder)) for stamp in verdicts) == 4  # this dataset's verdicts were added


@fuzz("manifest")
@given(st.one_of(corrupted(b'{"kind": "run", "version": 1, "created_by": "tinydigits train"}'),
                 JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_folder_manifest(damaged):
    """A damaged .tinydigits.json: the folder is ours only if the manifest still says so; never a crash."""
    from tinydigits.artifacts import KINDS, MANIFEST, preflight

    CASES["manifest"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "out"
        folder.mkdir()
        (folder / MANIFEST).write_bytes(damaged)
        (folder / "notes.txt").write_text("a user's file")
        try:
            preflight(folder, force=True)
            event("accepted as ours")
            assert json.loads(damaged)["kind"] in KINDS
        except TinyDigitsError as e:
            refused(e)
        assert (folder / "notes.txt").read_text() == "a user's file"


# -------------------------------------------------------------------------------------- images

IMAGE_KINDS = [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"),
               ("I;16", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"), ("CMYK", "JPEG"), ("P", "GIF"), ("L", "BMP"),
               ("RGB", "BMP"), ("RGBA", "WEBP"), ("L", "TIFF"), ("I;16", "TIFF"), ("I", "TIFF"), ("F", "TIFF"),
               ("CMYK", "TIFF"), ("LAB", "TIFF"), ("L", "PPM"), ("RGB", "TGA"), ("RGBA", "ICO"), ("1", "TIFF"),
               ("P", "BMP"), ("LA", "TIFF"), ("RGBA", "TIFF"), ("RGB", "PCX"), ("L", "JPEG2000"), ("I;16", "JPEG2000"),
               ("RGB", "SGI"), ("RGBA", "QOI"), ("RGB", "AVIF")]


@functools.cache
def image_file(mode: str, fmt: str) -> bytes:
    page = Image.new("L", (40, 48), 255)
    ImageDraw.Draw(page).line([(20, 6), (20, 42)], fill=0, width=5)
    image = Image.fromarray((np.asarray(page).astype(np.int32) * 200)).convert(mode) if mode in ("I;16", "I") \
        else Image.fromarray(np.asarray(page, np.float32) / 255) if mode == "F" else page.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


@fuzz("image")
@given(st.sampled_from(IMAGE_KINDS), st.data())
def test_image_files(kind, data):
    from tinydigits.preprocess import mnist_like, open_image

    CASES["image"] += 1
    damaged = data.draw(corrupted(image_file(*kind)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's warnings about damaged metadata would be stray stderr lines
        try:
            digit = mnist_like(open_image(damaged))
        except TinyDigitsError as e:
            refused(e)
            return
    assert digit.shape == (28, 28) and digit.dtype == np.uint8


def test_every_image_kind_reads_undamaged():
    from tinydigits.preprocess import mnist_like, open_image

    for kind in IMAGE_KINDS:
        assert mnist_like(open_image(image_file(*kind))).max() > 100, kind


# ---------------------------------------------------------------------------- run folder files

@pytest.fixture(scope="module")
def digit_png(tmp_path_factory, mnist):
    path = tmp_path_factory.mktemp("img") / "seven.png"
    Image.fromarray(mnist.x_test[0]).save(path)
    return path


@fuzz("keras")
@given(data=st.data())
def test_keras_file(converted_run, digit_png, data):
    CASES["keras"] += 1
    damaged = data.draw(corrupted((converted_run / "model.keras").read_bytes()))
    with copy_of(converted_run, "model.keras", damaged) as (run, before):
        seen = run.parent / "seen"
        code, err = run_cli("predict", run, digit_png, "--json", "--save-preprocessed", seen)
        assert_clean_failure(code, err)
        assert fingerprint(run) == before and seen.exists() == (code == 0)


def export_c_all_or_nothing(run: Path, before: dict) -> None:
    """`export-c` of a damaged run: exit 0 with the folder, or exit 2 with one line, no folder, no partial one."""
    out = run.parent / "export"
    code, err = run_cli("export-c", run, "--out", out)
    assert_clean_failure(code, err)
    assert fingerprint(run) == before and out.exists() == (code == 0)
    assert not [p for p in run.parent.iterdir() if p.name.startswith(".")]


@fuzz("tflite")
@given(data=st.data())
def test_tflite_file(converted_run, data):
    from tinydigits.runtimes import LiteRT

    CASES["tflite"] += 1
    damaged = data.draw(corrupted((converted_run / "model_int8.tflite").read_bytes()))
    with copy_of(converted_run, "model_int8.tflite", damaged) as (run, before):
        export_c_all_or_nothing(run, before)
    try:  # what `serve` does with it: load it and answer one drawing
        probabilities = LiteRT(damaged).predict(np.zeros((1, 28, 28), np.uint8))
    except TinyDigitsError as e:
        refused(e)
        return
    assert probabilities.shape == (1, 10)


@fuzz("deploy_json")
@given(st.one_of(corrupted(b'{"forms": [{"form": "TFLM int8", "arena_bytes": 3376}]}'),
                 JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_deploy_json(converted_run, damaged):
    CASES["deploy_json"] += 1
    with copy_of(converted_run, "deploy.json", damaged) as (run, before):
        export_c_all_or_nothing(run, before)


@fuzz("metrics_json")
@given(data=st.data())
def test_metrics_json(converted_run, data):
    CASES["metrics_json"] += 1
    valid = (converted_run / "metrics.json").read_bytes()
    damaged = data.draw(st.one_of(corrupted(valid), JSON_VALUES.map(lambda v: json.dumps(v).encode())))
    with copy_of(converted_run, "metrics.json", damaged) as (run, before):
        code, err = run_cli("predict", run, "--index", "0", "--json")  # reads the recipe and the dataset it names
        assert_clean_failure(code, err)
        assert fingerprint(run) == before


# ------------------------------------------------------------------------ search and variants

VALID_SEARCH = json.dumps({"budget": {"flash_bytes": 8192, "ram_bytes": 2048}, "best": "h8-relu-ce", "candidates": [
    {"name": "h8-relu-ce", "recipe": {"hidden": [8]}, "params": 6370, "flash_bytes": 7408, "ram_bytes": 148,
     "instructions_per_inference": 40000, "validation_accuracy": 0.93, "test_accuracy": 0.929,
     "float_test_accuracy": 0.93, "train_seconds": 5.0, "qemu_agrees_with_litert": 1.0, "on_front": True}]}).encode()


@fuzz("search_json")
@given(st.one_of(corrupted(VALID_SEARCH), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                 JSON_VALUES.map(lambda v: json.dumps({"candidates": [v]}).encode())))
def test_search_json(damaged):
    from tinydigits.search import Budget, best, load_progress, mark_front, table

    CASES["search_json"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "search.json").write_bytes(damaged)
        try:
            rows = load_progress(Path(tmp))
        except TinyDigitsError as e:
            refused(e)
            return
    budget = Budget(flash=8192, ram=2048)  # what a resumed search does with the rows it read
    mark_front(rows)
    best(rows, budget)
    table(rows, budget)


@fuzz("variants")
@given(st.sampled_from([".toml", ".json"]), st.data())
def test_variants_file(suffix, data):
    from tinydigits.compare import variants, variants_from_file
    from tinydigits.model import Recipe

    CASES["variants"] += 1
    valid = (b'[[variant]]\nhidden = [64, 32]\nactivation = "tanh"\n\n[[variant]]\nlr = 0.01\n' if suffix == ".toml"
             else b'[{"hidden": [64, 32], "activation": "tanh"}, {"lr": 0.01}]')
    values = st.lists(st.dictionaries(st.sampled_from(["hidden", "activation", "loss", "epochs", "batch_size", "lr",
                                                       "seed", "input_size", "validation_split", "dataset", "x"]),
                                      JSON_VALUES, max_size=3), max_size=3)
    damaged = data.draw(st.one_of(corrupted(valid), values.map(lambda v: json.dumps(v).encode())) if suffix == ".json"
                        else corrupted(valid))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"variants{suffix}"
        path.write_bytes(damaged)
        try:
            recipes = variants(variants_from_file(path), Recipe())
        except TinyDigitsError as e:
            refused(e)
            return
    assert all(isinstance(r, Recipe) for r in recipes)
    for r in recipes:
        r.name  # noqa: B018  (the name every report prints)


# ------------------------------------------------------------------------------------------ API

@pytest.fixture(scope="module")
def app(converted_run):
    from tinydigits.runs import Run
    from tinydigits.serve import create_app

    return create_app(Run(converted_run))


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app, raise_server_exceptions=False)


def assert_4xx_or_ok(r):
    event(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert isinstance(r.json()["detail"], str) and "\n" not in r.json()["detail"], r.text


def pixels_with_damage() -> st.SearchStrategy[list]:
    """784 valid pixels with up to four entries replaced by any JSON value (ragged, strings, NaN, huge ...)."""
    def damage(args):
        pixels, edits = args
        for at, value in edits:
            pixels[at] = value
        return pixels

    return st.tuples(st.lists(st.floats(0, 255), min_size=784, max_size=784),
                     st.lists(st.tuples(st.integers(0, 783), JSON_VALUES), max_size=4)).map(damage)


@fuzz("api_json")
@given(st.one_of(JSON_VALUES, st.fixed_dictionaries({"pixels": pixels_with_damage()},
                                                     optional={"model": JSON_VALUES | st.sampled_from(["float", "int8"])})))
def test_api_random_json(client, body):
    CASES["api_json"] += 1
    content = json.dumps(body)
    assert_4xx_or_ok(client.post("/api/predict", content=content, headers={"content-type": "application/json"}))
    for path in ("/api/health", "/api/model", "/api/mistakes?limit=1"):  # a body where none is expected is ignored
        r = client.request("GET", path, content=content, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text


@fuzz("api_multipart")
@given(st.one_of(corrupted(image_file("L", "PNG")), corrupted(image_file("RGB", "JPEG"))),
       st.sampled_from(["file", "image"]),
       st.none() | st.text(max_size=6), st.binary(max_size=64))
def test_api_random_multipart(client, image, field, model, raw):
    CASES["api_multipart"] += 1
    form = {} if model is None else {"model": model}
    assert_4xx_or_ok(client.post("/api/predict", files={field: ("x.png", image, "image/png")}, data=form))
    assert_4xx_or_ok(client.post("/api/predict", content=raw, headers={"content-type": "multipart/form-data; boundary=b"}))


@pytest.fixture(scope="module")
def api_schema(app):
    schemathesis = pytest.importorskip("schemathesis")
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


ENDPOINTS = ["GET /api/health", "GET /api/model", "POST /api/predict", "GET /api/mistakes"]


def test_the_fuzzed_endpoints_are_all_of_them(api_schema):
    assert sorted(f"{r.ok().method.upper()} {r.ok().path}" for r in api_schema.get_all_operations()) == sorted(ENDPOINTS)


@pytest.mark.parametrize("endpoint, mode", [(e, "positive") for e in ENDPOINTS] +
                         [("POST /api/predict", "negative"), ("GET /api/mistakes", "negative")])  # the others take no input
def test_api_schema(api_schema, endpoint, mode):
    """Schemathesis: requests generated from the OpenAPI schema (positive: valid by it; negative: not)."""
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                                   response_schema_conformance, status_code_conformance)

    method, path = endpoint.split()
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    @fuzz("api_schema")
    @given(api_schema[path][method].as_strategy(GenerationMode(mode)))
    def check(case):
        CASES[f"api_schema {endpoint} {mode}"] += 1
        response = case.call_and_validate(checks=checks + ([negative_data_rejection] if mode == "negative" else []))
        event(f"status {response.status_code}")

    check()
