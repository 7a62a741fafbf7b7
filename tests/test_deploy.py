"""Deployment, each step checked against the one before: Keras -> LiteRT -> TFLM -> generated C -> Cortex-M."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import needs

from tinydigits.cli import main
from tinydigits.codegen.fixedpoint import quantize_multiplier
from tinydigits.runtimes import TFLM, LiteRT, _tflm_fits, minimum_arena
from tinydigits.errors import TinyDigitsError, first_line
from tinydigits.targets.host import compile_host, run_batch
from tinydigits.verify import explain_quantization


@pytest.fixture(scope="module")
def converted(converted_run):
    return converted_run


@pytest.fixture(scope="module")
def exported(converted, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "fw"
    assert main(["export-c", str(converted), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def int8(converted):
    return (converted / "model_int8.tflite").read_bytes()


def test_convert_writes_and_scores_every_form(converted):
    report = json.loads((converted / "deploy.json").read_text())
    forms = {f["form"]: f for f in report["forms"]}
    assert list(forms) == ["Keras float32", "LiteRT float32", "LiteRT int8", "TFLM int8"]
    assert forms["LiteRT float32"]["agreement_with_keras"] >= 0.999
    assert abs(forms["LiteRT int8"]["accuracy"] - forms["Keras float32"]["accuracy"]) <= 0.003
    assert forms["LiteRT int8"]["bytes"] == (converted / "model_int8.tflite").stat().st_size
    assert forms["LiteRT int8"]["bytes"] < forms["LiteRT float32"]["bytes"] / 3
    assert report["ops"] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    q = report["quantization"]
    assert q["input_scale"] == pytest.approx(1 / 255) and q["input_zero_point"] == -128
    assert q["output_scale"] == pytest.approx(1 / 256) and q["output_zero_point"] == -128
    assert len(report["flips"]) == round((1 - forms["LiteRT int8"]["agreement_with_keras"]) * 10000)
    assert (converted / "flips.png").exists()


def test_int8_model_is_full_integer(int8):
    lite = LiteRT(int8)
    assert lite.input["dtype"] == np.int8 and lite.output["dtype"] == np.int8
    details = lite.interpreter.get_tensor_details()
    assert {d["dtype"] for d in details if "MatMul" in d["name"] and len(d["shape"]) == 2 and d["shape"][0] > 1} == {np.int8}
    assert np.int32 in {d["dtype"] for d in details}  # biases


def test_tflm_arena_is_the_exact_minimum(converted, int8):
    arena = json.loads((converted / "deploy.json").read_text())["forms"][3]["arena_bytes"]
    assert _tflm_fits(int8, arena) and not _tflm_fits(int8, arena - 1)


def test_the_arena_search_keeps_stderr_and_reports_a_crash(converted, int8):
    """TFLM's reports of every too-small arena stay out of this process's stderr without redirecting its
    file descriptor 2; and when the interpreter crashes (it does, given 100 bytes), its message is kept."""
    import os
    import sys

    def no_redirect(*args):
        raise AssertionError("file descriptor 2 redirected")

    real, os.dup2 = os.dup2, no_redirect  # not monkeypatch: pytest's own capture calls dup2 before it undoes
    try:
        arena = minimum_arena(int8)
    finally:
        os.dup2 = real
    assert arena == json.loads((converted / "deploy.json").read_text())["forms"][3]["arena_bytes"]
    code = ("import sys; from tinydigits.runtimes import minimum_arena; from tinydigits.errors import TinyDigitsError\n"
            "try:\n    minimum_arena(sys.stdin.buffer.read(), high=100)\nexcept TinyDigitsError as e:\n    print(e)")
    proc = subprocess.run([sys.executable, "-c", code], input=int8, capture_output=True)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr[-500:]  # this process lived, and said nothing
    message = proc.stdout.decode()
    assert message.startswith("the TFLM interpreter failed while sizing the arena (killed by signal 11)")
    assert "Failed to allocate" in message  # the interpreter's own last words


def test_quantization_worked_example():
    text = explain_quantization({"input_scale": 1 / 255, "input_zero_point": -128,
                                 "output_scale": 1 / 256, "output_zero_point": -128}, pixel=200)
    assert "q = round(x / s) + z = round(200.00) + (-128) = 72" in text and "= 0.9961" in text


@pytest.mark.parametrize("real, expected", [(0.5, (1 << 30, 0)), (0.25, (1 << 30, -1)), (1.0, (1 << 30, 1)),
                                            (0.0, (0, 0)), (0.75, (round(0.75 * (1 << 31)), 0))])
def test_quantize_multiplier_matches_tflite(real, expected):
    assert quantize_multiplier(real) == expected


def test_tflm_bundle_bytes_decode_to_the_tflite_file(exported, int8):
    source = (exported / "tflm" / "model_data.cc").read_text()
    array = re.search(r"g_model_data\[\] = \{(.*?)\};", source, re.S).group(1)
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", array)) == int8
    assert f"g_model_data_len = {len(int8)};" in source and "alignas(16)" in source
    example = (exported / "tflm" / "main.cc").read_text()
    assert "MicroMutableOpResolver<3>" in example
    assert {"AddFullyConnected", "AddReshape", "AddSoftmax"} == set(re.findall(r"resolver\.(\w+)\(\)", example))
    for path in exported.rglob("*"):
        if path.suffix == ".json" and path.name != ".tinydigits.json":  # the C's facts sidecar says it in a field
            assert json.loads(path.read_text())["generated_by"].startswith("Generated by tinydigits"), path
        elif path.is_file() and path.name != ".tinydigits.json" and path.suffix != ".raw":  # the manifest, pixels: not C
            assert "Generated by tinydigits from" in path.read_text()[:300], path


def test_generated_header_api(exported):
    header = (exported / "c" / "tinydigits_model.h").read_text()
    for macro in ("TINYDIGITS_INPUT_SIZE 784", "TINYDIGITS_OUTPUT_SIZE 10", "TINYDIGITS_INPUT_SCALE",
                  "TINYDIGITS_INPUT_ZERO_POINT", "TINYDIGITS_OUTPUT_SCALE", "TINYDIGITS_OUTPUT_ZERO_POINT"):
        assert f"#define {macro}" in header
    assert "int tinydigits_predict(const int8_t *input, int8_t *output);" in header
    source = (exported / "c" / "tinydigits_model.c").read_text()
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)  # comments may mention float
    integer_only = re.sub(r"#if (TINYDIGITS_USES_SOFTMAX && )?TINYDIGITS_MATCH_LITERT\n.*?#(else|endif)", "", code, flags=re.S)
    assert "float" in code and "#if TINYDIGITS_MATCH_LITERT\nstatic const float table3[" in code  # the opt-in LiteRT arithmetic is there ...
    assert "malloc" not in code and "float" not in integer_only and "double" not in integer_only  # ... and only there
    assert not re.search(r"^static (?!const)[^(]*=", source, re.M)  # no global mutable state


@pytest.fixture(scope="module")
def reference_outputs(int8, mnist):
    """What the C must reproduce: the TFLM interpreter's int8 outputs on the test set and on random inputs."""
    lite = LiteRT(int8)
    test_q = lite.prepare(mnist.x_test)
    random_q = np.random.default_rng(0).integers(-128, 128, (3000, 28, 28), dtype=np.int8)
    micro = TFLM(int8)
    return test_q, micro.run(test_q), random_q, micro.run(random_q), lite.run(test_q)


