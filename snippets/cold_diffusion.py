# kb: timeout=90
# %% [markdown]
# # Cold diffusion: deterministic degradations and their two samplers
# Bansal et al. (2022), "Cold Diffusion: Inverting Arbitrary Image Transforms Without
# Noise", arXiv 2208.09392. A degradation $D(x_0, s)$, $s = 0 \dots T$ with $D(x_0, 0) = x_0$,
# replaces the Gaussian noise, and a network $R(x_s, s) \approx x_0$ is trained to undo it.
# Two samplers walk from $x_T$ back to $s = 0$ (Algorithms 1 and 2 of the paper):
#
# $$
# \text{Alg. 1:}\; x_{s-1} = D(\hat x_0, s-1), \qquad
# \text{Alg. 2:}\; x_{s-1} = x_s - D(\hat x_0, s) + D(\hat x_0, s-1), \qquad \hat x_0 = R(x_s, s).
# $$
#
# **What Algorithm 2 buys, exactly.** Write the restoration error as
# $r_s = \hat x_0 - x_0$ and the state error as $e_s = x_s - D(x_0, s)$, with $e_T = 0$. When
# $D(\cdot, s)$ is linear or affine in the image, Algorithm 2 gives
# $e_{s-1} = e_s + (D_{s-1} - D_s)\, r_s$, so
#
# $$
# e_0 = \sum_{s=1}^{T} (D_{s-1} - D_s)\, r_s ,
# \qquad\text{while Algorithm 1 gives}\qquad e_0 = r_1 .
# $$
#
# - Additive, $D(x_0, s) = x_0 + \tfrac{s}{T}\delta$: the step $D_{s-1}x - D_s x = -\delta/T$
#   does not depend on the image, so every term vanishes and $e_0 = 0$ whatever $R$ returns.
#   Algorithm 1 keeps the last restoration error $r_1$.
# - Blur, $D_s = B^s$: each $r_s$ passes through the band-pass filter $B^{s-1} - B^s$, which
#   is small where blurring changes little. A constant error $r$ telescopes to
#   $(I - B^T) r$: only the part of the error that survives full blurring (the image mean)
#   is cancelled. The error is damped, not removed.
# - Masking, $D_s = M_s$ (diagonal 0/1): $M_{s-1} - M_s$ selects the pixels revealed at step
#   $s$, at full gain. Each pixel keeps the error of the estimate made when it was revealed,
#   no better than Algorithm 1.
# - With a perfect restoration, $r_s = 0$, both algorithms return $x_0$ exactly.

# %%
import math

import torch
import torch.nn as nn

# Shape letters: B batch, H and W image height and width (8 for the digits).
DTYPE = torch.float64


# %% Degradations
# Each degradation takes the level s as an int, or as a tensor (B,) with one level per image.
def _level(s, x):
    """Return s as a number, or as a (B, 1, 1, 1) tensor that broadcasts against images x."""
    if isinstance(s, int):
        return s
    return s.to(x.dtype).reshape(-1, 1, 1, 1)


class AdditiveDegradation:
    """D(x0, s) = x0 + (s / steps) * delta for a fixed image delta."""

    def __init__(self, delta, steps):
        self.delta = delta  # (1, H, W): the image added in full at s = steps
        self.steps = steps

    def __call__(self, x0, s):
        level = _level(s, x0) / self.steps
        return x0 + level * self.delta.to(x0.dtype)


def gaussian_blur_matrix(size, std):
    """Row-normalised (size, size) Gaussian blur matrix: each output pixel is a weighted mean."""
    positions = torch.arange(size, dtype=DTYPE)
    weights = torch.exp(-0.5 * ((positions[:, None] - positions[None, :]) / std) ** 2)
    return weights / weights.sum(1, keepdim=True)


class BlurDegradation:
    """D(x0, s) = B^s x0 (B^s)^T: s passes of a separable Gaussian blur of width `std` pixels."""

    def __init__(self, steps, size=8, std=1.0):
        self.steps = steps
        blur = gaussian_blur_matrix(size, std)
        self.powers = torch.stack([torch.matrix_power(blur, s) for s in range(steps + 1)])  # (steps+1, H, H)

    def __call__(self, x0, s):
        if isinstance(s, int):
            power = self.powers[s].to(x0.dtype)
            return torch.einsum("ij,bcjk,lk->bcil", power, x0, power)  # B^s x (B^s)^T per image
        power = self.powers[s].to(x0.dtype)  # (B, H, H), one level per image
        return torch.einsum("bij,bcjk,blk->bcil", power, x0, power)


