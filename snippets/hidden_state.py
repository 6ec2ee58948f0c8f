# kb: timeout=90
# %% [markdown]
# # A diffusion model with a hidden state carried across sampling steps
# A standard sampler calls the denoiser afresh at every noise level: nothing but the
# current image $x_{\sigma_i}$ passes from one step to the next. Three published ideas
# pass more:
#
# - **Self-conditioning** (Chen, Zhang and Hinton 2022, "Analog Bits", arXiv 2208.04202):
#   the denoiser also reads its own previous estimate $\hat x_0$. In training,
#   half the time a first pass with an empty estimate produces $\hat x_0$ (no gradient),
#   and a second pass reads it.
# - **Latent self-conditioning** (Jabri, Fleet and Chen 2022, "Scalable Adaptive
#   Computation for Iterative Generation", RIN, arXiv 2212.11972): the same trick on the
#   network's internal latents instead of its output, so a learned state travels between
#   steps. This is the closest published form of a recurrent diffusion model.
# - **Feature caching** (Ma, Fang and Wang 2023, "DeepCache", arXiv 2312.00858): reuse the
#   U-Net's high-level features from the previous step and recompute only the shallow
#   branch. That saves compute without training, and does not aim to improve samples.
#
# The experiment below compares, at matched parameter counts and matched function
# evaluations, denoisers sharing EDM's preconditioning and an Euler sampler
# (see `snippets/edm.py`):
#
# 1. **baseline**: $D(x; \sigma)$;
# 2. **self-conditioning**: $D(x, \hat x_0^{prev}; \sigma)$, trained as in Analog Bits;
# 3. **recurrent state**: $D(x, h^{prev}; \sigma) \to (\hat x_0, h)$ with a learned
#    32-dimensional state $h$, produced in training by a first pass at the same level
#    without gradient, as self-conditioning produces its estimate;
# 4. on the 2-D data only, **recurrent, unrolled**: the same model trained like an RNN,
#    over two or three passes at increasing noise levels $\sigma e^{u_1 + \dots}$,
#    $u_k \sim U(0, 3)$, on one forward-noised path $x_0 + \sigma' \varepsilon$, with a loss
#    on every pass and the gradient through all of them. It is kept as a failure case:
#    two points on that path determine $x_0$, so its state learns a shortcut that the
#    sampler's real path does not offer.
#
# Measures: sliced Wasserstein-2 on a 2-D mixture and the Fréchet distance of classifier
# features on the digits (`snippets/digits.py`), each over three seeds.

# %%
import math

import torch
import torch.nn as nn

from snippets.edm import edm_loss_weight, edm_preconditioning, karras_sigmas, sample_training_sigmas

VARIANTS = ("baseline", "self-conditioning", "recurrent state", "recurrent, unrolled")


# %% Denoiser with an optional state input
class StatefulDenoiser(nn.Module):
    """EDM-preconditioned MLP denoiser that reads and returns a state between sampling steps.

    forward(x, sigma, state) returns (denoised, new_state). The state is None for the
    baseline, the previous denoised output for self-conditioning, and a learned vector for
    the recurrent variant. Shape letters: B batch, D data dimensions, S state width.
    """

    def __init__(self, dim, width, variant, sigma_data=0.5, hidden_state_dim=32, n_frequencies=8):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
        self.variant = variant
        self.dim = dim  # D, data dimensions (2 for the mixture, 64 for the digits)
        self.sigma_data = sigma_data  # EDM's assumed data std
        self.state_dim = {"baseline": 0, "self-conditioning": dim}.get(variant, hidden_state_dim)
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(50.0), n_frequencies)))

        self.body = nn.Sequential(
            nn.Linear(dim + self.state_dim + 2 * n_frequencies, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
        )
        self.head = nn.Linear(width, dim)
        self.state_head = nn.Linear(width, hidden_state_dim) if variant.startswith("recurrent") else None

    def empty_state(self, batch):
        return torch.zeros(batch, self.state_dim)

    def forward(self, x, sigma, state=None):
        c_skip, c_out, c_in, c_noise = (c[:, None] for c in edm_preconditioning(sigma, self.sigma_data))
        if state is None:
            state = self.empty_state(x.shape[0])

        angles = c_noise * self.frequencies[None]  # (B, F)
        # Self-conditioning reads x0 estimates, which are on the data's scale like c_in * x.
        features = torch.cat([c_in * x, state, angles.sin(), angles.cos()], dim=1)
        h = self.body(features)  # (B, width)
        denoised = c_skip * x + c_out * self.head(h)

        if self.variant == "baseline":
            return denoised, None
        if self.variant == "self-conditioning":
            return denoised, denoised
        return denoised, torch.tanh(self.state_head(h))  # (B, S)


def width_for_parameters(dim, variant, target, **kwargs):
    """Return the width whose parameter count for `variant` is closest to `target`.

    The count grows with the width, so a bisection over 8..1024 finds it.
    """
    def count(width):
        return sum(p.numel() for p in StatefulDenoiser(dim, width, variant, **kwargs).parameters())

    low, high = 8, 1024
    while high - low > 1:
        middle = (low + high) // 2
        if count(middle) < target:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda width: abs(count(width) - target))


