# kb: timeout=90
# %% [markdown]
# # Continuous-time diffusion: forward SDE, reverse SDE and probability-flow ODE
# Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
# Equations", arXiv 2011.13456. The data is noised by a forward SDE
# $dx = f(x, t)\,dt + g(t)\,dw$ on $t \in [0, 1]$ (eq. 5). Samples come back through the
# reverse-time SDE $dx = [f(x, t) - g(t)^2 \nabla_x \log p_t(x)]\,dt + g(t)\,d\bar w$ (eq. 6,
# after Anderson 1982) or through the probability-flow ODE
# $dx/dt = f(x, t) - \tfrac12 g(t)^2 \nabla_x \log p_t(x)$ (eq. 13), which has the same
# marginals $p_t$. The score $\nabla_x \log p_t$ is learned by denoising score matching (eq. 7).
#
# Three SDEs, with the constants used in the paper:
#
# | SDE | drift $f(x, t)$ | diffusion $g(t)$ | marginal of $x_t$ given $x_0$ |
# | --- | --- | --- | --- |
# | VE (eq. 9) | $0$ | $\sigma(t)\sqrt{2 \ln(\sigma_{max}/\sigma_{min})}$, $\sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^t$ | $\mathcal N(x_0, \sigma(t)^2 - \sigma_{min}^2)$ |
# | VP (eq. 11) | $-\tfrac12 \beta(t) x$ | $\sqrt{\beta(t)}$ | $\mathcal N(e^{-B(t)/2} x_0, 1 - e^{-B(t)})$ |
# | sub-VP (eq. 12) | $-\tfrac12 \beta(t) x$ | $\sqrt{\beta(t)(1 - e^{-2B(t)})}$ | $\mathcal N(e^{-B(t)/2} x_0, (1 - e^{-B(t)})^2)$ |
#
# with $\beta(t) = \beta_{min} + t(\beta_{max} - \beta_{min})$, $B(t) = \int_0^t \beta(s)\,ds$,
# $\beta_{min} = 0.1$, $\beta_{max} = 20$, $\sigma_{min} = 0.01$, $\sigma_{max} = 50$.
#
# The checks below use the exact score of a Gaussian mixture (`snippets/gaussian_mixture.py`),
# so a sampler's error is its discretisation error alone, and then a small trained network.

# %%
import math

import numpy as np
import torch
import torch.nn as nn
from scipy.integrate import solve_ivp

from snippets.gaussian_mixture import DTYPE, sliced_wasserstein, uneven_mixture


def _per_sample(values, x):
    """Reshape per-sample values (B,) so they broadcast against x (B, ...)."""
    return values.reshape(-1, *([1] * (x.ndim - 1)))


# %% The three SDEs
class VPSDE:
    """Variance-preserving SDE, the continuous limit of DDPM (eq. 11)."""

    T = 1.0

    def __init__(self, beta_min=0.1, beta_max=20.0):
        self.beta_min = beta_min  # beta(0); DDPM's beta_1 = 1e-4 is beta_min / 1000
        self.beta_max = beta_max  # beta(1); DDPM's beta_T = 0.02 is beta_max / 1000

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """B(t), the integral of beta from 0 to t."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def sde(self, x, t):
        """Return the drift f(x, t) (shape of x) and the diffusion g(t) (B,)."""
        drift = -0.5 * _per_sample(self.beta(t), x) * x
        return drift, torch.sqrt(self.beta(t))

    def marginal(self, t):
        """Return (mean_coefficient, std) of x_t given x_0, each shaped like t."""
        mean_coefficient = torch.exp(-0.5 * self.integrated_beta(t))
        return mean_coefficient, torch.sqrt(-torch.expm1(-self.integrated_beta(t)))

    def prior_sample(self, shape, generator=None):
        return torch.randn(shape, dtype=DTYPE, generator=generator)


class SubVPSDE(VPSDE):
    """Sub-VP SDE (eq. 12): the VP drift, with noise scaled so the variance stays below VP's."""

    def sde(self, x, t):
        drift = -0.5 * _per_sample(self.beta(t), x) * x
        discount = -torch.expm1(-2.0 * self.integrated_beta(t))
        return drift, torch.sqrt(self.beta(t) * discount)

    def marginal(self, t):
        mean_coefficient = torch.exp(-0.5 * self.integrated_beta(t))
        return mean_coefficient, -torch.expm1(-self.integrated_beta(t))


