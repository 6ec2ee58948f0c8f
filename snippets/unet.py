# kb: timeout=60
# %% [markdown]
# # The U-Net of the DDPM GitHub model
# A re-implementation of the architecture of `Unet` in lucidrains/denoising-diffusion-pytorch
# (file denoising_diffusion_pytorch/denoising_diffusion_pytorch.py, commit faed4db, MIT
# licence, copyright Phil Wang), the noise predictor $\epsilon_\theta(x_t, t)$ of Ho et al.
# (2020), arXiv:2006.11239, section 4 and appendix B, which in turn follows the PixelCNN++
# U-Net with Wide ResNet blocks. The architecture is reproduced on purpose, so that layer
# order, shapes and parameter counts match the repository's. `ConvBlock` and `ResnetBlock`
# follow the structure of its `Block` and `ResnetBlock`, and `downsample` and `upsample` that
# of its `Downsample` and `Upsample`. The code itself is written here.
#
# Layout, for `dim_mults=(1, 2)` on an 8x8 image:
#
# - a 7x7 convolution lifts the image to `dim` channels;
# - each down stage has two residual blocks (each gets the time embedding), one attention
#   block, then a 2x downsample (no downsample on the last stage, a 3x3 convolution there);
# - the middle has a residual block, full softmax attention, and another residual block;
# - each up stage concatenates a skip connection before each of its two residual blocks,
#   applies attention and upsamples 2x;
# - a last residual block receives the output of the first convolution again, and a 1x1
#   convolution maps to the output channels.
#
# Stages listed in `full_attn` use softmax `Attention` and the others `LinearAttention`,
# both from the attention snippets. The GitHub default puts full attention only in the
# innermost stage, where the feature map is smallest and the N x N attention matrix cheapest.
#
# Shape letters: B batch, C channels, X and Y height and width, E time-embedding width.

# %%
import math

import torch
import torch.nn.functional as F
from torch import nn

from snippets.attention import Attention, ChannelRMSNorm
from snippets.linear_attention import LinearAttention


# %% Time embedding
class SinusoidalTimeEmbedding(nn.Module):
    """Map integer timesteps (B,) to (B, dim) features [sin(t w_i), cos(t w_i)].

    The frequencies are w_i = theta^(-i / (dim/2 - 1)) for i = 0 .. dim/2 - 1, so the first
    is 1 and the last exactly 1/theta. This is a variant of the position encoding of Vaswani
    et al. (2017), section 3.5, whose frequencies are theta^(-2i / dim), so its last one is
    theta^(-(dim - 2) / dim), slightly above 1/theta. Its sines and cosines are interleaved,
    and here they fill two halves. The DDPM code of Ho et al. uses this variant.
    """

    def __init__(self, dim, theta=10000):
        super().__init__()
        if dim % 2 != 0 or dim < 4:
            raise ValueError(f"time embedding dim must be even and at least 4, got {dim}")
        self.num_frequencies = dim // 2
        self.base = theta

    def forward(self, t):
        steps = torch.arange(self.num_frequencies, device=t.device)
        frequencies = self.base ** -(steps / (self.num_frequencies - 1))  # (dim/2,)
        angles = t.float()[:, None] * frequencies[None, :]  # (B, dim/2)
        return torch.cat((angles.sin(), angles.cos()), dim=-1)  # (B, dim)


# %% Residual block
class ConvBlock(nn.Module):
    """3x3 convolution, channel RMS norm, optional FiLM gain and bias, SiLU, dropout."""

    def __init__(self, dim_in, dim_out, dropout=0.0):
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size=3, padding=1)
        self.norm = ChannelRMSNorm(dim_out)
        self.drop = nn.Dropout(p=dropout)

    def forward(self, x, film=None):
        h = self.norm(self.conv(x))
        if film is not None:
            gain, bias = film  # each (B, C, 1, 1), both zero means no modulation
            h = h * (1 + gain) + bias
        return self.drop(F.silu(h))


