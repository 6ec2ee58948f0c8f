"""Fast checks of the continuous-time, EDM, cold-diffusion and hidden-state snippets.

Each test compares a snippet's interface with an independent closed form or identity.
"""

import math

import pytest
import torch

from snippets.cold_diffusion import (
    AdditiveDegradation,
    BlurDegradation,
    MaskDegradation,
    gaussian_blur_matrix,
    noisy_oracle,
    sample_cold,
)
from snippets.edm import (
    edm_loss_weight,
    edm_preconditioning,
    gaussian_ode_trajectory,
    karras_sigmas,
    sample_dpm_solver_2m,
    sample_euler,
    sample_heun,
)
from snippets.gaussian_mixture import DTYPE, GaussianMixture, sliced_wasserstein, uneven_mixture
from snippets.hidden_state import VARIANTS, StatefulDenoiser, sample_euler_with_state, width_for_parameters
from snippets.score_sde import (
    VESDE,
    VPSDE,
    SubVPSDE,
    ddpm_alphas_cumprod,
    denoising_score_matching_loss,
    exact_score_fn,
    sample_probability_flow,
    sample_reverse_sde,
)


def single_gaussian(mean=(0.3, -0.2), std=(0.5, 0.1)):
    return GaussianMixture([1.0], [list(mean)], [list(std)])


# %% Gaussian mixture
def test_mixture_denoiser_matches_gaussian_posterior():
    mixture = single_gaussian()
    x = torch.randn(50, 2, dtype=DTYPE)
    sigma, alpha = 0.7, 0.6
    mean = torch.tensor([0.3, -0.2], dtype=DTYPE)
    std = torch.tensor([0.5, 0.1], dtype=DTYPE)
    # Posterior mean of x0 ~ N(mean, std^2) observed as alpha * x0 + sigma * eps.
    expected = mean + alpha * std**2 / (alpha**2 * std**2 + sigma**2) * (x - alpha * mean)
    assert torch.allclose(mixture.denoise(x, sigma, alpha), expected, atol=1e-14)


def test_mixture_tweedie_identity():
    mixture = uneven_mixture()
    x = 2 * torch.randn(100, 2, dtype=DTYPE)
    sigma = torch.linspace(0.01, 3.0, 100, dtype=DTYPE)
    gap = mixture.denoise(x, sigma) - (x + sigma[:, None] ** 2 * mixture.score(x, sigma))
    assert gap.abs().max() < 1e-12


def test_mixture_score_is_log_prob_gradient():
    mixture = uneven_mixture()
    x = torch.randn(20, 2, dtype=DTYPE, requires_grad=True)
    mixture.log_prob(x, 0.4, 0.9).sum().backward()
    assert torch.allclose(x.grad, mixture.score(x.detach(), 0.4, 0.9), atol=1e-12)


def test_mixture_density_integrates_to_one():
    mixture = uneven_mixture()
    grid = torch.linspace(-3, 3, 301, dtype=DTYPE)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    density = mixture.log_prob(points, 0.1).exp()
    total = density.sum().item() * (grid[1] - grid[0]).item() ** 2
    assert abs(total - 1.0) < 1e-3


def test_mixture_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([1.0, -1.0], [[0.0], [1.0]], [1.0, 1.0])


def test_sliced_wasserstein_of_a_shift():
    # For a shift c and uniform directions in d dimensions, E[(c . theta)^2] = |c|^2 / d.
    x = torch.randn(500, 2, dtype=DTYPE)
    shift = torch.tensor([0.6, -0.8], dtype=DTYPE)
    distance = sliced_wasserstein(x + shift, x, n_projections=4000, generator=torch.Generator().manual_seed(0))
    assert abs(distance - 1.0 / math.sqrt(2)) < 0.02


# %% SDEs
def test_vp_marginal_matches_formula():
    t = torch.linspace(0.0, 1.0, 11, dtype=DTYPE)
    mean_coefficient, std = VPSDE().marginal(t)
    integral = 0.1 * t + 0.5 * (20.0 - 0.1) * t**2
    assert torch.allclose(mean_coefficient, torch.exp(-integral / 2), atol=1e-15)
    assert torch.allclose(std, torch.sqrt(1 - torch.exp(-integral)), atol=1e-15)


def test_subvp_variance_is_vp_variance_squared():
    t = torch.linspace(0.05, 1.0, 11, dtype=DTYPE)
    assert torch.allclose(SubVPSDE().marginal(t)[1], VPSDE().marginal(t)[1] ** 2, atol=1e-15)