# %% Training
def training_loss(model, x0, generator=None, max_log_step=3.0, max_unroll=3):
    """EDM loss for any variant; half of each batch gets a state, as in Analog Bits.

    The unrolled recurrent variant runs 2 to `max_unroll` passes at increasing noise
    levels on the same noise, like an RNN, with a loss on every pass.
    """
    batch = x0.shape[0]
    sigma = sample_training_sigmas(batch, generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    x = x0 + sigma[:, None] * eps
    use_state = (torch.rand(batch, generator=generator) < 0.5)[:, None]
    weight = edm_loss_weight(sigma, model.sigma_data)[:, None]

    if model.variant == "baseline":
        denoised, _ = model(x, sigma)
        return (weight * (denoised - x0) ** 2).mean()

    if model.variant in ("self-conditioning", "recurrent state"):
        # First pass with an empty state at the same level, no gradient: Chen et al. (2022)
        # for the estimate x0, Jabri et al. (2022) for the latent state.
        with torch.no_grad():
            estimate, hidden = model(x, sigma)
        first = estimate if model.variant == "self-conditioning" else hidden
        state = torch.where(use_state, first, torch.zeros_like(first))
        denoised, _ = model(x, sigma, state)
        return (weight * (denoised - x0) ** 2).mean()

    # Recurrent, unrolled: passes at sigma * exp(u_1 + ... + u_k), noisiest first, each
    # handing its state to the next, with the gradient through all of them. All passes share
    # the noise eps, the path the deterministic sampler would follow if D were exact.
    # NOTE: this variant is kept as a failure case. Two points x0 + sigma' eps and
    # x0 + sigma eps on one path determine x0 exactly, so the state learns to leak x0.
    # On the sampler's real path that shortcut does not exist.
    n_passes = int(torch.randint(2, max_unroll + 1, (1,), generator=generator))
    log_steps = max_log_step * torch.rand(n_passes, batch, generator=generator)
    log_steps[-1] = 0.0  # the last pass is at sigma itself
    levels = sigma * torch.exp(log_steps.flip(0).cumsum(0).flip(0))  # (passes, B), noisiest first

    state, loss = None, 0.0
    for level in levels:
        denoised, hidden = model(x0 + level[:, None] * eps, level, state)
        level_weight = edm_loss_weight(level, model.sigma_data)[:, None]
        loss = loss + (level_weight * (denoised - x0) ** 2).mean()
        state = torch.where(use_state, hidden, torch.zeros_like(hidden))
    return loss / n_passes


def train(model, data, n_steps, batch_size, seed):
    """Train on rows of `data` (N, D) with Adam and a cosine learning-rate decay."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    for _ in range(n_steps):
        x0 = data[torch.randint(len(data), (batch_size,), generator=generator)]
        loss = training_loss(model, x0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


# %% Sampling with a carried state
@torch.no_grad()
def sample_euler_with_state(model, x, sigmas):
    """EDM's Euler sampler, passing the model's state from each step to the next.

    One denoiser evaluation per level; the baseline's state stays None.
    """
    state = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised, state = model(x, sigma.expand(x.shape[0]), state)
        x = x + (sigma_next - sigma) * (x - denoised) / sigma
    return x


# %% The experiment
def run_experiment(data, reference, distance, n_steps, batch_size, width, seeds, nfes, n_samples, variants=VARIANTS):
    """Train each variant for each seed and measure `distance(samples, reference)` per NFE.

    Returns {(variant, nfe): [distance per seed]}, the parameter count per variant and
    the last seed's model per variant.
    """
    dim = data.shape[1]
    target = sum(p.numel() for p in StatefulDenoiser(dim, width, "self-conditioning").parameters())
    widths = {variant: width_for_parameters(dim, variant, target) for variant in variants}

    results, parameters, models = {}, {}, {}
    for variant in variants:
        for seed in seeds:
            torch.manual_seed(seed)
            model = StatefulDenoiser(dim, widths[variant], variant).float()
            parameters[variant] = sum(p.numel() for p in model.parameters())
            models[variant] = train(model, data, n_steps, batch_size, seed)

            generator = torch.Generator().manual_seed(1000 + seed)
            x_T = 80.0 * torch.randn(n_samples, dim, generator=generator)
            for nfe in nfes:
                samples = sample_euler_with_state(model, x_T, karras_sigmas(nfe).float())
                results.setdefault((variant, nfe), []).append(distance(samples, reference))
    return results, parameters, models


def print_table(results, parameters, nfes, label):
    print(f"{'variant':<20} {'params':>7}" + "".join(f" {f'NFE {nfe}: ' + label:>24}" for nfe in nfes))
    for variant in parameters:
        cells = []
        for nfe in nfes:
            values = torch.tensor(results[variant, nfe])
            cells.append(f"{values.mean():.4f} ± {values.std():.4f}")
        print(f"{variant:<20} {parameters[variant]:7d}" + "".join(f" {cell:>24}" for cell in cells))


# %% 2-D mixture
if __name__ == "__main__":
    import time

    from snippets.gaussian_mixture import sliced_wasserstein, uneven_mixture

    torch.set_num_threads(1)  # small MLPs: a second thread only adds synchronisation
    seeds = range(3)

    mixture = uneven_mixture()
    generator = torch.Generator().manual_seed(0)
    data = mixture.sample(20000, generator=generator).float()
    reference = mixture.sample(2000, generator=generator)
    floor = sum(
        sliced_wasserstein(mixture.sample(2000, generator=generator), reference, generator=generator)
        for _ in range(4)
    ) / 4

    def mixture_distance(samples, reference):
        return sliced_wasserstein(samples.double(), reference, generator=torch.Generator().manual_seed(0))

    start = time.perf_counter()
    nfes_2d = (4, 8, 16)
    results_2d, parameters_2d, models_2d = run_experiment(
        data, reference, mixture_distance, n_steps=500, batch_size=256, width=64,
        seeds=seeds, nfes=nfes_2d, n_samples=2000,
    )
    print(f"2-D mixture, sliced W2 to 2000 exact samples (mean noise floor {floor:.4f}), "
          f"mean ± std over {len(seeds)} seeds, {time.perf_counter() - start:.0f} s")
    print_table(results_2d, parameters_2d, nfes_2d, "SW2")


# %% Why the unrolled recurrent model fails
# Denoising error at sigma when the state comes from a pass at 3 sigma on the same noise
# (as in its training), on independent noise, or is empty. On one straight path
# x0 + sigma eps the two inputs pin down x0, so the state carries x0 itself.
if __name__ == "__main__":
    unrolled = models_2d["recurrent, unrolled"]
    x0 = mixture.sample(2000, generator=generator).float()
    eps = torch.randn(x0.shape, generator=generator)
    other_eps = torch.randn(x0.shape, generator=generator)
    print(f"{'sigma':>6} {'empty state':>12} {'state, same noise':>18} {'state, other noise':>19}")
    with torch.no_grad():
        for sigma_value in (0.3, 1.0, 3.0):
            sigma = torch.full((2000,), sigma_value)
            x = x0 + sigma_value * eps
            errors = []
            for previous_eps in (None, eps, other_eps):
                state = None
                if previous_eps is not None:
                    _, state = unrolled(x0 + 3 * sigma_value * previous_eps, 3 * sigma)
                denoised, _ = unrolled(x, sigma, state)
                errors.append((denoised - x0).pow(2).sum(1).mean().item())
            print(f"{sigma_value:6.1f} {errors[0]:12.4f} {errors[1]:18.4f} {errors[2]:19.4f}")
            if sigma_value == 1.0:
                leak_errors = errors
    assert leak_errors[1] < leak_errors[0] / 2, f"expected the same-noise state to leak x0: {leak_errors}"


# %% Digits
if __name__ == "__main__":
    from snippets.digits import frechet_distance, load_digits_tensor, train_classifier

    train_images, _ = load_digits_tensor("train")
    test_images, _ = load_digits_tensor("test")
    classifier = train_classifier(0)
    with torch.no_grad():
        test_features = classifier.features(test_images).numpy()

    def digit_frechet(samples, reference):
        with torch.no_grad():
            features = classifier.features(samples.clamp(-1, 1).reshape(-1, 1, 8, 8))
        return frechet_distance(features.numpy(), reference)

    start = time.perf_counter()
    nfes_digits = (6, 12)
    results_digits, parameters_digits, _ = run_experiment(
        train_images.reshape(len(train_images), -1), test_features, digit_frechet,
        n_steps=450, batch_size=128, width=192, seeds=seeds, nfes=nfes_digits, n_samples=360,
        variants=VARIANTS[:3],
    )
    real_fd = digit_frechet(train_images[:360], test_features)
    print(f"digits, Fréchet distance of classifier features to the test digits (360 real training "
          f"digits: {real_fd:.2f}), mean ± std over {len(seeds)} seeds, {time.perf_counter() - start:.0f} s")
    print_table(results_digits, parameters_digits, nfes_digits, "Frechet")