class ResnetBlock(nn.Module):
    """Two conv blocks plus a residual path. The time embedding sets a per-channel gain
    and bias after the first block's norm (FiLM conditioning)."""

    def __init__(self, dim_in, dim_out, time_dim, dropout=0.0):
        super().__init__()
        # The creation order (time projection, first conv, second conv, skip conv) decides
        # which random numbers each layer's initialisation draws, so seeded runs need it.
        self.time_to_film = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * dim_out))
        self.first = ConvBlock(dim_in, dim_out, dropout)
        self.second = ConvBlock(dim_out, dim_out)
        if dim_in == dim_out:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Conv2d(dim_in, dim_out, kernel_size=1)

    def forward(self, x, time_emb):
        film = self.time_to_film(time_emb)[:, :, None, None].chunk(2, dim=1)  # gain, bias
        return self.second(self.first(x, film)) + self.skip(x)


# %% Resampling
def downsample(dim_in, dim_out):
    """Halve X and Y without losing pixels: move each 2x2 patch into channels, then a 1x1 conv."""
    # PixelUnshuffle maps (B, C, X, Y) to (B, 4C, X/2, Y/2) with channel order (c, p1, p2).
    patches_to_channels = nn.PixelUnshuffle(downscale_factor=2)
    return nn.Sequential(patches_to_channels, nn.Conv2d(4 * dim_in, dim_out, kernel_size=1))


def upsample(dim_in, dim_out):
    """Double X and Y by nearest-neighbour copying, then a 3x3 conv."""
    copy_pixels = nn.UpsamplingNearest2d(scale_factor=2)
    return nn.Sequential(copy_pixels, nn.Conv2d(dim_in, dim_out, kernel_size=3, padding=1))


