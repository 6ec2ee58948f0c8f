# kb: timeout=60
# %% [markdown]
# # Scaled dot-product attention from scratch
# Scaled dot-product attention, multi-head attention, padding and causal masks and the
# sinusoidal position encoding of Vaswani et al. (2017), "Attention Is All You Need",
# arXiv:1706.03762, eq. (1) and sections 3.2.2 and 3.5. Each piece is checked against its
# PyTorch counterpart in float64. The file also contains `Attention`, full self-attention over a
# feature map, shaped like the middle-stage attention of the DDPM U-Net in
# lucidrains/denoising-diffusion-pytorch.
#
# Shape letters: B batch, H heads, N query tokens, M key tokens, D dim_head, E embed_dim,
# C channels, X and Y feature-map height and width.

# %%
import math

import torch
import torch.nn.functional as F
from torch import nn


# %% Scaled dot-product attention
def scaled_dot_product_attention(q, k, v, mask=None):
    """Compute softmax(q k^T / sqrt(D)) v, eq. (1) of Vaswani et al. (2017).

    q is (B, H, N, D), k is (B, H, M, D) and v is (B, H, M, Dv). `mask` is boolean and
    broadcastable to (B, H, N, M), and True means the query may attend to that key. A query row
    whose keys are all masked out gets NaN here, because its row maximum is -inf and softmax
    computes -inf - (-inf). torch 2.13's `F.scaled_dot_product_attention` returns zeros for
    such a row instead. On CPU, both its default kernel and its math fallback (which calls
    `aten._safe_softmax`) set the weights of a row with no visible key to zero.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, M)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # each row is a distribution over the M keys
    return weights @ v  # (B, H, N, Dv)


def causal_mask(num_tokens, device=None):
    """Return the (N, N) boolean mask that lets token i attend to tokens 0..i only."""
    return torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=device).tril()


def padding_mask(lengths, num_tokens):
    """Return a (B, 1, 1, M) mask that hides key positions at or past each sequence's length."""
    positions = torch.arange(num_tokens, device=lengths.device)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]


# %% Multi-head attention
class MultiHeadAttention(nn.Module):
    """Multi-head attention of Vaswani et al. (2017), section 3.2.2, on batch-first (B, N, E) inputs.

    Each head attends in its own D = E / H dimensional subspace, and the heads' outputs are
    concatenated and projected back to E.
    """

    def __init__(
        self,
        embed_dim,  # E, width of the token vectors (512 in the paper's base model)
        num_heads,  # H, number of heads (8 in the paper), must divide embed_dim
        bias=True,  # whether the four projections have biases (torch's default is True)
        kdim=None,  # width of the key inputs, embed_dim when None
        vdim=None,  # width of the value inputs, embed_dim when None
    ):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def split_heads(self, x):
        batch, tokens, width = x.shape
        x = x.view(batch, tokens, self.num_heads, width // self.num_heads)  # (B, N, H, D)
        return x.transpose(1, 2)  # (B, H, N, D)

    def forward(self, query, key=None, value=None, mask=None):
        """Attend from `query` (B, N, E) to `key` and `value` (B, M, E), self-attention when
        they are None. `mask` follows `scaled_dot_product_attention`: True means may attend."""
        key = query if key is None else key
        value = key if value is None else value

        q = self.split_heads(self.q_proj(query))
        k = self.split_heads(self.k_proj(key))
        v = self.split_heads(self.v_proj(value))

        out = scaled_dot_product_attention(q, k, v, mask)  # (B, H, N, D)
        out = out.transpose(1, 2).flatten(2)  # (B, N, H * D)
        return self.out_proj(out)

    @torch.no_grad()
    def copy_weights_from(self, torch_mha):
        """Copy the weights of a `torch.nn.MultiheadAttention` with the same sizes."""
        if torch_mha.in_proj_weight is None:
            raise ValueError("copy_weights_from needs a torch module with a packed in_proj_weight")
        for proj, weight in zip(
            (self.q_proj, self.k_proj, self.v_proj), torch_mha.in_proj_weight.chunk(3)
        ):
            proj.weight.copy_(weight)
        if torch_mha.in_proj_bias is not None:
            for proj, bias in zip(
                (self.q_proj, self.k_proj, self.v_proj), torch_mha.in_proj_bias.chunk(3)
            ):
                proj.bias.copy_(bias)
        self.out_proj.load_state_dict(torch_mha.out_proj.state_dict())
        return self


# %% Sinusoidal position encoding
def sinusoidal_position_encoding(num_positions, dim):
    """Return the (num_positions, dim) encoding of Vaswani et al. (2017), section 3.5.

    PE[pos, 2i] = sin(pos / 10000^(2i / dim)) and PE[pos, 2i + 1] = cos(pos / 10000^(2i / dim)),
    so even columns contain sines and odd columns cosines of the same frequency.
    """
    if dim % 2 != 0:
        raise ValueError(f"dim must be even for interleaved sin/cos pairs, got {dim}")
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = position * frequency  # (num_positions, dim / 2)
    encoding = torch.empty(num_positions, dim, dtype=torch.float64)
    encoding[:, 0::2] = angle.sin()
    encoding[:, 1::2] = angle.cos()
    return encoding.to(torch.get_default_dtype())


# %% Full attention over a feature map
class ChannelRMSNorm(nn.Module):
    """RMS normalisation over the channel axis of a (B, C, X, Y) map with a learned gain.

    Computes x / ||x|| * sqrt(C) * g per pixel, the `RMSNorm` of the DDPM GitHub U-Net.
    """

    def __init__(self, channels):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x):
        return F.normalize(x, dim=1) * self.gain * x.shape[1] ** 0.5