def test_ve_marginal_and_prior_scale():
    sde = VESDE()
    std = sde.marginal(torch.tensor([0.0, 1.0], dtype=DTYPE))[1]
    assert std[0] == 0.0
    assert abs(std[1].item() - math.sqrt(50.0**2 - 0.01**2)) < 1e-12


def test_ddpm_alphas_cumprod_converges_to_vp():
    vp = VPSDE()
    gaps = []
    for n in (1000, 10000):
        t = torch.arange(1, n + 1, dtype=DTYPE) / n
        gaps.append((ddpm_alphas_cumprod(n) - vp.marginal(t)[0] ** 2).abs().max().item())
    assert gaps[0] < 1e-3
    assert gaps[1] < gaps[0] / 8


def test_probability_flow_maps_prior_to_gaussian_data():
    mixture = GaussianMixture([1.0], [[0.5]], [0.2])
    sde = VPSDE()
    x_T = sde.prior_sample((2000, 1), generator=torch.Generator().manual_seed(0))
    x = sample_probability_flow(sde, exact_score_fn(sde, mixture), x_T, 200)
    assert abs(x.mean().item() - 0.5) < 0.02
    assert abs(x.std().item() - 0.2) < 0.02


def test_reverse_sde_maps_prior_to_gaussian_data():
    mixture = GaussianMixture([1.0], [[-0.3]], [0.3])
    sde = VESDE()
    generator = torch.Generator().manual_seed(0)
    x_T = sde.prior_sample((2000, 1), generator=generator)
    x = sample_reverse_sde(sde, exact_score_fn(sde, mixture), x_T, 200, generator=generator)
    assert abs(x.mean().item() + 0.3) < 0.03
    assert abs(x.std().item() - 0.3) < 0.03


def test_score_matching_loss_prefers_exact_score():
    mixture = uneven_mixture()
    sde = VPSDE()
    exact = exact_score_fn(sde, mixture)
    x0 = mixture.sample(20000, generator=torch.Generator().manual_seed(0))
    losses = []
    for score in (exact, lambda x, t: 1.2 * exact(x, t)):
        losses.append(denoising_score_matching_loss(score, sde, x0, generator=torch.Generator().manual_seed(1)).item())
    assert losses[0] < losses[1]


# %% EDM
def test_karras_sigmas_formula_and_shape():
    sigmas = karras_sigmas(18)
    assert sigmas.dtype == torch.float64
    assert len(sigmas) == 19
    assert sigmas[0] == pytest.approx(80.0)
    assert sigmas[17] == pytest.approx(0.002)
    assert sigmas[18] == 0.0
    i = 5
    expected = (80.0 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    assert sigmas[i].item() == pytest.approx(expected, rel=1e-14)
    assert (sigmas[:-1].diff() < 0).all()


def test_karras_sigmas_rejects_one_level():
    with pytest.raises(ValueError):
        karras_sigmas(1)


def test_edm_preconditioning_identities():
    sigma = torch.logspace(-3, 2, 20, dtype=DTYPE)
    c_skip, c_out, c_in, c_noise = edm_preconditioning(sigma)
    # Unit-variance input, and an effective loss weight of one on the network's target.
    assert torch.allclose(c_in**2 * (sigma**2 + 0.25), torch.ones_like(sigma))
    assert torch.allclose(edm_loss_weight(sigma) * c_out**2, torch.ones_like(sigma))
    assert torch.allclose(c_skip, 0.25 / (sigma**2 + 0.25))
    assert torch.allclose(c_noise, torch.log(sigma) / 4)


def counting(denoiser):
    calls = []

    def wrapped(x, sigma):
        calls.append(1)
        return denoiser(x, sigma)

    return wrapped, calls


def test_heun_and_euler_evaluation_counts():
    mixture = single_gaussian()
    x = 80.0 * torch.randn(4, 2, dtype=DTYPE)
    heun, heun_calls = counting(mixture.denoise)
    euler, euler_calls = counting(mixture.denoise)
    sample_heun(heun, x, karras_sigmas(18))
    sample_euler(euler, x, karras_sigmas(18))
    assert len(heun_calls) == 35
    assert len(euler_calls) == 18


def test_heun_matches_single_gaussian_trajectory():
    mixture = single_gaussian()
    x_T = 80.0 * torch.randn(64, 2, dtype=DTYPE, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.3, -0.2], dtype=DTYPE)
    std = torch.tensor([0.5, 0.1], dtype=DTYPE)
    exact = gaussian_ode_trajectory(x_T, 80.0, 0.0, mean, std)
    x = sample_heun(mixture.denoise, x_T, karras_sigmas(128))
    assert (x - exact).norm(dim=1).max() < 5e-3


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun, sample_dpm_solver_2m])
def test_samplers_exact_for_constant_denoiser(sampler):
    # With D = c the ODE is dx/dsigma = (x - c) / sigma, so x(0) = c from any start.
    c = torch.tensor([[0.7, -1.1]], dtype=DTYPE)
    x_T = 80.0 * torch.randn(8, 2, dtype=DTYPE)
    x = sampler(lambda x, sigma: c.expand_as(x), x_T, karras_sigmas(6))
    assert torch.allclose(x, c.expand_as(x), atol=1e-12)