class MaskDegradation:
    """D(x0, s) sets the first round(s/steps * H * W) pixels of a fixed random order to `fill`."""

    def __init__(self, steps, size=8, fill=0.0, seed=0):
        self.steps = steps
        self.fill = fill
        order = torch.randperm(size * size, generator=torch.Generator().manual_seed(seed))
        # Pixel p is masked once s / steps reaches rank[p].
        self.rank = torch.empty(size * size, dtype=DTYPE)
        self.rank[order] = torch.arange(1, size * size + 1, dtype=DTYPE) / (size * size)
        self.rank = self.rank.reshape(size, size)

    def __call__(self, x0, s):
        level = _level(s, x0) / self.steps
        keep = (self.rank.to(x0.dtype) > level).to(x0.dtype)  # 1 where a pixel is still visible
        return keep * x0 + (1 - keep) * self.fill


# %% Sampling
def sample_cold(restore, degrade, x_T, steps, algorithm):
    """Run Bansal et al.'s Algorithm 1 or 2 from x_T at s = steps down to s = 0."""
    if algorithm not in (1, 2):
        raise ValueError(f"algorithm must be 1 or 2, got {algorithm!r}")
    x = x_T
    for s in range(steps, 0, -1):
        x0_hat = restore(x, s)

        if algorithm == 1:
            # Restore, then degrade the estimate to the next level.
            x = degrade(x0_hat, s - 1)
        else:
            # Move by the change the degradation makes between levels s and s - 1.
            x = x - degrade(x0_hat, s) + degrade(x0_hat, s - 1)
    return x


def noisy_oracle(x0, error):
    """Return restore(x_s, s) = x0 + error(x_s, s): a restoration with a known, chosen error."""
    return lambda x_s, s: x0 + error(x_s, s)


# %% Exact checks with known restoration errors
if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation
    generator = torch.Generator().manual_seed(0)
    steps = 20
    x0 = torch.rand(64, 1, 8, 8, dtype=DTYPE, generator=generator) * 2 - 1
    delta = torch.randn(1, 8, 8, dtype=DTYPE, generator=generator)
    degradations = {
        "additive": AdditiveDegradation(delta, steps),
        "blur": BlurDegradation(steps),
        "mask": MaskDegradation(steps),
    }

    # Three restorations: perfect, a constant error image, and an error that depends on
    # the input x_s and on s, as a trained network's would.
    constant_error = 0.2 * torch.randn(1, 1, 8, 8, dtype=DTYPE, generator=generator)
    errors = {
        "perfect": lambda x_s, s: torch.zeros_like(x_s),
        "constant": lambda x_s, s: constant_error.expand_as(x_s),
        "state-dependent": lambda x_s, s: 0.2 * torch.sin(3 * x_s + s),
    }

    def rms(x):
        return x.pow(2).mean().sqrt().item()

    print(f"RMS of x_0 - true x_0 after {steps} steps, restoration error RMS about 0.14-0.2")
    print(f"{'degradation':<11} {'restoration':<16} {'Alg. 1':>9} {'Alg. 2':>9} {'predicted Alg. 2':>17}")
    final_errors = {}
    for name, degrade in degradations.items():
        for error_name, error in errors.items():
            restore = noisy_oracle(x0, error)
            x_T = degrade(x0, steps)
            gaps = [rms(sample_cold(restore, degrade, x_T, steps, algorithm) - x0) for algorithm in (1, 2)]
            final_errors[name, error_name] = gaps

            # For a constant error r, the sum over steps telescopes to (D_0 - D_T) r.
            predicted = ""
            if error_name == "constant":
                shift = degrade(constant_error, 0) - degrade(constant_error, steps)
                shift = shift + degrade(torch.zeros_like(constant_error), steps)  # drop the affine offset
                predicted = f"{rms(shift):17.2e}"
                assert abs(gaps[1] - rms(shift)) < 1e-12, f"{name}: Alg. 2 error {gaps[1]} vs predicted {rms(shift)}"
            print(f"{name:<11} {error_name:<16} {gaps[0]:9.2e} {gaps[1]:9.2e} {predicted}")

    for name in degradations:
        assert max(final_errors[name, "perfect"]) < 1e-12, f"{name} with a perfect restoration: {final_errors[name, 'perfect']}"
    alg1, alg2 = final_errors["additive", "state-dependent"]
    assert alg2 < 1e-10, f"Algorithm 2 is not exact for the additive degradation: error {alg2:.2e}"
    assert alg1 > 0.05, f"Algorithm 1 should keep the last restoration error, got {alg1:.2e}"
    assert final_errors["blur", "state-dependent"][1] < final_errors["blur", "state-dependent"][0]


# %% A trained restoration network
class RestorationMLP(nn.Module):
    """R(x_s, s) for 8x8 images: an MLP on the flattened image and a sinusoidal code of s / steps."""

    def __init__(self, steps, size=8, width=256, n_frequencies=8):
        super().__init__()
        self.steps = steps
        self.size = size
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(size * size + 2 * n_frequencies, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, size * size),
        )

    def forward(self, x_s, s):
        batch = x_s.shape[0]
        level = torch.full((batch, 1), s / self.steps) if isinstance(s, int) else (s.float() / self.steps)[:, None]
        angles = level * self.frequencies[None]  # (B, F)
        features = torch.cat([x_s.reshape(batch, -1).float(), angles.sin(), angles.cos()], dim=1)
        x0_hat = self.net(features).reshape(batch, 1, self.size, self.size)
        return x0_hat.to(x_s.dtype)