class Attention(nn.Module):
    """Multi-head softmax self-attention over the X * Y pixels of a (B, C, X, Y) feature map.

    Mirrors the middle-stage `Attention` of lucidrains/denoising-diffusion-pytorch (commit
    faed4db): RMS pre-norm, 1x1-convolution projections, `num_mem_kv` learned key/value pairs
    that every query can also attend to, and a 1x1-convolution output. The block returns the
    attention branch only, and the caller adds the residual (`x + attn(x)`).
    """

    def __init__(
        self,
        dim,  # C, channels of the feature map
        heads=4,  # H, attention heads (4 in the GitHub U-Net)
        dim_head=32,  # D, width of each head (32 in the GitHub U-Net)
        num_mem_kv=4,  # learned memory key/value pairs per head, 0 for none (4 on GitHub)
    ):
        super().__init__()
        self.heads = heads
        hidden_dim = heads * dim_head
        self.norm = ChannelRMSNorm(dim)
        self.mem_kv = nn.Parameter(torch.randn(2, heads, num_mem_kv, dim_head))
        self.to_qkv = nn.Conv2d(dim, hidden_dim * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x):
        batch, _, height, width = x.shape
        x = self.norm(x)

        q, k, v = self.to_qkv(x).chunk(3, dim=1)  # each (B, H * D, X, Y)
        q, k, v = (t.reshape(batch, self.heads, -1, height * width) for t in (q, k, v))
        q, k, v = (t.transpose(-2, -1) for t in (q, k, v))  # each (B, H, X * Y, D)

        mem_k, mem_v = (t.expand(batch, -1, -1, -1) for t in self.mem_kv)  # (B, H, mem, D)
        k = torch.cat((mem_k, k), dim=-2)  # (B, H, mem + X * Y, D)
        v = torch.cat((mem_v, v), dim=-2)

        out = scaled_dot_product_attention(q, k, v)  # (B, H, X * Y, D)
        out = out.transpose(-2, -1).reshape(batch, -1, height, width)  # (B, H * D, X, Y)
        return self.to_out(out)


