# kb: timeout=90
# %% [markdown]
# # DDPM from scratch: schedules, forward process, loss, and two samplers
# The Gaussian diffusion of Ho et al. (2020), "Denoising Diffusion Probabilistic Models",
# arXiv:2006.11239, as `GaussianDiffusion` in lucidrains/denoising-diffusion-pytorch does it:
#
# - forward process $q(x_t \mid x_{t-1}) = \mathcal{N}(\sqrt{1-\beta_t}\, x_{t-1}, \beta_t I)$
#   (eq. 2), with the closed form $q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0,
#   (1-\bar\alpha_t) I)$, $\bar\alpha_t = \prod_{s \le t} (1-\beta_s)$ (eq. 4);
# - the simplified loss $\lVert \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0 +
#   \sqrt{1-\bar\alpha_t}\,\epsilon, t) \rVert^2$ (eq. 14, Algorithm 1);
# - ancestral sampling (Algorithm 2);
# - DDIM sampling on a subsequence of the timesteps (Song et al. 2021, "Denoising Diffusion
#   Implicit Models", arXiv:2010.02502, eq. 12, with $\sigma$ from eq. 16 scaled by $\eta$).
#
# Timesteps are 0-based in code: index t = 0 .. T-1 is the paper's step t + 1.
# Shape letters: B batch, T timesteps. Data tensors may have any shape (B, ...).

# %%
import math
import statistics

import torch
import torch.nn.functional as F


# %% Noise schedules
def linear_beta_schedule(timesteps):
    """Return betas rising linearly from 1e-4 to 0.02 (Ho et al. 2020, section 4), float64 (T,).

    For T other than 1000 both ends are scaled by 1000 / T, as the GitHub model does, so the
    total noise added stays about the same.
    """
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


def cosine_alphas_cumprod(timesteps, s=0.008):
    """Return f(t) / f(0) at t = 0 .. T, f(t) = cos^2((t/T + s) / (1 + s) * pi/2), float64 (T+1,).

    Nichol & Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models",
    arXiv:2102.09672, eq. 17. Entry t is alpha-bar after t steps, so entry 0 is 1.
    """
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def cosine_beta_schedule(timesteps, s=0.008):
    """Return betas of the cosine schedule, 1 - abar_t / abar_{t-1} clipped at 0.999, float64 (T,).

    Nichol & Dhariwal (2021), section 3.2: the clipping stops the singularity at t = T,
    where abar reaches 0 and beta would be 1.
    """
    alphas_cumprod = cosine_alphas_cumprod(timesteps, s)
    betas = 1 - alphas_cumprod[1:] / alphas_cumprod[:-1]
    return betas.clamp(0, 0.999)


