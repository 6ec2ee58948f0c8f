# kb: timeout=60
# %% [markdown]
# # Cross-attention and the Stable Diffusion transformer block
# Cross-attention takes its queries from one sequence (the pixels of a feature map) and its
# keys and values from another (the context, in Stable Diffusion the CLIP text-encoder output
# of the prompt). This snippet builds `CrossAttention` and the `SpatialTransformer` block that
# Stable Diffusion puts into its U-Net (Rombach et al. 2022, arXiv:2112.10752, section 3.3;
# layout read from CompVis/stable-diffusion, ldm/modules/attention.py), then checks
# what the context can and cannot change.
#
# Shape letters: B batch, N pixel tokens (X * Y), M context tokens, C channels, X and Y
# feature-map height and width, I inner width (heads * dim_head), K context width.

# %%
import torch
import torch.nn.functional as F
from torch import nn

from snippets.attention import scaled_dot_product_attention


# %% Cross-attention
class CrossAttention(nn.Module):
    """Multi-head attention from `x` (B, N, query_dim) to `context` (B, M, context_dim).

    Self-attention when `context` is None. Like Stable Diffusion's layer, the query, key and
    value projections have no bias and the output projection has one.
    """

    def __init__(
        self,
        query_dim,  # width of the pixel tokens
        context_dim=None,  # K, width of the context tokens (768 for CLIP ViT-L/14 in SD v1)
        heads=8,  # attention heads (8 in SD v1)
        dim_head=64,  # width of each head (SD v1 uses channels / 8: 40, 80 or 160)
    ):
        super().__init__()
        context_dim = context_dim or query_dim
        inner_dim = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def split_heads(self, x):
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.heads, -1).transpose(1, 2)  # (B, H, tokens, D)

    def forward(self, x, context=None, context_mask=None):
        """Return (B, N, query_dim). `context_mask` (B, M) is True for context tokens to use."""
        context = x if context is None else context
        mask = None if context_mask is None else context_mask[:, None, None, :]

        q = self.split_heads(self.to_q(x))  # queries come from the pixels
        k = self.split_heads(self.to_k(context))  # keys and values come from the context
        v = self.split_heads(self.to_v(context))

        out = scaled_dot_product_attention(q, k, v, mask)  # (B, H, N, D)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (B, N, I) -> (B, N, query_dim)