class VESDE:
    """Variance-exploding SDE, the continuous limit of SMLD/NCSN noise levels (eq. 9)."""

    T = 1.0

    def __init__(self, sigma_min=0.01, sigma_max=50.0):
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x, t):
        diffusion = self.sigma(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), diffusion

    def marginal(self, t):
        # NOTE: Song et al.'s code uses std = sigma(t), treating x_0 as already noised by
        # sigma_min. The exact transition of the SDE from clean x_0 is used here instead.
        std = torch.sqrt(self.sigma(t) ** 2 - self.sigma_min**2)
        return torch.ones_like(t), std

    def prior_sample(self, shape, generator=None):
        return self.sigma_max * torch.randn(shape, dtype=DTYPE, generator=generator)


def exact_score_fn(sde, mixture):
    """Return score(x, t), the exact score of the noised mixture marginal p_t."""

    def score(x, t):
        mean_coefficient, std = sde.marginal(t)
        return mixture.score(x, std, alpha=mean_coefficient)

    return score


# %% Samplers
def sample_reverse_sde(sde, score_fn, x, n_steps, t_end=1e-3, generator=None):
    """Euler-Maruyama on the reverse-time SDE (eq. 6), from t = T down to t_end.

    The last step adds no noise, as in Song et al.'s code, so the output is the mean
    of the final transition.
    """
    times = torch.linspace(sde.T, t_end, n_steps + 1, dtype=DTYPE)
    for i in range(n_steps):
        t = times[i].expand(x.shape[0])
        dt = times[i + 1] - times[i]  # negative: time runs backwards

        # Reverse drift f - g^2 * score.
        drift, diffusion = sde.sde(x, t)
        g = _per_sample(diffusion, x)
        reverse_drift = drift - g**2 * score_fn(x, t)

        # Step, then inject noise of variance g^2 |dt| except on the last step.
        x = x + reverse_drift * dt
        if i < n_steps - 1:
            x = x + g * torch.sqrt(-dt) * torch.randn(x.shape, dtype=x.dtype, generator=generator)
    return x


def sample_probability_flow(sde, score_fn, x, n_steps, t_end=1e-3):
    """Euler steps on the probability-flow ODE (eq. 13), from t = T down to t_end."""
    times = torch.linspace(sde.T, t_end, n_steps + 1, dtype=DTYPE)
    for i in range(n_steps):
        t = times[i].expand(x.shape[0])
        dt = times[i + 1] - times[i]

        drift, diffusion = sde.sde(x, t)
        velocity = drift - 0.5 * _per_sample(diffusion, x) ** 2 * score_fn(x, t)
        x = x + velocity * dt
    return x


def sample_predictor_corrector(sde, score_fn, x, n_steps, snr=0.16, n_corrector=1, t_end=1e-3, generator=None):
    """Predictor-corrector sampling of Song et al. (2021) with a Langevin corrector.

    Predictor: one Euler-Maruyama step of the reverse SDE. Corrector: `n_corrector`
    Langevin steps at the new time, with the step size set so the ratio of the score
    step to the noise step is `snr` (0.16 is the paper's value for CIFAR-10 with VE).
    The norms in that ratio are averaged over the batch, as in Song et al.'s code: in two
    dimensions a per-sample ratio blows up wherever the score is near zero.
    """
    times = torch.linspace(sde.T, t_end, n_steps + 1, dtype=DTYPE)
    for i in range(n_steps):
        t = times[i].expand(x.shape[0])
        t_next = times[i + 1].expand(x.shape[0])
        dt = times[i + 1] - times[i]

        # Predictor: Euler-Maruyama on the reverse SDE.
        drift, diffusion = sde.sde(x, t)
        g = _per_sample(diffusion, x)
        x = x + (drift - g**2 * score_fn(x, t)) * dt
        if i < n_steps - 1:
            x = x + g * torch.sqrt(-dt) * torch.randn(x.shape, dtype=x.dtype, generator=generator)

        # Corrector: Langevin MCMC targeting p at t_next. The factor alpha is the
        # one-step signal decay (1 - beta_i in DDPM terms, 1 for VE).
        alpha = (sde.marginal(t)[0] / sde.marginal(t_next)[0]) ** 2
        for _ in range(n_corrector):
            score = score_fn(x, t_next)
            noise = torch.randn(x.shape, dtype=x.dtype, generator=generator)
            score_norm = score.flatten(1).norm(dim=1).mean()
            noise_norm = noise.flatten(1).norm(dim=1).mean()
            step = 2 * alpha * (snr * noise_norm / score_norm) ** 2  # (B,) through alpha
            x = x + _per_sample(step, x) * score + _per_sample(torch.sqrt(2 * step), x) * noise
    return x