# %% Forward process and loss
def gather(values, t, x):
    """Pick values[t] (T,) for each row and reshape to (B, 1, ..., 1) to broadcast against x."""
    return values.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def q_sample(x0, t, noise, alphas_cumprod):
    """Draw x_t ~ q(x_t | x_0) as sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, eq. 4 of Ho et al."""
    abar = gather(alphas_cumprod, t, x0)
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def diffusion_loss(model, x0, alphas_cumprod, generator=None):
    """Return the epsilon-prediction loss of Algorithm 1: mean of (eps - eps_theta(x_t, t))^2."""
    timesteps = len(alphas_cumprod)
    t = torch.randint(0, timesteps, (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = q_sample(x0, t, noise, alphas_cumprod)
    return F.mse_loss(model(x_t, t), noise)


# %% Samplers
def predict_x0(x_t, eps, abar, clip):
    """Invert eq. 4 for x0 given predicted noise, then clip it to [-clip, clip] unless clip is
    False or 0. True means 1, the range of images scaled to [-1, 1]."""
    x0 = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    return x0.clamp(-float(clip), float(clip)) if clip else x0


@torch.no_grad()
def sample_ddpm(model, shape, betas, clip_x0=True, generator=None, device="cpu", dtype=torch.float32):
    """Ancestral sampling, Algorithm 2 of Ho et al. (2020), with sigma_t^2 = beta-tilde_t.

    With clip_x0=False each step is exactly Algorithm 2's
    x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z.
    The same mean is written here as the posterior mean of q(x_{t-1} | x_t, x0) (eq. 7) at
    the predicted x0, so that x0 can be clipped to [-1, 1] first, as the GitHub model does.
    A number for clip_x0 clips to [-clip_x0, clip_x0] instead, for data with another range.
    sigma_t^2 = beta-tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) is one of the two
    choices in section 3.2 (the GitHub model's). The other, beta_t, gave similar samples there.

    Noise is drawn on the CPU from `generator` and moved to `device`, so a seed gives the same
    samples on every device up to float rounding. `dtype` is the dtype of x_T and of the noise.
    """
    alphas_cumprod = (1 - betas.double()).cumprod(0).tolist()
    betas = betas.double().tolist()
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device)

    for t in reversed(range(len(betas))):
        # Predict the noise and, from it, the clean image.
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = model(x, t_batch)
        beta, abar = betas[t], alphas_cumprod[t]
        abar_prev = alphas_cumprod[t - 1] if t > 0 else 1.0
        x0 = predict_x0(x, eps, abar, clip_x0)

        # Posterior mean of q(x_{t-1} | x_t, x0), eq. 7.
        coef_x0 = math.sqrt(abar_prev) * beta / (1 - abar)
        coef_xt = math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)
        mean = coef_x0 * x0 + coef_xt * x

        # Add noise on every step but the last.
        variance = beta * (1 - abar_prev) / (1 - abar)
        z = torch.randn(shape, generator=generator, dtype=dtype).to(device) if t > 0 else 0.0
        x = mean + math.sqrt(variance) * z
    return x