@pytest.mark.parametrize("sanitize", [False, True], ids=["strict", "asan-ubsan"])
def test_standalone_c_is_byte_identical_to_tflm(exported, reference_outputs, sanitize):
    test_q, tflm_test, random_q, tflm_random, _ = reference_outputs
    exe = compile_host(exported / "c", sanitize=sanitize)
    assert np.array_equal(run_batch(exe, test_q), tflm_test)        # all 10,000 test images
    assert np.array_equal(run_batch(exe, random_q), tflm_random)    # 3,000 random int8 inputs


@pytest.mark.parametrize("sanitize", [False, True], ids=["strict", "asan-ubsan"])
def test_standalone_c_built_to_match_litert_is_byte_identical_to_litert(exported, reference_outputs, int8, sanitize):
    """With -DTINYDIGITS_MATCH_LITERT=1 the C follows LiteRT's CPU kernels (single rounding, float softmax)."""
    test_q, _, random_q, _, litert = reference_outputs
    exe = compile_host(exported / "c", sanitize=sanitize, match_litert=True)
    assert np.array_equal(run_batch(exe, test_q), litert)
    assert np.array_equal(run_batch(exe, random_q), LiteRT(int8).run(random_q))


def test_the_two_arithmetics_differ_only_in_rounding(exported, reference_outputs):
    """TFLM's and LiteRT's int8 arithmetic give the same digit almost always, the same bytes mostly."""
    test_q, tflm, _, _, litert = reference_outputs
    assert 0.95 <= (tflm == litert).all(axis=1).mean() < 1.0
    assert (tflm.argmax(1) == litert.argmax(1)).mean() >= 0.999