# %% Denoising score matching
def denoising_score_matching_loss(score_model, sde, x0, t_min=1e-5, generator=None):
    """Denoising score-matching loss (eq. 7) with weight lambda(t) = std(t)^2.

    With that weight the loss is E || std * s(x_t, t) + z ||^2, where x_t = m(t) x_0 + std z.
    """
    t = t_min + (sde.T - t_min) * torch.rand(x0.shape[0], dtype=x0.dtype, generator=generator)
    z = torch.randn(x0.shape, dtype=x0.dtype, generator=generator)
    mean_coefficient, std = sde.marginal(t)
    x_t = _per_sample(mean_coefficient, x0) * x0 + _per_sample(std, x0) * z
    residual = _per_sample(std, x0) * score_model(x_t, t) + z
    return residual.flatten(1).pow(2).sum(1).mean()


class ScoreMLP(nn.Module):
    """Small score network for 2-D data: predicts the noise, score = -noise / std(t)."""

    def __init__(self, sde, dim=2, width=128, n_frequencies=16):
        super().__init__()
        self.sde = sde
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(200.0), n_frequencies)))
        self.net = nn.Sequential(
            nn.Linear(dim + 2 * n_frequencies, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, dim),
        )

    def forward(self, x, t):
        angles = t[:, None].float() * self.frequencies[None]  # (B, F)
        features = torch.cat([x.float(), torch.sin(angles), torch.cos(angles)], dim=1)
        noise = self.net(features).to(x.dtype)
        std = self.sde.marginal(t)[1]
        return -noise / _per_sample(std, x)