def ddim_timesteps(timesteps, steps):
    """Return the `steps` timesteps a DDIM sampler visits, evenly spaced, from T-1 down to 0."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be between 1 and {timesteps}, got {steps}")
    return torch.linspace(timesteps - 1, 0, steps).round().long().tolist()


@torch.no_grad()
def sample_ddim(model, shape, betas, steps=50, eta=0.0, clip_x0=True, generator=None, device="cpu",
                dtype=torch.float32):
    """DDIM sampling, eq. 12 of Song et al. (2021), on `steps` of the T timesteps.

    sigma_t = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev) (eq. 16).
    eta = 0 is deterministic given x_T. eta = 1 with steps = T is the ancestral sampler with
    sigma_t^2 = beta-tilde_t. When clip_x0 is set, x0 is clipped (as in `sample_ddpm`) and the
    noise re-derived from it, as the GitHub model does. `dtype` is the dtype of x_T and of the
    noise, as in `sample_ddpm`.
    """
    alphas_cumprod = (1 - betas.double()).cumprod(0).tolist()
    times = ddim_timesteps(len(betas), steps)
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device)

    for i, t in enumerate(times):
        # Predict the noise and the clean image at the current timestep.
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = model(x, t_batch)
        abar = alphas_cumprod[t]
        x0 = predict_x0(x, eps, abar, clip_x0)
        if clip_x0:
            eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)

        # Step to the next visited timestep, or to abar = 1 (the clean image) after the last.
        is_last = i == len(times) - 1
        abar_prev = alphas_cumprod[times[i + 1]] if not is_last else 1.0
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
        direction = math.sqrt(1 - abar_prev - sigma**2) * eps
        z = torch.randn(shape, generator=generator, dtype=dtype).to(device) if not is_last else 0.0
        x = math.sqrt(abar_prev) * x0 + direction + sigma * z
    return x


# %% The closed form equals the chain
if __name__ == "__main__":
    # Exact: propagate the mean and variance of x_t given x0 through the Markov chain
    # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps, and compare with eq. 4.
    print(f"{'schedule':<8} {'max |mean - closed form|':>25} {'max |var - closed form|':>25}")
    for name, schedule in [("linear", linear_beta_schedule), ("cosine", cosine_beta_schedule)]:
        betas = schedule(1000)
        alphas_cumprod = (1 - betas).cumprod(0)
        mean, variance = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
        means, variances = [], []
        for beta in betas:
            mean = (1 - beta).sqrt() * mean
            variance = (1 - beta) * variance + beta
            means.append(mean)
            variances.append(variance)
        mean_err = (torch.stack(means) - alphas_cumprod.sqrt()).abs().max().item()
        var_err = (torch.stack(variances) - (1 - alphas_cumprod)).abs().max().item()
        print(f"{name:<8} {mean_err:>25.2e} {var_err:>25.2e}")
        assert mean_err < 1e-12, f"{name}: chain mean differs from sqrt(abar) by {mean_err:.2e}"
        assert var_err < 1e-12, f"{name}: chain variance differs from 1 - abar by {var_err:.2e}"

    # Sampled: run the chain on 50,000 scalars and check the empirical moments at a few t.
    generator = torch.Generator().manual_seed(0)
    betas = linear_beta_schedule(1000)
    alphas_cumprod = (1 - betas).cumprod(0)
    x0 = torch.full((50_000,), 0.7, dtype=torch.float64)
    x = x0.clone()
    print(f"{'t':>5} {'chain mean':>11} {'eq. 4 mean':>11} {'chain var':>10} {'eq. 4 var':>10}")
    for t, beta in enumerate(betas):
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        if t in (0, 99, 499, 999):
            closed = q_sample(x0, torch.full_like(x0, t, dtype=torch.long),
                              torch.randn(x.shape, generator=generator, dtype=torch.float64),
                              alphas_cumprod)
            print(f"{t:>5} {x.mean():>11.4f} {closed.mean():>11.4f} {x.var():>10.4f} {closed.var():>10.4f}")
            # Standard errors with 50,000 draws: about 0.0045 for the mean and 0.0063
            # for the variance of unit-variance values, so 0.03 is over four of them.
            assert abs(x.mean() - closed.mean()) < 0.03, (t, x.mean(), closed.mean())
            assert abs(x.var() - closed.var()) < 0.03, (t, x.var(), closed.var())

# %% Schedules against their formulas
if __name__ == "__main__":
    import matplotlib.pyplot as plt

    timesteps = 1000
    linear = linear_beta_schedule(timesteps)
    assert linear.dtype == torch.float64, linear.dtype
    assert linear[0].item() == 1e-4, linear[0].item()
    assert abs(linear[-1].item() - 0.02) < 1e-15, linear[-1].item()

    cosine = cosine_beta_schedule(timesteps)
    assert cosine.dtype == torch.float64, cosine.dtype
    assert len(cosine) == timesteps, len(cosine)

    # alpha-bar from the clipped betas follows f(t)/f(0) until the first clipped step.
    formula = cosine_alphas_cumprod(timesteps)[1:]
    from_betas = (1 - cosine).cumprod(0)
    clipped = cosine >= 0.999
    first_clipped = int(clipped.nonzero()[0]) if clipped.any() else timesteps
    rel_err = ((from_betas - formula) / formula)[:first_clipped].abs().max().item()
    print(f"cosine: {int(clipped.sum())} of {timesteps} betas clipped at 0.999 (from t = {first_clipped})")
    print(f"cosine: max relative error of alpha-bar before clipping {rel_err:.2e}")
    assert rel_err < 1e-10, f"cosine alpha-bar deviates from its formula by {rel_err:.2e}"

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, betas in [("linear", linear), ("cosine", cosine)]:
        alphas_cumprod = (1 - betas).cumprod(0)
        axes[0].plot(alphas_cumprod, label=name)
        axes[1].semilogy(alphas_cumprod / (1 - alphas_cumprod), label=name)
    axes[0].set_title("alpha-bar_t (signal kept)")
    axes[1].set_title("SNR_t = abar / (1 - abar)")
    for ax in axes:
        ax.set_xlabel("t")
        ax.legend()
    plt.tight_layout()
    plt.show()

# %% Samplers with an exact denoiser on 2-D data
if __name__ == "__main__":
    from snippets.gaussian_mixture import ring_mixture, sliced_wasserstein

    # With the exact noise predictor of a Gaussian mixture, the samplers' only errors are
    # discretisation and sampling noise, so their output is compared with the data directly.
    mixture = ring_mixture()
    timesteps = 250
    betas = linear_beta_schedule(timesteps)
    alphas_cumprod = (1 - betas).cumprod(0)

    def exact_eps(x, t):
        abar = alphas_cumprod[t[0]]
        x0_mean = mixture.denoise(x.double(), (1 - abar).sqrt(), abar.sqrt())
        return ((x.double() - abar.sqrt() * x0_mean) / (1 - abar).sqrt()).float()

    generator = torch.Generator().manual_seed(0)
    n, n_draws = 2000, 5
    samplers = {
        "ancestral, 250 steps": lambda: sample_ddpm(exact_eps, (n, 2), betas, clip_x0=False,
                                                     generator=generator),
        "DDIM eta=0, 50 steps": lambda: sample_ddim(exact_eps, (n, 2), betas, steps=50,
                                                    clip_x0=False, generator=generator),
        "DDIM eta=1, 50 steps": lambda: sample_ddim(exact_eps, (n, 2), betas, steps=50, eta=1.0,
                                                    clip_x0=False, generator=generator),
    }

    # One draw's distance varies by a factor of two. So each sampler's number is a mean over
    # n_draws draws, each against its own data sample, and the floor, the distance between
    # two data samples, is a mean over 16 pairs because it costs no sampler run.
    floors = [
        sliced_wasserstein(mixture.sample(n, generator=generator), mixture.sample(n, generator=generator),
                           generator=generator)
        for _ in range(16)
    ]
    distances = {name: [] for name in samplers}
    for _ in range(n_draws):
        data = mixture.sample(n, generator=generator)
        for name, run in samplers.items():
            distances[name].append(sliced_wasserstein(run(), data, generator=generator))
    floor = statistics.fmean(floors)
    print(f"{'sampler (exact eps)':<24} {'mean sliced W2 to data':>23} {'range over draws':>17}")
    print(f"{'two data samples (floor)':<24} {floor:>23.4f} {min(floors):8.4f} to {max(floors):.4f}")
    for name, values in distances.items():
        distance = statistics.fmean(values)
        print(f"{name:<24} {distance:>23.4f} {min(values):8.4f} to {max(values):.4f}")
        # Over generator seeds 0 to 9 each mean was 0.82 to 1.30 times the mean floor.
        assert distance < 1.6 * floor, f"{name}: mean distance {distance:.4f}, data floor {floor:.4f}"

# %% DDIM with eta = 1 on every step is the ancestral sampler
if __name__ == "__main__":
    # The two samplers draw x_T and then one noise tensor per step in the same order, so with
    # equal seeds they must produce the same samples. The noise predictor is the exact one
    # for this 100-step cosine schedule, and everything runs in float64, so the two outputs
    # may differ only by rounding.
    betas = cosine_beta_schedule(100)
    cosine_alphas_cumprod = (1 - betas).cumprod(0)

    def exact_eps_cosine(x, t):
        abar = cosine_alphas_cumprod[t[0]]
        x0_mean = mixture.denoise(x, (1 - abar).sqrt(), abar.sqrt())
        return (x - abar.sqrt() * x0_mean) / (1 - abar).sqrt()

    ancestral = sample_ddpm(exact_eps_cosine, (500, 2), betas, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)
    ddim = sample_ddim(exact_eps_cosine, (500, 2), betas, steps=100, eta=1.0,
                       generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    err = (ancestral - ddim).abs().max().item()
    print(f"DDIM(eta=1, all 100 steps) against ancestral sampling: max difference {err:.1e}")
    # Over seeds 1 to 10 the largest difference was 1.4e-13. With the predictor 0.5 x it
    # stays below 1e-14, so the growth comes from the exact predictor's steeper response to
    # its input. A schedule computed in float32 inside one of the samplers shows as 1.7e-4.
    assert err < 1e-12, f"DDIM with eta=1 differs from ancestral sampling by {err:.2e}"