# %% Check against torch
if __name__ == "__main__":
    torch.manual_seed(0)
    batch, heads, tokens, dim_head = 2, 4, 7, 16
    q, k, v = (torch.randn(batch, heads, tokens, dim_head, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([7, 4])

    cases = {
        "no mask": (None, {}),
        "boolean padding mask": (padding_mask(lengths, tokens), {}),
        "causal mask": (causal_mask(tokens), {"is_causal": True}),
    }
    print(f"{'case':<22} {'max |ours - torch|':>20}")
    for name, (mask, torch_kwargs) in cases.items():
        ours = scaled_dot_product_attention(q, k, v, mask)
        torch_mask = mask if not torch_kwargs else None
        reference = F.scaled_dot_product_attention(q, k, v, attn_mask=torch_mask, **torch_kwargs)
        err = (ours - reference).abs().max().item()
        print(f"{name:<22} {err:>20.2e}")
        assert err < 1e-10, f"{name}: max error {err:.2e} against torch"

    # Query 2 may attend to no key. The two implementations differ on that row only.
    blind_query = 2
    blind_mask = torch.ones(tokens, tokens, dtype=torch.bool)
    blind_mask[blind_query] = False
    ours = scaled_dot_product_attention(q, k, v, blind_mask)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=blind_mask)
    rows_with_keys = torch.arange(tokens) != blind_query
    err = (ours[..., rows_with_keys, :] - reference[..., rows_with_keys, :]).abs().max().item()
    print(f"fully masked row: ours {ours[0, 0, blind_query, 0].item()}, "
          f"torch {reference[0, 0, blind_query, 0].item()}, other rows max error {err:.2e}")
    assert ours[..., blind_query, :].isnan().all(), "ours: expected NaN on the fully masked row"
    assert (reference[..., blind_query, :] == 0).all(), "torch: expected 0 on the fully masked row"
    assert err < 1e-10, f"rows with visible keys: max error {err:.2e} against torch"

# %% Multi-head attention against torch.nn.MultiheadAttention
if __name__ == "__main__":
    torch.manual_seed(0)
    embed_dim, num_heads = 32, 4
    reference = nn.MultiheadAttention(embed_dim, num_heads, batch_first=True).double()
    ours = MultiHeadAttention(embed_dim, num_heads).double().copy_weights_from(reference)
    x = torch.randn(batch, tokens, embed_dim, dtype=torch.float64)
    memory = torch.randn(batch, 5, embed_dim, dtype=torch.float64)

    # torch's masks mark the positions to hide, ours the positions to keep.
    hide_padding = ~padding_mask(lengths, tokens)[:, 0, 0, :]  # (B, M)
    hide_future = ~causal_mask(tokens)  # (N, M)
    cases = {
        "self-attention": (ours(x), reference(x, x, x, need_weights=False)[0]),
        "cross-attention": (
            ours(x, memory),
            reference(x, memory, memory, need_weights=False)[0],
        ),
        "padding mask": (
            ours(x, mask=padding_mask(lengths, tokens)),
            reference(x, x, x, key_padding_mask=hide_padding, need_weights=False)[0],
        ),
        "causal mask": (
            ours(x, mask=causal_mask(tokens)),
            reference(x, x, x, attn_mask=hide_future, need_weights=False)[0],
        ),
    }
    print(f"{'MultiHeadAttention':<22} {'max |ours - torch|':>20}")
    for name, (out, expected) in cases.items():
        err = (out - expected).abs().max().item()
        print(f"{name:<22} {err:>20.2e}")
        assert err < 1e-10, f"{name}: max error {err:.2e} against nn.MultiheadAttention"

# %% Position encoding
if __name__ == "__main__":
    import matplotlib.pyplot as plt

    encoding = sinusoidal_position_encoding(64, 32)
    assert encoding.shape == (64, 32)
    # sin^2 + cos^2 = 1 for each pair of columns that share a frequency.
    pair_norm = encoding[:, 0::2] ** 2 + encoding[:, 1::2] ** 2
    assert torch.allclose(pair_norm, torch.ones_like(pair_norm), atol=1e-6)
    # The encoding of pos + offset is a fixed rotation of the encoding of pos, per pair.
    offset = 5
    angle = offset * torch.exp(-math.log(10000.0) * torch.arange(0, 32, 2) / 32)
    sin_next = encoding[:-offset, 0::2] * angle.cos() + encoding[:-offset, 1::2] * angle.sin()
    err = (sin_next - encoding[offset:, 0::2]).abs().max().item()
    print(f"rotation by a fixed offset of {offset}: max error {err:.2e}")
    assert err < 1e-5, f"shifted encoding is not a rotation, max error {err:.2e}"

    fig, ax = plt.subplots(figsize=(8, 3))
    ax.imshow(encoding.T, aspect="auto", cmap="RdBu")
    ax.set_xlabel("position")
    ax.set_ylabel("column (even: sin, odd: cos)")
    ax.set_title("Sinusoidal position encoding, 64 positions x 32 columns")
    plt.show()

# %% Feature-map attention
if __name__ == "__main__":
    torch.manual_seed(0)
    block = Attention(64, heads=4, dim_head=32).double()
    feature_map = torch.randn(2, 64, 8, 8, dtype=torch.float64)
    out = block(feature_map)
    assert out.shape == feature_map.shape

    # Recompute with torch's attention on the same projections and memory key/values.
    with torch.no_grad():
        normed = block.norm(feature_map)
        q, k, v = block.to_qkv(normed).chunk(3, dim=1)
        q, k, v = (t.reshape(2, 4, 32, 64).transpose(-2, -1) for t in (q, k, v))
        k = torch.cat((block.mem_kv[0].expand(2, -1, -1, -1), k), dim=-2)
        v = torch.cat((block.mem_kv[1].expand(2, -1, -1, -1), v), dim=-2)
        expected = F.scaled_dot_product_attention(q, k, v)
        expected = block.to_out(expected.transpose(-2, -1).reshape(2, 128, 8, 8))
    err = (out - expected).abs().max().item()
    print(f"Attention on a 8x8 map with 4 memory key/values: max error {err:.2e}")
    assert err < 1e-10, f"feature-map attention differs from torch by {err:.2e}"