def train_restoration(degrade, images, steps, n_updates=3000, batch_size=128, seed=0):
    """Fit R(x_s, s) ~ x0 with the L1 loss Bansal et al. use, s uniform in 1..steps."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = RestorationMLP(steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_updates)
    for _ in range(n_updates):
        x0 = images[torch.randint(len(images), (batch_size,), generator=generator)]
        s = torch.randint(1, steps + 1, (batch_size,), generator=generator)
        x_s = degrade(x0, s)
        loss = (model(x_s, s) - x0).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


if __name__ == "__main__":
    import time

    import matplotlib.pyplot as plt
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    from snippets.digits import digit_quality, load_digits_tensor

    train_images, _ = load_digits_tensor("train")
    test_images, _ = load_digits_tensor("test")
    train_images, test_images = train_images.double(), test_images.double()
    digit_degradations = {
        "additive": AdditiveDegradation(delta.clamp(-2, 2), steps),
        "blur": BlurDegradation(steps),
        "mask": MaskDegradation(steps),
    }

    # Each network is trained once and reused below.
    networks, restorations = {}, {}
    print(f"{'degradation':<11} {'restoration':<20} {'train s':>8} {'test RMS, Alg. 1':>17} {'Alg. 2':>8}")
    for name, degrade in digit_degradations.items():
        start = time.perf_counter()
        networks[name] = train_restoration(degrade, train_images.float(), steps, n_updates=1500)
        seconds = time.perf_counter() - start

        def restore(x_s, s, model=networks[name]):
            with torch.no_grad():
                return model(x_s, s)

        def restore_clipped(x_s, s, model=networks[name]):
            with torch.no_grad():
                return model(x_s, s).clamp(-1, 1)

        restorations[name] = restore_clipped
        x_T = degrade(test_images, steps)
        for label, restoration in [("network", restore), ("network, clipped", restore_clipped)]:
            gaps = [rms(sample_cold(restoration, degrade, x_T, steps, algorithm) - test_images) for algorithm in (1, 2)]
            print(f"{name:<11} {label:<20} {seconds:8.1f} {gaps[0]:17.3g} {gaps[1]:8.3f}")
            if name == "additive":
                assert gaps[1] < 1e-10, f"Algorithm 2 with a trained network is not exact: {gaps[1]:.2e}"
            if name == "blur":
                assert gaps[1] < gaps[0], f"blur: Algorithm 2 ({gaps[1]:.3f}) is not better than 1 ({gaps[0]:.3f})"


# %% Generating digits from degraded starting points
# Blur: fully blurred digits keep little more than their brightness, so a Gaussian mixture
# fitted to them (Bansal et al. fit one to the channel means) gives new starting points.
# Masking: every fully masked image is the same, so a deterministic sampler returns one
# image for all starting points.
if __name__ == "__main__":
    blur = digit_degradations["blur"]
    blurred = blur(train_images, steps).reshape(len(train_images), -1).numpy()
    start_points = SklearnGaussianMixture(n_components=10, reg_covar=1e-4, random_state=0).fit(blurred)
    x_T = torch.from_numpy(start_points.sample(360)[0]).reshape(360, 1, 8, 8)

    generated = {
        "blur, Alg. 1": sample_cold(restorations["blur"], blur, x_T, steps, 1),
        "blur, Alg. 2": sample_cold(restorations["blur"], blur, x_T, steps, 2),
        "mask, Alg. 2": sample_cold(
            restorations["mask"], digit_degradations["mask"],
            digit_degradations["mask"](test_images, steps), steps, 2,
        ),
    }
    print(f"{'samples (360 each)':<20} {'confidence':>10} {'class_entropy':>14} {'frechet':>9} {'distinct':>9}")
    for name, samples in generated.items():
        quality = digit_quality(samples)
        distinct = len(torch.unique(samples.reshape(360, -1).round(decimals=4), dim=0))
        print(f"{name:<20} {quality['confidence']:10.3f} {quality['class_entropy']:14.3f} "
              f"{quality['frechet']:9.2f} {distinct:9d}")

    fig, axes = plt.subplots(3, 10, figsize=(9, 3))
    rows = [("fully blurred start", x_T), ("blur, Alg. 1", generated["blur, Alg. 1"]),
            ("blur, Alg. 2", generated["blur, Alg. 2"])]
    for row, (title, images) in zip(axes, rows):
        for ax, image in zip(row, images[:10]):
            ax.imshow(image[0].clamp(-1, 1), cmap="gray_r", vmin=-1, vmax=1)
            ax.axis("off")
        row[0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    plt.show()