def train_score_mlp(sde, mixture, n_steps=3000, batch_size=512, seed=0):
    """Train a ScoreMLP in float32 by denoising score matching on fresh mixture samples."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ScoreMLP(sde)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    for _ in range(n_steps):
        x0 = mixture.sample(batch_size, generator=generator).float()
        loss = denoising_score_matching_loss(model, sde, x0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model


# %% DDPM is a discretisation of the VP SDE
def ddpm_alphas_cumprod(n_steps, beta_min=0.1, beta_max=20.0):
    """DDPM's alpha-bar for a linear schedule beta_i from beta_min/N to beta_max/N.

    With N = 1000 this is Ho et al. (2020)'s schedule, beta from 1e-4 to 0.02.
    """
    betas = torch.linspace(beta_min / n_steps, beta_max / n_steps, n_steps, dtype=DTYPE)
    return torch.cumprod(1.0 - betas, dim=0)


if __name__ == "__main__":
    # The tensors here are tiny, so a second intra-op thread only adds synchronisation.
    # With other processes on the cores, two threads ran a training step 25 times slower.
    torch.set_num_threads(1)

    vp = VPSDE()
    print(f"{'N':>6} {'max |alphas_cumprod - m(i/N)^2|':>32}")
    gaps = {}
    for n in (100, 1000, 10000):
        t = torch.arange(1, n + 1, dtype=DTYPE) / n
        gaps[n] = (ddpm_alphas_cumprod(n) - vp.marginal(t)[0] ** 2).abs().max().item()
        print(f"{n:6d} {gaps[n]:32.2e}")
    assert gaps[1000] < 5e-3, f"DDPM's alphas_cumprod is {gaps[1000]:.2e} away from the VP marginal"
    assert gaps[10000] < gaps[1000] / 5, f"gap does not shrink with N: {gaps}"


# %% Marginals against the moment equations
# For a linear drift f = a(t) x, the mean m and variance v of x_t given x_0 obey
# dm/dt = a m and dv/dt = 2 a v + g^2. Solving these numerically checks each closed form.
def solve_moments(sde, t_end):
    def rates(t, state):
        t_tensor = torch.tensor([t], dtype=DTYPE)
        drift, diffusion = sde.sde(torch.ones(1, 1, dtype=DTYPE), t_tensor)
        a = drift.item()
        m, v = state
        return [a * m, 2 * a * v + diffusion.item() ** 2]

    solution = solve_ivp(rates, (0.0, t_end), [1.0, 0.0], rtol=1e-11, atol=1e-13)
    m, v = solution.y[:, -1]
    return m, math.sqrt(v)


if __name__ == "__main__":
    sdes = {"VP": VPSDE(), "sub-VP": SubVPSDE(), "VE": VESDE()}
    print(f"{'SDE':>6} {'t':>5} {'mean coef':>10} {'std':>10} {'ODE gap':>9}")
    for name, sde in sdes.items():
        for t_value in (0.1, 0.5, 1.0):
            mean_coefficient, std = sde.marginal(torch.tensor([t_value], dtype=DTYPE))
            m, s = solve_moments(sde, t_value)
            gap = max(abs(m - mean_coefficient.item()), abs(s - std.item()))
            print(f"{name:>6} {t_value:5.2f} {mean_coefficient.item():10.5f} {std.item():10.5f} {gap:9.1e}")
            assert gap < 1e-7 * max(1.0, s), f"{name} marginal at t={t_value} is off by {gap:.2e}"


# %% Sampling the mixture with the exact score
if __name__ == "__main__":
    import time

    mixture = uneven_mixture()
    n_samples = 2000
    generator = torch.Generator().manual_seed(1)
    reference = mixture.sample(n_samples, generator=generator)
    # The sliced distance between two exact draws varies by a factor of two from draw to
    # draw, so the noise floor is averaged over four draws.
    floor = np.mean([
        sliced_wasserstein(mixture.sample(n_samples, generator=generator), reference, generator=generator)
        for _ in range(4)
    ])
    print(f"sliced W2 noise floor (mean over exact draws of {n_samples} points): {floor:.4f}")

    # Each sampler gets 250 score evaluations: PC spends half of them on the corrector.
    samplers = {
        "reverse SDE, Euler-Maruyama": lambda sde, score, x: sample_reverse_sde(sde, score, x, 250, generator=generator),
        "probability-flow ODE, Euler": lambda sde, score, x: sample_probability_flow(sde, score, x, 250),
        "predictor-corrector": lambda sde, score, x: sample_predictor_corrector(sde, score, x, 125, generator=generator),
    }
    print(f"{'SDE':>6}  {'sampler':<28} {'NFE':>4} {'sliced W2':>10} {'seconds':>8}")
    exact_samples = {}
    for name, sde in sdes.items():
        score = exact_score_fn(sde, mixture)
        for sampler_name, sampler in samplers.items():
            start = time.perf_counter()
            x = sampler(sde, score, sde.prior_sample((n_samples, 2), generator=generator))
            seconds = time.perf_counter() - start
            distance = sliced_wasserstein(x, reference, generator=generator)
            exact_samples[name, sampler_name] = x
            print(f"{name:>6}  {sampler_name:<28} {250:4d} {distance:10.4f} {seconds:8.2f}")
            assert distance < 2.5 * floor, f"{name} {sampler_name}: sliced W2 {distance:.4f} vs floor {floor:.4f}"


# %% A trained score network
if __name__ == "__main__":
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    model = train_score_mlp(vp, mixture)
    print(f"trained a {sum(p.numel() for p in model.parameters())}-parameter score MLP on VP "
          f"in {time.perf_counter() - start:.1f} s (2 CPU cores)")

    with torch.no_grad():
        x_T = vp.prior_sample((n_samples, 2), generator=generator)
        learned_sde = sample_reverse_sde(vp, model, x_T, 250, generator=generator)
        learned_ode = sample_probability_flow(vp, model, x_T, 250)
    for label, x in [("reverse SDE", learned_sde), ("probability-flow ODE", learned_ode)]:
        print(f"learned score, {label:<21} sliced W2 {sliced_wasserstein(x, reference, generator=generator):.4f}")

    fig, axes = plt.subplots(1, 3, figsize=(9, 3), sharex=True, sharey=True)
    panels = [
        ("data", reference),
        ("exact score, VP reverse SDE", exact_samples["VP", "reverse SDE, Euler-Maruyama"]),
        ("trained MLP, VP reverse SDE", learned_sde),
    ]
    for ax, (title, points) in zip(axes, panels):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-2, 2)
        ax.set_ylim(-2, 2)
        ax.set_aspect("equal")
    fig.tight_layout()
    plt.show()
