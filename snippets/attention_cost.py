# kb: timeout=60
# %% [markdown]
# # Time and memory of linear and softmax attention at U-Net token counts
# Measures the attention core with the sizes of the default U-Net of
# lucidrains/denoising-diffusion-pytorch (heads 4, dim_head 32), batch 1, float32. Three forms
# are compared. The first is the linear attention of that U-Net. The second is softmax
# attention that materialises the N x N matrix, which the U-Net's `Attention` computes by
# default. The third is torch's fused `F.scaled_dot_product_attention`, which never stores
# the whole matrix. Token counts are those of each U-Net stage for 32 to 256 px
# images. The softmax forms stop at a cap and are extrapolated as N^2 beyond it.
#
# Shape letters: B batch, H heads, N tokens, D dim_head.

# %%
import contextlib
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from snippets.attention import scaled_dot_product_attention
from snippets.linear_attention import linear_attention

HEADS, DIM_HEAD = 4, 32
IMAGE_SIZES = (32, 64, 128, 256)


# %% Measuring one call
@contextlib.contextmanager
def native_stderr_discarded():
    """Point file descriptor 2 at /dev/null inside the block, then restore it.

    The torch profiler's kineto backend (torch 2.13) writes `USDT: ... profiler_start` and
    `profiler_stop` lines to the process's C-level stderr on every start and stop, and
    KINETO_LOG_LEVEL does not turn them off. Python exceptions still propagate normally.
    """
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)


def peak_allocated_bytes(fn):
    """Return the peak of CPU bytes allocated and not yet freed while `fn()` runs.

    Replays the allocation and free events that the torch profiler records, in time order.
    Memory allocated before the call (the inputs) is not counted.
    """
    with native_stderr_discarded():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    changes = []
    for event in prof.events():
        if event.name == "[memory]" and event.cpu_memory_usage < 0:
            changes.append((event.time_range.start, event.cpu_memory_usage))
        elif event.name != "[memory]" and event.self_cpu_memory_usage > 0:
            changes.append((event.time_range.start, event.self_cpu_memory_usage))
    current = peak = 0
    for _, change in sorted(changes):
        current += change
        peak = max(peak, current)
    return peak


def cpu_seconds(fn, budget=0.05, repeats=3):
    """Return the smallest per-call CPU time of `fn()` over `repeats` timed loops.

    CPU time of this process (user plus system) rather than wall time, because on a machine
    shared with other jobs the wall time mostly measures how long the process waited. Each
    loop runs enough calls to last about `budget` seconds, and a call slower than 0.2 s is
    timed once more after the first call.
    """
    start = time.process_time()
    fn()
    first = time.process_time() - start
    calls = max(1, int(budget / max(first, 1e-6)))
    best = first
    for _ in range(repeats if first < 0.2 else 1):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - start) / calls)
    return best


def unet_stages(image_size):
    """Return (stage, side, tokens, kind) rows for the default U-Net at faed4db.

    dim_mults (1, 2, 4, 8) gives four encoder stages at sides S, S/2, S/4, S/8, the middle at
    S/8, and the mirrored decoder stages. Full attention is the default only in the innermost
    encoder and decoder stage (full_attn = (False, False, False, True)) and the middle.
    """
    rows = []
    for level in range(4):
        side = image_size // 2**level
        kind = "softmax" if level == 3 else "linear"
        rows.append((f"down {level + 1} / up {4 - level}", side, side * side, kind))
    side = image_size // 8
    rows.append(("middle", side, side * side, "softmax"))
    return rows


ATTENTION_KINDS = {
    "linear": linear_attention,
    "softmax, materialised": scaled_dot_product_attention,
    "softmax, fused": F.scaled_dot_product_attention,
}


# %% Sweep over token counts
if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)

    # Caps keep the run within seconds: the materialised form at 4096 tokens already stores
    # two 4 x 4096 x 4096 float32 matrices (512 MiB).
    caps = {"linear": 65536, "softmax, materialised": 4096, "softmax, fused": 4096}
    token_counts = sorted({2**p for p in range(4, 13)} | {4**p for p in range(2, 9)})

    # The memory probe must report a known allocation: one million float32 values, 4 MB.
    probe = peak_allocated_bytes(lambda: torch.empty(1000, 1000))
    assert 4_000_000 <= probe < 4_100_000, f"probe measured {probe} bytes for 4 MB"

    measured = {}  # (kind, tokens) -> (seconds, peak bytes)
    for tokens in token_counts:
        q, k, v = (torch.randn(1, HEADS, tokens, DIM_HEAD) for _ in range(3))
        for kind, attend in ATTENTION_KINDS.items():
            if tokens > caps[kind]:
                continue
            seconds = cpu_seconds(lambda: attend(q, k, v))
            measured[kind, tokens] = (seconds, peak_allocated_bytes(lambda: attend(q, k, v)))

    # The materialised form keeps the scaled scores and the softmax weights, two float32
    # (H, N, N) matrices, at the same time, plus the (H, N, D) output.
    for tokens in (1024, 4096):
        formula = (2 * HEADS * tokens * tokens + HEADS * tokens * DIM_HEAD) * 4
        peak = measured["softmax, materialised", tokens][1]
        print(f"materialised softmax at {tokens} tokens: {peak / 2**20:.1f} MiB measured,"
              f" {formula / 2**20:.1f} MiB from 2 H N^2 + H N D float32 values")
        assert abs(peak - formula) <= 0.01 * formula, f"measured {peak} bytes, formula {formula}"

    # Same result from the fused and the materialised form, in float32.
    q, k, v = (torch.randn(1, HEADS, 1024, DIM_HEAD) for _ in range(3))
    err = (F.scaled_dot_product_attention(q, k, v) - scaled_dot_product_attention(q, k, v))
    print(f"fused against materialised softmax at 1024 tokens: max error {err.abs().max():.1e}")
    assert err.abs().max() < 1e-5, f"fused and materialised softmax differ by {err.abs().max()}"