def test_main_c_classifies_a_raw_image(exported, mnist, tmp_path):
    subprocess.run(["make", "-s", "-C", str(exported / "c")], check=True)
    (tmp_path / "seven.raw").write_bytes(mnist.x_test[0].tobytes())
    (tmp_path / "short.raw").write_bytes(b"\x00" * 100)
    out = subprocess.run([str(exported / "c" / "tinydigits"), str(tmp_path / "seven.raw")], capture_output=True, text=True)
    assert out.returncode == 0 and re.search(r"seven.raw: 7 \(0\.\d+\)", out.stdout)
    bad = subprocess.run([str(exported / "c" / "tinydigits"), str(tmp_path / "short.raw")], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected 784 bytes, got 100" in bad.stderr


def test_the_c_quick_start_classifies_its_sample_images(exported, reference_outputs, mnist):
    """export-c writes the first test image of each class as a raw file and as a C array; `make` and
    `./tinydigits` alone classify the array, `./tinydigits FILE.raw` a file: TFLM's answers, both."""
    _, tflm, _, _, _ = reference_outputs
    first = [int(np.flatnonzero(mnist.y_test == c)[0]) for c in range(10)]
    c_dir = exported / "c"
    assert sorted(p.name for p in (c_dir / "samples").iterdir()) == [f"label{c}_test{i}.raw" for c, i in enumerate(first)]
    subprocess.run(["make", "-B", "-s", "-C", str(c_dir)], check=True)  # -B: other tests build ./tinydigits there too
    shown = subprocess.run([str(c_dir / "tinydigits")], capture_output=True, text=True, check=True).stdout.splitlines()
    expected = [f"test image {i} (label {c}): {tflm[i].argmax()} ({(int(tflm[i].max()) + 128) / 256:.4f})"
                for c, i in enumerate(first)]
    assert shown == expected
    for c, i in enumerate(first):
        raw = c_dir / "samples" / f"label{c}_test{i}.raw"
        assert raw.read_bytes() == mnist.x_test[i].tobytes()
        out = subprocess.run([str(c_dir / "tinydigits"), str(raw)], capture_output=True, text=True, check=True).stdout
        assert out == f"{raw}: {expected[c].split(': ', 1)[1]}\n"


def test_predict_save_raw_writes_what_main_c_reads(converted, exported, mnist, tmp_path, capsys):
    """A user's own picture: `predict RUN my.png --save-raw my.raw` writes the 28x28 the model saw, as the
    784 uint8 bytes main.c reads; the C then answers the int8 model's digit for it."""
    from tinydigits.preprocess import mnist_like, open_image

    picture = tmp_path / "my_seven.png"
    Image.fromarray(255 - mnist.x_test[0]).resize((112, 112), Image.Resampling.BICUBIC).save(picture)
    assert main(["predict", str(converted), str(picture), "--save-raw", str(tmp_path / "my.raw"), "--top", "1"]) == 0
    seen = mnist_like(open_image(picture))
    assert (tmp_path / "my.raw").read_bytes() == seen.tobytes() and len(seen.tobytes()) == 784
    int8 = (converted / "model_int8.tflite").read_bytes()
    digit = int(TFLM(int8).run(LiteRT(int8).prepare(seen[None]))[0].argmax())
    subprocess.run(["make", "-B", "-s", "-C", str(exported / "c")], check=True)
    out = subprocess.run([str(exported / "c" / "tinydigits"), str(tmp_path / "my.raw")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith(f"{tmp_path / 'my.raw'}: {digit} (")
    assert main(["predict", str(converted), "--index", "3", "--save-raw", str(tmp_path / "three.raw")]) == 0
    assert (tmp_path / "three.raw").read_bytes() == mnist.x_test[3].tobytes()
    capsys.readouterr()
    assert main(["predict", str(converted), str(picture), "--save-raw", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --save-raw {tmp_path}: is a folder")


@needs(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
       "gcc-arm-none-eabi / qemu-system-arm not installed")
def test_cortex_m4_in_qemu_matches_host(converted, capsys):
    assert main(["mcu", str(converted), "--images", "300"]) == 0
    report = json.loads((converted / "mcu.json").read_text())
    for build in report["builds"]:
        assert build["images"] == 300 and build["matches_host"] == 300
        assert build["flash_bytes"] < 18 * 1024 and build["ram_bytes"] < 2 * 1024
        # the DSP kernel ran (under 2 instructions per MAC; the portable one needs over 4), and no
        # count can be below one instruction per two MACs (one SMLAD does two)
        assert 15_880 / 2 < build["instructions_per_inference"] < 2 * 15_880
        assert build["stack_bytes"] > 0
    out = capsys.readouterr().out.splitlines()
    assert max(map(len, out)) <= 100 and out[1].split() == ["build", "flash", "B", "RAM", "B", "firmware", "B",
                                                             "instructions", ">=", "us", "=", "host"]
    for build, line in zip(report["builds"], out[2:]):  # the rows say what mcu.json holds
        assert line.split() == [build["optimization"], f"{build['flash_bytes']:,}", f"{build['ram_bytes']:,}",
                                f"{build['firmware_flash_bytes']:,}", f"{build['instructions_per_inference']:,}",
                                f"{build['min_microseconds_at_64MHz']:.1f}", "300/300"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_deploy_bad_inputs(tmp_path, lesson_run, capsys, mnist, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(lesson_run, run)
    (run / "model_int8.tflite").unlink(missing_ok=True)  # the session's run may be converted already
    code, err = _run(capsys, "export-c", run, "--out", tmp_path / "o")
    assert code == 2 and "no model_int8.tflite" in err
    (run / "model_int8.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\xff" * 40)
    code, err = _run(capsys, "export-c", run, "--out", tmp_path / "o")
    assert code == 2 and "not a valid .tflite model" in err and not (tmp_path / "o").exists()
    (run / "model_int8.tflite").write_bytes(b"not a model at all")
    code, err = _run(capsys, "export-c", run, "--out", tmp_path / "o")
    assert code == 2 and "model_int8.tflite: not a .tflite model" in err
    code, err = _run(capsys, "convert", tmp_path / "missing")
    assert code == 2 and "no such run folder" in err
    monkeypatch.setenv("PATH", "/nonexistent")
    code, err = _run(capsys, "mcu", lesson_run)
    assert code == 2 and "apt-get install" in err


def test_unsupported_op_is_named(tmp_path, mnist, capsys):
    """A tanh hidden layer becomes a TANH op, which the C generator does not implement."""
    from tinydigits.model import Recipe
    from tinydigits.train import save_run, train

    small = type(mnist)(mnist.name, mnist.x_train[:2000], mnist.y_train[:2000], mnist.x_test[:500], mnist.y_test[:500], mnist.folder)
    run = save_run(train(Recipe(epochs=1, activation="tanh"), small, verbose=0), tmp_path / "tanh")
    from tinydigits.convert import to_tflite
    from tinydigits.runs import Run

    (run / "model_int8.tflite").write_bytes(to_tflite(Run(run).model(), mnist.x_train[:100]))
    code, err = _run(capsys, "export-c", run, "--out", tmp_path / "o")
    assert code == 2 and "op TANH is not supported by the C generator" in err and not (tmp_path / "o").exists()


def test_conversion_does_not_depend_on_the_keras_backend(converted, tmp_path):
    """The same model.keras converts to the same float .tflite under Keras' TensorFlow backend as under JAX."""
    import os
    import sys

    from tinydigits.convert import to_tflite
    from tinydigits.runs import Run

    here = to_tflite(Run(converted).model())
    script = ("import sys, tinydigits, keras; from tinydigits.convert import to_tflite; from tinydigits.runs import Run;"
              "assert keras.backend.backend() == 'tensorflow';"
              "open(sys.argv[2], 'wb').write(to_tflite(Run(sys.argv[1]).model()))")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    subprocess.run([sys.executable, "-c", script, str(converted), str(tmp_path / "tf.tflite")], env=env, check=True,
                   capture_output=True)
    assert (tmp_path / "tf.tflite").read_bytes() == here


def test_a_library_error_without_a_message_is_still_one_line(monkeypatch):
    import ai_edge_litert.interpreter

    assert first_line(ValueError("")) == "" and first_line(ValueError("\n\n  two\nthree"), 2) == "tw"

    def no_message(*args, **kwargs):
        raise ValueError()

    monkeypatch.setattr(ai_edge_litert.interpreter, "Interpreter", no_message)
    with pytest.raises(TinyDigitsError, match=r"^not a valid \.tflite model \(\)$"):
        LiteRT(b"not a model")
