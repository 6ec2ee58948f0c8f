# kb: timeout=60
# %% [markdown]
# # Exact attention in tiles with an online softmax
# The idea behind memory-efficient attention (Rabe and Staats 2021, arXiv:2112.05682) and
# FlashAttention (Dao et al. 2022, arXiv:2205.14135): walk over the keys in blocks, keep for
# each query a running maximum, a running softmax denominator and a running weighted sum of
# values, and rescale them whenever the maximum grows. The result is exactly softmax
# attention, but no N x M matrix is ever stored. This is a readable PyTorch loop, not a fused
# kernel, so it saves memory but not time.
#
# Shape letters: B batch, H heads, N query tokens, M key tokens, T key tile, D dim_head.

# %%
import math

import torch
import torch.nn.functional as F

from snippets.attention import scaled_dot_product_attention
from snippets.attention_cost import peak_allocated_bytes


# %% Tiled attention
def tiled_attention(q, k, v, tile_size=256):
    """Compute softmax(q k^T / sqrt(D)) v one tile of `tile_size` keys at a time.

    Per query it stores the running max m, denominator l and numerator acc, so memory grows
    as N * tile_size instead of N * M.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    batch, heads, num_queries, _ = q.shape
    running_max = q.new_full((batch, heads, num_queries, 1), float("-inf"))
    denominator = q.new_zeros((batch, heads, num_queries, 1))
    accumulator = q.new_zeros((batch, heads, num_queries, v.shape[-1]))

    for start in range(0, k.shape[-2], tile_size):
        k_tile = k[..., start : start + tile_size, :]  # (B, H, T, D)
        v_tile = v[..., start : start + tile_size, :]
        scores = q @ k_tile.transpose(-2, -1) * scale  # (B, H, N, T), one tile only

        # A larger maximum shrinks everything summed so far by exp(old max - new max).
        new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
        correction = torch.exp(running_max - new_max)
        weights = torch.exp(scores - new_max)

        denominator = denominator * correction + weights.sum(dim=-1, keepdim=True)
        accumulator = accumulator * correction + weights @ v_tile
        running_max = new_max

    return accumulator / denominator


# %% Check against torch
if __name__ == "__main__":
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 300, 32, dtype=torch.float64) for _ in range(3))
    reference = F.scaled_dot_product_attention(q, k, v)
    print(f"{'tile size':>9} {'max |tiled - torch|':>20}")
    for tile_size in (1, 7, 64, 300):
        err = (tiled_attention(q, k, v, tile_size) - reference).abs().max().item()
        print(f"{tile_size:>9} {err:>20.2e}")
        assert err < 1e-10, f"tile size {tile_size}: max error {err:.2e}"

    # Scores of +-1000 overflow exp() without the running maximum, but not here.
    err = (tiled_attention(q * 300, k, v, 64) - F.scaled_dot_product_attention(q * 300, k, v))
    print(f"scores scaled by 300: max error {err.abs().max().item():.2e}")
    assert err.abs().max() < 1e-10, f"large scores: max error {err.abs().max():.2e}"

# %% Memory against the materialised matrix
if __name__ == "__main__":
    torch.set_num_threads(1)
    print("peak allocated memory, 4 heads x 32 dims, float32, tiles of 128 keys")
    print(f"{'tokens':>6} {'materialised MiB':>17} {'tiled MiB':>10} {'torch fused MiB':>16}")
    for tokens in (1024, 2048, 4096):
        q, k, v = (torch.randn(1, 4, tokens, 32) for _ in range(3))
        sizes = [
            peak_allocated_bytes(lambda: scaled_dot_product_attention(q, k, v)),
            peak_allocated_bytes(lambda: tiled_attention(q, k, v, 128)),
            peak_allocated_bytes(lambda: F.scaled_dot_product_attention(q, k, v)),
        ]
        print(f"{tokens:>6} " + " ".join(f"{s / 2**20:>{w}.1f}" for s, w in zip(sizes, (17, 10, 16))))
        matrix_bytes = 4 * tokens * tokens * 4  # one float32 (H, N, N) matrix
        assert sizes[0] >= matrix_bytes, f"materialised form used only {sizes[0]} bytes"

    # The tiled loop keeps a few (H, N, 128) tiles alive, so it grows as N, not N^2.
    assert sizes[1] < matrix_bytes / 4, f"tiled form used {sizes[1]} bytes at {tokens} tokens"