# %% U-Net
class UNet(nn.Module):
    """Noise-prediction U-Net eps_theta(x_t, t), laid out like the GitHub model's `Unet`."""

    def __init__(
        self,
        channels=1,  # C of the input and output images (3 for RGB, 4 for SD latents)
        dim=16,  # base width; stage i has dim * dim_mults[i] channels (64 on GitHub)
        dim_mults=(1, 2),  # width multiplier per resolution stage ((1, 2, 4, 8) on GitHub)
        full_attn=None,  # per stage, True for softmax attention; None: only the last stage
        attn_heads=4,  # heads in every attention block (4 on GitHub)
        attn_dim_head=32,  # width per head (32 on GitHub)
        init_dim=None,  # channels after the first 7x7 conv; None: dim
        out_dim=None,  # output channels; None: channels (2x on GitHub with learned variance)
        dropout=0.0,  # dropout in the first conv block of every residual block
        theta=10000,  # base of the sinusoidal time-embedding frequencies
    ):
        super().__init__()
        stage_count = len(dim_mults)
        if full_attn is None:
            full_attn = (False,) * (stage_count - 1) + (True,)
        full_attn = tuple(full_attn)
        if len(full_attn) != stage_count:
            raise ValueError(
                f"full_attn has {len(full_attn)} entries but dim_mults has {stage_count} stages"
            )

        # Submodules are created in a fixed order (stem, time MLP, encoder, middle, decoder,
        # head), because the order decides which random numbers each initialisation draws.
        out_channels = out_dim or channels
        init_dim = init_dim or dim
        self.stem = nn.Conv2d(channels, init_dim, kernel_size=7, padding=3)

        dims = [init_dim] + [dim * m for m in dim_mults]
        in_out = list(zip(dims[:-1], dims[1:]))  # (channels in, channels out) per stage

        # A two-layer MLP widens the embedding of t to 4 * dim, and every residual block
        # reads the result.
        time_dim = 4 * dim
        self.time_embedding = nn.Sequential(
            SinusoidalTimeEmbedding(dim, theta),
            nn.Linear(dim, time_dim),
            nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )

        def attention_block(width, full):
            kind = Attention if full else LinearAttention
            return kind(width, heads=attn_heads, dim_head=attn_dim_head)

        # Each encoder stage has two residual blocks and attention, then halves the
        # resolution. The innermost stage changes only the width, with a 3x3 conv.
        self.encoder = nn.ModuleList()
        for stage, ((dim_in, dim_out), full) in enumerate(zip(in_out, full_attn)):
            layers = nn.ModuleList([
                ResnetBlock(dim_in, dim_in, time_dim, dropout),
                ResnetBlock(dim_in, dim_in, time_dim, dropout),
                attention_block(dim_in, full),
            ])
            if stage == stage_count - 1:
                layers.append(nn.Conv2d(dim_in, dim_out, kernel_size=3, padding=1))
            else:
                layers.append(downsample(dim_in, dim_out))
            self.encoder.append(layers)

        # The middle always uses softmax attention, whatever the value of full_attn.
        bottleneck = dims[-1]
        self.middle = nn.ModuleList([
            ResnetBlock(bottleneck, bottleneck, time_dim, dropout),
            Attention(bottleneck, heads=attn_heads, dim_head=attn_dim_head),
            ResnetBlock(bottleneck, bottleneck, time_dim, dropout),
        ])

        # The decoder mirrors the encoder. Each residual block also reads one skip.
        self.decoder = nn.ModuleList()
        decoder_stages = zip(reversed(in_out), reversed(full_attn))
        for stage, ((dim_in, dim_out), full) in enumerate(decoder_stages):
            layers = nn.ModuleList([
                ResnetBlock(dim_out + dim_in, dim_out, time_dim, dropout),
                ResnetBlock(dim_out + dim_in, dim_out, time_dim, dropout),
                attention_block(dim_out, full),
            ])
            if stage == stage_count - 1:
                layers.append(nn.Conv2d(dim_out, dim_in, kernel_size=3, padding=1))
            else:
                layers.append(upsample(dim_out, dim_in))
            self.decoder.append(layers)

        # The head's residual block also reads the stem output, so it takes 2 * init_dim
        # channels.
        self.head_block = ResnetBlock(2 * init_dim, init_dim, time_dim, dropout)
        self.head = nn.Conv2d(init_dim, out_channels, kernel_size=1)

    @property
    def size_divisor(self):
        """Return the number that both image sides must be divisible by, 2 per downsampling."""
        return 2 ** (len(self.encoder) - 1)

    def forward(self, x, t, trace=None):
        """Predict the noise in x (B, C, X, Y) at integer timesteps t (B,).

        When `trace` is a list, (step name, output shape) pairs are appended to it.
        """
        divisor = self.size_divisor
        if x.shape[-2] % divisor or x.shape[-1] % divisor:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} must be divisible by {divisor} "
                f"for {len(self.encoder)} stages; pad the input or use fewer dim_mults"
            )
        record = trace.append if trace is not None else (lambda item: None)

        h = self.stem(x)
        # A copy, not an alias. With an alias, autograd sums the gradients in another order,
        # which changes their last bits and so can change the trained numbers in the notes.
        stem_out = h.clone()
        time_emb = self.time_embedding(t)  # (B, E)
        record(("init conv", tuple(h.shape)))

        # Every encoder residual block pushes its output, and every decoder one pops one.
        skips = []
        for stage, (first, second, attend, resample) in enumerate(self.encoder):
            h = first(h, time_emb)
            skips.append(h)
            h = second(h, time_emb)
            h = h + attend(h)
            skips.append(h)
            h = resample(h)
            record((f"down {stage} ({type(attend).__name__})", tuple(h.shape)))

        first, attend, second = self.middle
        h = first(h, time_emb)
        h = h + attend(h)
        h = second(h, time_emb)
        record(("middle (Attention)", tuple(h.shape)))

        for stage, (first, second, attend, resample) in enumerate(self.decoder):
            h = first(torch.cat((h, skips.pop()), dim=1), time_emb)
            h = second(torch.cat((h, skips.pop()), dim=1), time_emb)
            h = h + attend(h)
            h = resample(h)
            record((f"up {stage} ({type(attend).__name__})", tuple(h.shape)))

        h = self.head_block(torch.cat((h, stem_out), dim=1), time_emb)
        h = self.head(h)
        record(("final conv", tuple(h.shape)))
        return h


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