# %% Extrapolation and table
if __name__ == "__main__":

    def estimate(kind, tokens):
        """Return (seconds, bytes, extrapolated) with N^2 scaling from the largest run."""
        if (kind, tokens) in measured:
            return (*measured[kind, tokens], False)
        largest = max(n for (name, n) in measured if name == kind)
        seconds, peak = measured[kind, largest]
        factor = (tokens / largest) ** 2
        # NOTE: the fused kernel's memory grows as N, not N^2, so its estimate is scaled by N.
        memory_factor = tokens / largest if kind == "softmax, fused" else factor
        return seconds * factor, peak * memory_factor, True

    def format_cell(kind, tokens):
        seconds, peak, extrapolated = estimate(kind, tokens)
        mark = "*" if extrapolated else " "
        return f"{seconds * 1e3:>10.2f}{mark} {peak / 2**20:>9.1f}{mark}"

    header = f"{'tokens':>7} | " + " | ".join(f"{kind:^23}" for kind in ATTENTION_KINDS)
    print(header)
    print(f"{'':>7} | " + " | ".join(f"{'ms':>11} {'MiB':>10}" for _ in ATTENTION_KINDS))
    for tokens in token_counts:
        print(f"{tokens:>7} | " + " | ".join(format_cell(kind, tokens) for kind in ATTENTION_KINDS))
    print("* extrapolated from the largest measured size (time as N^2, memory as N^2 or N)")

    # Crossover: the smallest measured N from which linear attention stays faster.
    slower = [
        n
        for n in token_counts
        if ("softmax, materialised", n) in measured
        and measured["linear", n][0] >= measured["softmax, materialised", n][0]
    ]
    crossover = min(n for n in token_counts if n > max(slower, default=0))
    print(f"linear attention is faster than materialised softmax from {crossover} tokens on")

    # Operation counts predict a time ratio of about N / D. The measured ratio depends on the
    # CPU, its BLAS library and the thread count.
    print(f"{'tokens':>7} {'N / D':>7} {'materialised / linear':>22} {'fused / linear':>15}")
    for tokens in token_counts:
        if ("softmax, fused", tokens) not in measured:
            continue
        linear_seconds = measured["linear", tokens][0]
        ratios = [measured[kind, tokens][0] / linear_seconds for kind in list(ATTENTION_KINDS)[1:]]
        print(f"{tokens:>7} {tokens / DIM_HEAD:>7.1f} {ratios[0]:>22.1f} {ratios[1]:>15.1f}")
    big = 4096
    ratio = measured["softmax, materialised", big][0] / measured["linear", big][0]
    assert ratio > 10, f"expected softmax to be much slower at {big} tokens, ratio {ratio:.1f}"

# %% Per U-Net stage
if __name__ == "__main__":
    print(f"{'image':>5} {'stage':<16} {'side':>4} {'tokens':>6} {'GitHub kind':<11}"
          f" {'linear ms':>10} {'softmax ms':>11} {'softmax MiB':>12}")
    for image_size in IMAGE_SIZES:
        for stage, side, tokens, kind in unet_stages(image_size):
            linear_ms = estimate("linear", tokens)[0] * 1e3
            softmax_s, softmax_bytes, extrapolated = estimate("softmax, materialised", tokens)
            mark = "*" if extrapolated else " "
            print(f"{image_size:>5} {stage:<16} {side:>4} {tokens:>6} {kind:<11}"
                  f" {linear_ms:>10.2f} {softmax_s * 1e3:>10.2f}{mark}"
                  f" {softmax_bytes / 2**20:>11.1f}{mark}")

# %% Figure
if __name__ == "__main__":
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_memory) = plt.subplots(1, 2, figsize=(9, 3.5))
    for kind in ATTENTION_KINDS:
        sizes = [n for n in token_counts if (kind, n) in measured]
        ax_time.plot(sizes, [measured[kind, n][0] * 1e3 for n in sizes], "o-", label=kind)
        ax_memory.plot(sizes, [max(measured[kind, n][1], 1) / 2**20 for n in sizes], "o-")
    for ax, label in ((ax_time, "CPU time per call (ms)"), (ax_memory, "peak allocated (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tokens N")
        ax.set_ylabel(label)
        for side in (4, 8, 16, 32, 64, 128, 256):
            ax.axvline(side * side, color="grey", lw=0.5)
    ax_time.legend(fontsize=8)
    fig.suptitle("Attention core, 4 heads x 32 dims, 1 thread (grey: U-Net stage sizes)")
    fig.tight_layout()
    plt.show()