def test_heun_churn_is_seeded():
    mixture = single_gaussian()
    x_T = 80.0 * torch.randn(8, 2, dtype=DTYPE)
    runs = [
        sample_heun(mixture.denoise, x_T, karras_sigmas(10), s_churn=10.0, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    deterministic = sample_heun(mixture.denoise, x_T, karras_sigmas(10))
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], deterministic)


# %% Cold diffusion
STEPS = 10


def degradations():
    delta = torch.randn(1, 8, 8, dtype=DTYPE, generator=torch.Generator().manual_seed(1))
    return [AdditiveDegradation(delta, STEPS), BlurDegradation(STEPS), MaskDegradation(STEPS)]


@pytest.mark.parametrize("degrade", degradations(), ids=["additive", "blur", "mask"])
@pytest.mark.parametrize("algorithm", [1, 2])
def test_cold_sampler_exact_with_perfect_restoration(degrade, algorithm):
    x0 = torch.rand(4, 1, 8, 8, dtype=DTYPE) * 2 - 1
    restore = noisy_oracle(x0, lambda x_s, s: torch.zeros_like(x_s))
    x = sample_cold(restore, degrade, degrade(x0, STEPS), STEPS, algorithm)
    assert torch.allclose(x, x0, atol=1e-12)


def test_cold_algorithm_two_exact_for_additive():
    degrade = degradations()[0]
    x0 = torch.rand(4, 1, 8, 8, dtype=DTYPE) * 2 - 1
    restore = noisy_oracle(x0, lambda x_s, s: 0.3 * torch.cos(2 * x_s + s))
    x_T = degrade(x0, STEPS)
    assert (sample_cold(restore, degrade, x_T, STEPS, 2) - x0).abs().max() < 1e-10
    assert (sample_cold(restore, degrade, x_T, STEPS, 1) - x0).abs().max() > 0.01


def test_cold_sampler_rejects_unknown_algorithm():
    with pytest.raises(ValueError, match="algorithm"):
        sample_cold(lambda x, s: x, degradations()[0], torch.zeros(1, 1, 8, 8), STEPS, 3)


def test_blur_keeps_constant_images():
    blur = BlurDegradation(STEPS)
    constant = torch.full((2, 1, 8, 8), 0.4, dtype=DTYPE)
    assert torch.allclose(blur(constant, STEPS), constant, atol=1e-14)
    assert torch.allclose(gaussian_blur_matrix(8, 1.0).sum(1), torch.ones(8, dtype=DTYPE))


def test_degradations_accept_per_image_levels():
    x0 = torch.rand(5, 1, 8, 8, dtype=DTYPE)
    levels = torch.tensor([0, 3, 5, 9, 10])
    for degrade in degradations():
        batched = degrade(x0, levels)
        one_by_one = torch.cat([degrade(x0[i : i + 1], int(levels[i])) for i in range(5)])
        assert torch.allclose(batched, one_by_one, atol=1e-14)
        assert torch.allclose(degrade(x0, 0), x0)


def test_mask_hides_everything_at_last_level():
    mask = MaskDegradation(STEPS, fill=0.0)
    assert (mask(torch.ones(1, 1, 8, 8, dtype=DTYPE), STEPS) == 0).all()


# %% Hidden state
@pytest.mark.parametrize("variant", VARIANTS)
def test_stateful_denoiser_shapes(variant):
    model = StatefulDenoiser(2, 32, variant)
    x = torch.randn(6, 2)
    denoised, state = model(x, torch.full((6,), 0.5))
    assert denoised.shape == (6, 2)
    if variant == "baseline":
        assert state is None
    else:
        assert state.shape == (6, model.state_dim)
    assert sample_euler_with_state(model, 80 * x, karras_sigmas(4).float()).shape == (6, 2)


def test_width_for_parameters_matches_counts():
    target = sum(p.numel() for p in StatefulDenoiser(64, 192, "self-conditioning").parameters())
    for variant in VARIANTS:
        width = width_for_parameters(64, variant, target)
        count = sum(p.numel() for p in StatefulDenoiser(64, width, variant).parameters())
        assert abs(count - target) / target < 0.01


def test_stateful_denoiser_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant"):
        StatefulDenoiser(2, 32, "lstm")
