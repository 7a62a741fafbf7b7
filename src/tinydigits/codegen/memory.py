"""Where each activation lives: tensor lifetimes -> offsets in one arena, and its peak size.

Every activation (the model's input, each op's output, each op's scratch) is live from the step
that writes it to the last step that reads it; a RESHAPE's output is its input's bytes, so the two
share one buffer and one lifetime. Buffers are placed greedily, largest first, each at the lowest
offset that overlaps no buffer live at the same time (the strategy of TFLM's GreedyMemoryPlanner):
in a chain of ops that is two buffers taking turns, and in general close to the peak of the bytes
live at once. Offsets are multiples of ALIGN, so a kernel may read 4 bytes at a time.

    plan = plan_arena(steps)       # plan.size (bytes), plan.offset[tensor.index], plan.scratch[step index]
"""
from __future__ import annotations

from dataclasses import dataclass

ALIGN = 4


@dataclass
class Buffer:
    key: tuple           # ("tensor", index) or ("scratch", step)
    size: int
    first: int           # the step that writes it (-1: the model's input, written by the caller)
    last: int            # the last step that reads it (len(steps): the output, read by the caller)
    offset: int = -1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class ArenaPlan:
    size: int                      # bytes: the arena the model needs
    offset: dict                   # tensor index -> byte offset
    scratch: dict                  # step index -> byte offset of its scratch
    live_peak: int                 # the most bytes live at any one step (a lower bound on `size`)


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_arena(steps: list, model_input, model_output) -> ArenaPlan:
    """`steps`: the planned ops in order (codegen.ops.Step, with spec.alias for RESHAPE)."""
    owner = {}    # tensor index -> the tensor index whose buffer holds it
    buffers = {}

    def buffer_of(tensor) -> Buffer:
        return buffers[("tensor", owner[tensor.index])]

    owner[model_input.index] = model_input.index
    buffers[("tensor", model_input.index)] = Buffer(("tensor", model_input.index), model_input.size, -1, -1)
    for i, (step, alias) in enumerate(steps):
        node = step.node
        for t in node.inputs:
            if t is not None and not t.constant:
                buffer_of(t).last = max(buffer_of(t).last, i)
        out = node.outputs[0]
        if alias:
            owner[out.index] = owner[node.inputs[0].index]
            continue
        owner[out.index] = out.index
        buffers[("tensor", out.index)] = Buffer(("tensor", out.index), out.size, i, i)
        if step.scratch_bytes:
            buffers[("scratch", i)] = Buffer(("scratch", i), step.scratch_bytes, i, i)
    buffer_of(model_output).last = len(steps)

    placed: list[Buffer] = []
    for b in sorted(buffers.values(), key=lambda b: (-b.size, b.first, str(b.key))):
        offset = 0
        for other in sorted((o for o in placed if o.overlaps_in_time(b)), key=lambda o: o.offset):
            if offset + b.size <= other.offset:
                break
            offset = max(offset, _round_up(other.offset + other.size))
        b.offset = offset
        placed.append(b)
    size = max((b.offset + b.size for b in placed), default=0)
    moments = sorted({b.first for b in placed} | {b.last for b in placed})
    live_peak = max((sum(b.size for b in placed if b.first <= m <= b.last) for m in moments), default=0)
    return ArenaPlan(size, {t: buffers[("tensor", o)].offset for t, o in owner.items()},
                     {key[1]: b.offset for key, b in buffers.items() if key[0] == "scratch"}, live_peak)