# %% The Stable Diffusion transformer block
class GEGLUFeedForward(nn.Module):
    """Position-wise feed-forward network with a GELU-gated hidden layer (Shazeer 2020)."""

    def __init__(self, dim, mult=4):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Linear(mult * dim, dim)

    def forward(self, x):
        hidden, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(hidden * F.gelu(gate))


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention and feed-forward, each with a residual."""

    def __init__(self, dim, heads, dim_head, context_dim):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head)  # self-attention over pixels
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)  # pixels read the context
        self.ff = GEGLUFeedForward(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, context, context_mask=None):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context, context_mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Transformer over the pixels of a (B, C, X, Y) feature map, conditioned on a context.

    Group norm, a 1x1 convolution into I = heads * dim_head channels, `depth` transformer
    blocks on the X * Y pixel tokens, and a zero-initialised 1x1 convolution back to C that is
    added to the input. At initialisation the whole block is the identity.
    """

    def __init__(
        self,
        channels,  # C, channels of the feature map (320, 640 or 1280 in SD v1)
        heads,  # attention heads (8 in SD v1)
        dim_head,  # width of each head (channels / heads in SD v1)
        context_dim,  # K, width of the context tokens (768 in SD v1)
        depth=1,  # transformer blocks in a row (1 in SD v1)
        num_groups=32,  # group-norm groups (32 in SD v1), must divide channels
    ):
        super().__init__()
        inner_dim = heads * dim_head
        self.norm = nn.GroupNorm(num_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner_dim, 1)
        self.blocks = nn.ModuleList(
            BasicTransformerBlock(inner_dim, heads, dim_head, context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Conv2d(inner_dim, channels, 1)

        # Zero weights and bias make the block start as the identity, so inserting it into a
        # trained or freshly initialised U-Net does not disturb the signal path.
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x, context, context_mask=None):
        batch, _, height, width = x.shape
        h = self.proj_in(self.norm(x))  # (B, I, X, Y)
        h = h.flatten(2).transpose(1, 2)  # (B, N, I), one token per pixel
        for block in self.blocks:
            h = block(h, context, context_mask)
        h = h.transpose(1, 2).reshape(batch, -1, height, width)  # (B, I, X, Y)
        return x + self.proj_out(h)


# %% Check against torch.nn.MultiheadAttention
if __name__ == "__main__":
    torch.manual_seed(0)
    query_dim, context_dim, heads, dim_head = 32, 24, 4, 8
    ours = CrossAttention(query_dim, context_dim, heads, dim_head).double()

    # torch's layer with separate key/value widths, biases only on the output projection.
    reference = nn.MultiheadAttention(
        query_dim, heads, kdim=context_dim, vdim=context_dim, batch_first=True
    ).double()
    with torch.no_grad():
        reference.q_proj_weight.copy_(ours.to_q.weight)
        reference.k_proj_weight.copy_(ours.to_k.weight)
        reference.v_proj_weight.copy_(ours.to_v.weight)
        reference.in_proj_bias.zero_()
        reference.out_proj.load_state_dict(ours.to_out.state_dict())

    pixels = torch.randn(2, 64, query_dim, dtype=torch.float64)  # an 8x8 map as 64 tokens
    context = torch.randn(2, 77, context_dim, dtype=torch.float64)  # 77 tokens, as CLIP's
    keep = torch.arange(77)[None, :] < torch.tensor([[77], [12]])  # second prompt padded
    expected = reference(pixels, context, context, need_weights=False)[0]
    err = (ours(pixels, context) - expected).abs().max().item()
    print(f"CrossAttention against nn.MultiheadAttention: max error {err:.2e}")
    assert err < 1e-10, f"cross-attention differs from torch by {err:.2e}"

    masked = reference(pixels, context, context, key_padding_mask=~keep, need_weights=False)[0]
    err = (ours(pixels, context, keep) - masked).abs().max().item()
    print(f"  with a padded context: max error {err:.2e}")
    assert err < 1e-10, f"masked cross-attention differs from torch by {err:.2e}"

# %% What the context changes and what it does not
if __name__ == "__main__":
    torch.manual_seed(0)
    channels, heads, dim_head, context_dim = 64, 4, 16, 48
    block = SpatialTransformer(channels, heads, dim_head, context_dim).double()
    feature_map = torch.randn(2, channels, 8, 8, dtype=torch.float64)
    context = torch.randn(2, 10, context_dim, dtype=torch.float64)

    # Zero-initialised output projection: the block is exactly the identity.
    err = (block(feature_map, context) - feature_map).abs().max().item()
    print(f"freshly built SpatialTransformer, max |out - in|: {err:.1e}")
    assert err == 0.0, f"zero-initialised block is not the identity, max change {err:.2e}"

    # Stand in for training: give the output projection random weights.
    with torch.no_grad():
        nn.init.normal_(block.proj_out.weight, std=0.1)
    out = block(feature_map, context)

    print(f"{'context tokens':>15} {'output shape':>18}")
    for tokens in (1, 10, 77):
        shape = tuple(block(feature_map, torch.randn(2, tokens, context_dim).double()).shape)
        print(f"{tokens:>15} {str(shape):>18}")
        assert shape == tuple(feature_map.shape), f"{tokens} tokens gave shape {shape}"

    # The context enters only through sums over its tokens, so their order does not matter.
    permuted = context[:, torch.randperm(10)]
    err = (block(feature_map, permuted) - out).abs().max().item()
    print(f"permuted context tokens, max |change|: {err:.1e}")
    assert err < 1e-12, f"permuting the context changed the output by {err:.2e}"

    # Different content does change the output.
    other = block(feature_map, torch.randn_like(context))
    relative = ((other - out).norm() / (out - feature_map).norm()).item()
    print(f"new context content, change relative to the block's update: {relative:.3f}")
    assert relative > 0.01, f"new context barely changed the output ({relative:.2e})"

    # One context token gets softmax weight 1 from every pixel, so cross-attention adds the
    # same vector to every pixel: to_out(to_v(c)).
    single = context[:, :1]
    attn2 = block.blocks[0].attn2
    query = torch.randn(2, 64, heads * dim_head, dtype=torch.float64)
    added = attn2(query, single)
    err = (added - attn2.to_out(attn2.to_v(single))).abs().max().item()
    print(f"one context token, max |output - to_out(to_v(c))| over all pixels: {err:.1e}")
    assert err < 1e-12, f"single-token cross-attention is not constant, error {err:.2e}"

# %% Which pixels read which context token
if __name__ == "__main__":
    import matplotlib.pyplot as plt

    # A 16x16 map whose left half carries feature 0 and right half feature 1, and two context
    # tokens aligned with those features. Identity projections make the attention map visible.
    torch.manual_seed(0)
    width = 8
    attention = CrossAttention(width, width, heads=1, dim_head=width).double()
    with torch.no_grad():
        for proj in (attention.to_q, attention.to_k, attention.to_v):
            proj.weight.copy_(torch.eye(width))
    image = 0.1 * torch.randn(1, 16, 16, width, dtype=torch.float64)
    image[:, :, :8, 0] += 3.0
    image[:, :, 8:, 1] += 3.0
    words = torch.zeros(1, 2, width, dtype=torch.float64)
    words[0, 0, 0] = words[0, 1, 1] = 3.0

    pixels = image.reshape(1, 256, width)  # (B, N, C), row-major pixels
    with torch.no_grad():
        scores = attention.to_q(pixels) @ attention.to_k(words).transpose(1, 2) / width**0.5
    weights = scores.softmax(dim=-1).reshape(16, 16, 2)  # (X, Y, M)
    left, right = weights[:, :8, 0].mean().item(), weights[:, 8:, 0].mean().item()
    print(f"weight on context token 0: left half {left:.3f}, right half {right:.3f}")
    assert left > 0.9 > 0.1 > right, f"token 0 weights: left {left:.3f}, right {right:.3f}"

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    for index, ax in enumerate(axes):
        ax.imshow(weights[:, :, index], vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"attention to context token {index}")
        ax.axis("off")
    plt.show()
