"""Where a model's instructions go on the Cortex-M4: each op's share of one inference, measured.

QEMU counts the instructions of a whole inference (targets.arm); to split them by op, the model's C
is built once per op with `run()` returning after that op, and each op's cost is the difference
from the build before it. The outputs of the truncated builds are not checked (they are not the
model's); the full build's are, against the host's.

    python bench/op_profile.py runs/k8                 # -Os, as `boards` builds it
    python bench/op_profile.py runs/k8 --optimization -O2
"""
import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def truncated(source: str, ops: int) -> str:
    """The model's C with run() returning after its first `ops` op calls: a check of a volatile after every
    call (the same few instructions in every build, so they cancel in the differences) keeps every table used."""
    head, body = source.split("static void run(int8_t *arena) {\n", 1)
    body, tail = body.split("\n}\n", 1)
    kept, seen = [f"    if (stop_after == 0) return;"], 0
    for line in body.split("\n"):
        if line.strip().startswith("/*") and seen:
            kept.append(f"    if (stop_after == {seen}) return;")
        seen += line.strip().startswith("/*")
        kept.append(line)
    return (head + f"static volatile int stop_after = {ops};\n\nstatic void run(int8_t *arena) {{\n" + "\n".join(kept)
            + "\n}\n" + tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--optimization", default="-Os")
    parser.add_argument("--images", type=int, default=3)
    args = parser.parse_args()

    from tinydigits.boards import model_c
    from tinydigits.codegen import read_facts
    from tinydigits.runs import Run
    from tinydigits.targets import arm, find

    board = find("nano33ble")
    with model_c(Run(args.run), args.images, "bench/op_profile.py") as (c_dir, inputs, host_outputs):
        facts = read_facts(c_dir)
        source = (c_dir / "tinydigits_model.c").read_text()
        calls = len(re.findall(r"^    /\* ", source.split("static void run(int8_t *arena) {\n", 1)[1].split("\n}\n")[0], re.M))
        counts = []
        with tempfile.TemporaryDirectory() as work:
            for ops in range(calls + 1):
                (c_dir / "tinydigits_model.c").write_text(truncated(source, ops))
                firmware = arm.build(c_dir, board, Path(work) / str(ops), args.optimization)
                outputs, figures = arm.run(firmware, inputs)
                counts.append(figures["instructions_per_inference"])
        assert (outputs == host_outputs).all(), "the full build's outputs differ from the host's"
        executed = [op for op in facts["ops"] if op["op"] != "RESHAPE"]
        print(f"{args.run} on {board.name}, {args.optimization}: {counts[-1]:,} instructions, {facts['macs']:,} MACs, "
              f"{counts[-1] / facts['macs']:.2f} per MAC")
        print(f"{'op':24} {'shape in':>16} {'MACs':>9} {'instructions':>13} {'per MAC':>8}")
        print(f"{'(call, copy in/out)':24} {'':>16} {'':>9} {counts[0]:>13,}")
        for op, before, after in zip(executed, counts, counts[1:]):
            cost = after - before
            per = f"{cost / op['macs']:.2f}" if op["macs"] else ""
            print(f"{op['op']:24} {'x'.join(map(str, op['input_shape'][1:])):>16} {op['macs']:>9,} {cost:>13,} {per:>8}")


if __name__ == "__main__":
    main()
