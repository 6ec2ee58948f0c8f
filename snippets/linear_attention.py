# kb: timeout=60
# %% [markdown]
# # The linear attention of the DDPM GitHub U-Net
# `LinearAttention` in lucidrains/denoising-diffusion-pytorch (file
# denoising_diffusion_pytorch/denoising_diffusion_pytorch.py, commit faed4db) is the
# "efficient attention" of Shen et al. (2021), arXiv:1812.01243: a softmax over the
# feature axis of each query, a softmax over the token axis of each key feature, and the
# product computed as q (k^T v) so that no N x N matrix exists. This snippet implements it,
# checks the O(N D^2) form against the explicit N x N form, and shows that every row of the
# implied attention map sums to dim_head**-0.5.
#
# Shape letters: B batch, H heads, N query tokens, M key tokens, D dim_head, C channels,
# X and Y feature-map height and width.

# %%
import torch
from torch import nn

from snippets.attention import ChannelRMSNorm


# %% Linear attention
def linear_attention(q, k, v):
    """Compute softmax_D(q) * D**-0.5 @ (softmax_M(k)^T @ v) in O(N D^2) time and memory.

    q is (B, H, N, D), k is (B, H, M, D) and v is (B, H, M, Dv). The softmax of q runs over
    the feature axis, the softmax of k over the token axis, and the scale D**-0.5 multiplies q
    after its softmax, as in the DDPM GitHub model. Returns (B, H, N, Dv).
    """
    scale = q.shape[-1] ** -0.5
    q = q.softmax(dim=-1) * scale  # each query row: a distribution over the D features
    k = k.softmax(dim=-2)  # each key column: a distribution over the M tokens
    context = k.transpose(-2, -1) @ v  # (B, H, D, Dv), the only cross-token step
    return q @ context  # (B, H, N, Dv)


def linear_attention_map(q, k):
    """Return the (B, H, N, M) matrix A with linear_attention(q, k, v) == A @ v.

    Materialises what the associative form never builds, to check it and to inspect its rank.
    """
    scale = q.shape[-1] ** -0.5
    return (q.softmax(dim=-1) * scale) @ k.softmax(dim=-2).transpose(-2, -1)


# %% The GitHub block on feature maps
class LinearAttention(nn.Module):
    """Linear attention over the X * Y pixels of a (B, C, X, Y) feature map.

    Mirrors `LinearAttention` of lucidrains/denoising-diffusion-pytorch (commit faed4db): RMS
    pre-norm, 1x1-convolution projections, `num_mem_kv` learned key/value pairs prepended to
    the keys and values before the token softmax, and a 1x1 convolution followed by another
    RMS norm. The block returns the attention branch only, and the caller adds the residual.
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
        self.to_out = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), ChannelRMSNorm(dim))

    def forward(self, x):
        batch, _, height, width = x.shape
        x = self.norm(x)

        q, k, v = self.to_qkv(x).chunk(3, dim=1)  # each (B, H * D, X, Y)
        q, k, v = (t.reshape(batch, self.heads, -1, height * width) for t in (q, k, v))
        q, k, v = (t.transpose(-2, -1) for t in (q, k, v))  # each (B, H, X * Y, D)

        mem_k, mem_v = (t.expand(batch, -1, -1, -1) for t in self.mem_kv)  # (B, H, mem, D)
        k = torch.cat((mem_k, k), dim=-2)  # (B, H, mem + X * Y, D)
        v = torch.cat((mem_v, v), dim=-2)

        out = linear_attention(q, k, v)  # (B, H, X * Y, D)
        out = out.transpose(-2, -1).reshape(batch, -1, height, width)  # (B, H * D, X, Y)
        return self.to_out(out)


# %% Check the O(N D^2) form against the N x N form
if __name__ == "__main__":
    torch.manual_seed(0)
    batch, heads, tokens, dim_head = 2, 4, 256, 32
    q, k, v = (torch.randn(batch, heads, tokens, dim_head, dtype=torch.float64) for _ in range(3))

    fast = linear_attention(q, k, v)
    attention_map = linear_attention_map(q, k)  # (B, H, N, N)
    explicit = attention_map @ v
    err = (fast - explicit).abs().max().item()
    print(f"q (k^T v) against (q k^T) v, N={tokens}, D={dim_head}: max error {err:.2e}")
    assert err < 1e-12, f"associative form differs from explicit form by {err:.2e}"

    # Each query's row mixes D token distributions with weights that sum to one, so the row
    # sums to the scale D**-0.5 and never to one.
    row_sums = attention_map.sum(dim=-1)
    expected_sum = dim_head**-0.5
    err = (row_sums - expected_sum).abs().max().item()
    print(f"row sums of the implied map: {row_sums.mean():.6f} (D**-0.5 = {expected_sum:.6f})")
    assert err < 1e-12, f"row sums deviate from D**-0.5 by {err:.2e}"

    # The map factors through D features, so its rank is at most D even though it is N x N.
    # That bound is true by construction, so the check is that random inputs reach it. The
    # N x D factors softmax(q) and softmax(k) keep full column rank, so the rank is exactly D.
    rank = torch.linalg.matrix_rank(attention_map[0, 0]).item()
    print(f"rank of one head's {tokens} x {tokens} map: {rank} (bound D = {dim_head})")
    assert rank == dim_head, f"rank {rank}, expected dim_head {dim_head}"

# %% The block against a direct transcription of the GitHub forward pass
if __name__ == "__main__":
    torch.manual_seed(0)
    block = LinearAttention(64, heads=4, dim_head=32).double()
    feature_map = torch.randn(2, 64, 16, 16, dtype=torch.float64)
    out = block(feature_map)
    assert out.shape == feature_map.shape

    # Same computation in the GitHub layout (B, H, D, N), with einsum over the feature axis.
    with torch.no_grad():
        normed = block.norm(feature_map)
        q, k, v = (t.reshape(2, 4, 32, 256) for t in block.to_qkv(normed).chunk(3, dim=1))
        k = torch.cat((block.mem_kv[0].transpose(-2, -1).expand(2, -1, -1, -1), k), dim=-1)
        v = torch.cat((block.mem_kv[1].transpose(-2, -1).expand(2, -1, -1, -1), v), dim=-1)
        q = q.softmax(dim=-2) * 32**-0.5
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        expected = torch.einsum("bhde,bhdn->bhen", context, q).reshape(2, 128, 16, 16)
        expected = block.to_out(expected)
    err = (out - expected).abs().max().item()
    print(f"LinearAttention on a 16x16 map against the (B, H, D, N) layout: max error {err:.2e}")
    assert err < 1e-12, f"block differs from the GitHub layout by {err:.2e}"