# %% Shapes stage by stage
if __name__ == "__main__":
    torch.manual_seed(0)
    model = UNet(channels=1, dim=16, dim_mults=(1, 2), full_attn=(False, True))
    x = torch.randn(4, 1, 8, 8)
    t = torch.randint(0, 1000, (4,))
    trace = []
    out = model(x, t, trace=trace)

    print(f"UNet(dim=16, dim_mults=(1, 2)) on 8x8 digits: {count_parameters(model):,} parameters")
    print(f"{'step':<26} {'output shape (B, C, X, Y)':>26}")
    print(f"{'input':<26} {str(tuple(x.shape)):>26}")
    for name, shape in trace:
        print(f"{name:<26} {str(shape):>26}")
    assert out.shape == x.shape, f"output {tuple(out.shape)} differs from input {tuple(x.shape)}"

# %% Every supported layout preserves shapes
if __name__ == "__main__":
    layouts = [
        # (channels, dim_mults, full_attn, image size)
        (1, (1,), (True,), 8),
        (1, (1, 2), (False, True), 8),
        (1, (1, 2), (True, True), 8),
        (1, (1, 2), (False, False), 16),
        (1, (1, 2, 4), (False, False, True), 8),
        (4, (1, 2), (False, True), 4),
        (3, (1, 2, 4, 8), None, 16),
    ]
    print(f"{'channels':>8} {'dim_mults':>13} {'full_attn':>22} {'size':>5} {'params':>9}")
    for channels, dim_mults, full_attn, size in layouts:
        model = UNet(channels=channels, dim=8, dim_mults=dim_mults, full_attn=full_attn,
                     attn_heads=2, attn_dim_head=8)
        x = torch.randn(2, channels, size, size)
        out = model(x, torch.tensor([0, 999]))
        print(f"{channels:>8} {str(dim_mults):>13} {str(full_attn):>22} {size:>5} "
              f"{count_parameters(model):>9,}")
        assert out.shape == x.shape, f"{dim_mults}: output {tuple(out.shape)} vs {tuple(x.shape)}"

    # A size that the stages cannot halve is rejected with a clear error.
    try:
        UNet(dim=8, dim_mults=(1, 2, 4))(torch.randn(1, 1, 6, 6), torch.tensor([0]))
    except ValueError as error:
        print(f"6x6 input with 3 stages: ValueError: {error}")
    else:
        raise AssertionError("a 6x6 input with 3 stages was accepted")

# %% Time embedding and downsampling against their formulas
if __name__ == "__main__":
    embedding = SinusoidalTimeEmbedding(16)
    t = torch.tensor([0, 1, 250, 999])
    half = torch.arange(8, dtype=torch.float64)
    expected_freq = torch.exp(-math.log(10000) * half / 7)
    angles = t.double()[:, None] * expected_freq
    expected = torch.cat((angles.sin(), angles.cos()), dim=1)
    err = (embedding(t).double() - expected).abs().max().item()
    print(f"time embedding against sin/cos formula: max error {err:.2e}")
    assert err < 1e-3, f"time embedding differs from formula by {err:.2e}"

    # PixelUnshuffle puts pixel (2i + p1, 2j + p2) of channel c at channel 4c + 2 p1 + p2.
    image = torch.arange(2 * 4 * 4.0).reshape(1, 2, 4, 4)
    unshuffled = nn.PixelUnshuffle(2)(image)
    for c in range(2):
        for p1 in range(2):
            for p2 in range(2):
                expected_patch = image[0, c, p1::2, p2::2]
                assert torch.equal(unshuffled[0, 4 * c + 2 * p1 + p2], expected_patch), (c, p1, p2)
    print("PixelUnshuffle matches the (c, p1, p2) channel order of the GitHub Downsample")
