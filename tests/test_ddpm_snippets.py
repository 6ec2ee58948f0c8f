"""Fast checks of the DDPM, U-Net, digits and latent-diffusion snippets' interfaces."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from snippets.ddpm import (
    cosine_beta_schedule,
    ddim_timesteps,
    diffusion_loss,
    linear_beta_schedule,
    predict_x0,
    q_sample,
    sample_ddim,
    sample_ddpm,
)
from snippets.digits import digit_quality, frechet_distance, load_digits_tensor
from snippets.latent_diffusion import Autoencoder, latent_scale_factor
from snippets.unet import SinusoidalTimeEmbedding, UNet


def test_linear_schedule_endpoints():
    betas = linear_beta_schedule(1000)
    assert betas.dtype == torch.float64
    assert betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert betas[-1].item() == pytest.approx(0.02, abs=1e-15)


def test_linear_schedule_scales_with_timesteps():
    betas = linear_beta_schedule(250)
    assert betas[0].item() == pytest.approx(4e-4, abs=1e-15)
    assert betas[-1].item() == pytest.approx(0.08, abs=1e-15)


def test_cosine_schedule_matches_formula():
    timesteps, s = 300, 0.008
    betas = cosine_beta_schedule(timesteps, s)
    assert betas.dtype == torch.float64
    assert betas.shape == (timesteps,)

    # Nichol & Dhariwal (2021), eq. 17, computed independently with numpy.
    t = np.arange(timesteps + 1) / timesteps
    f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
    expected = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
    np.testing.assert_allclose(betas.numpy(), expected, rtol=1e-12, atol=1e-15)


def test_cosine_schedule_clips_last_beta():
    betas = cosine_beta_schedule(1000)
    assert betas.max().item() == 0.999
    assert (betas[:-1] < 0.999).all()


def test_q_sample_matches_formula():
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 1, 8, 8, generator=generator, dtype=torch.float64)
    noise = torch.randn(5, 1, 8, 8, generator=generator, dtype=torch.float64)
    alphas_cumprod = (1 - linear_beta_schedule(100)).cumprod(0)
    t = torch.tensor([0, 10, 50, 98, 99])

    x_t = q_sample(x0, t, noise, alphas_cumprod)
    for i, step in enumerate(t.tolist()):
        abar = alphas_cumprod[step].item()
        expected = math.sqrt(abar) * x0[i] + math.sqrt(1 - abar) * noise[i]
        assert torch.allclose(x_t[i], expected, atol=1e-14), step


def test_diffusion_loss_for_gaussian_data():
    # For x0 ~ N(0, I) the best predictor is eps = sqrt(1 - abar) x_t, whose expected loss
    # is abar_t, so the loss averages abar over uniformly drawn t.
    torch.manual_seed(0)
    alphas_cumprod = (1 - cosine_beta_schedule(50)).cumprod(0)

    def optimal(x_t, t):
        return (1 - alphas_cumprod[t]).sqrt().float().reshape(-1, 1) * x_t

    x0 = torch.randn(20_000, 4)
    loss = diffusion_loss(optimal, x0, alphas_cumprod).item()
    expected = alphas_cumprod.mean().item()
    assert loss == pytest.approx(expected, abs=0.02)


def test_ddim_timesteps_cover_range():
    assert ddim_timesteps(1000, 1) == [999]
    times = ddim_timesteps(1000, 50)
    assert len(times) == 50
    assert times[0] == 999
    assert times[-1] == 0
    assert all(a > b for a, b in zip(times, times[1:]))


def test_ddim_timesteps_rejects_too_many_steps():
    with pytest.raises(ValueError, match="between 1 and 10"):
        ddim_timesteps(10, 11)


def test_ddim_eta_one_equals_ancestral():
    def model(x, t):
        return 0.5 * x

    betas = cosine_beta_schedule(30)
    ancestral = sample_ddpm(model, (64, 2), betas, generator=torch.Generator().manual_seed(3))
    ddim = sample_ddim(model, (64, 2), betas, steps=30, eta=1.0,
                       generator=torch.Generator().manual_seed(3))
    assert torch.allclose(ancestral, ddim, atol=1e-5)


def test_ddim_eta_zero_is_deterministic_given_noise():
    def model(x, t):
        return 0.1 * x

    betas = linear_beta_schedule(100)
    first = sample_ddim(model, (8, 3), betas, steps=10, generator=torch.Generator().manual_seed(0))
    second = sample_ddim(model, (8, 3), betas, steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    "channels, dim_mults, full_attn, size",
    [
        (1, (1,), (True,), 8),
        (1, (1, 2), (False, True), 8),
        (2, (1, 2), (False, True), 4),
        (1, (1, 2, 4), None, 8),
        (3, (1, 2), (True, False), 16),
    ],
)
def test_unet_preserves_shape(channels, dim_mults, full_attn, size):
    model = UNet(channels=channels, dim=8, dim_mults=dim_mults, full_attn=full_attn,
                 attn_heads=1, attn_dim_head=8)
    x = torch.randn(2, channels, size, size)
    assert model(x, torch.tensor([0, 5])).shape == x.shape


def test_unet_rejects_indivisible_size():
    model = UNet(dim=8, dim_mults=(1, 2, 4), attn_heads=1, attn_dim_head=8)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 1, 6, 6), torch.tensor([0]))


def test_unet_rejects_full_attn_length():
    with pytest.raises(ValueError, match="full_attn has 1 entries"):
        UNet(dim=8, dim_mults=(1, 2), full_attn=(True,))


def test_unet_output_depends_on_time():
    torch.manual_seed(0)
    model = UNet(dim=8, attn_heads=1, attn_dim_head=8)
    x = torch.randn(1, 1, 8, 8).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([0, 500]))
    assert not torch.allclose(out[0], out[1])


def test_time_embedding_matches_formula():
    t = torch.tensor([0, 3, 777])
    embedding = SinusoidalTimeEmbedding(8, theta=100)(t).double()
    frequencies = torch.tensor([100 ** (-i / 3) for i in range(4)], dtype=torch.float64)
    angles = t.double()[:, None] * frequencies
    expected = torch.cat((angles.sin(), angles.cos()), dim=1)
    assert torch.allclose(embedding, expected, atol=1e-3)


def test_digits_split_shapes_and_range():
    train_x, train_y = load_digits_tensor("train")
    test_x, test_y = load_digits_tensor("test")
    assert train_x.shape == (1437, 1, 8, 8)
    assert test_x.shape == (360, 1, 8, 8)
    assert train_x.dtype == torch.float32
    assert train_x.min().item() == -1.0
    assert train_x.max().item() == 1.0
    assert set(test_y.tolist()) == set(range(10))
    assert len(train_y) == 1437


def test_digits_rejects_unknown_split():
    with pytest.raises(ValueError, match="invalid split 'valid'"):
        load_digits_tensor("valid")


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    b = rng.normal(0.5, 1.5, size=(400, 4))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2)
                + np.trace(cov_a + cov_b - 2 * covmean))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)


def test_digit_quality_ranks_real_above_noise():
    test_x, _ = load_digits_tensor("test")
    real = digit_quality(test_x)
    noise = digit_quality(torch.randn(360, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert 0.1 <= real["confidence"] <= 1.0
    assert 0.0 <= real["class_entropy"] <= 1.0
    assert real["frechet"] < 1.0
    assert noise["frechet"] > 100 * max(real["frechet"], 1.0)


def test_latent_scale_factor_gives_unit_std():
    torch.manual_seed(0)
    autoencoder = Autoencoder()
    images = torch.rand(64, 1, 8, 8) * 2 - 1
    scale = latent_scale_factor(autoencoder, images)
    with torch.no_grad():
        mean, logvar = autoencoder.encode(images)
    assert mean.shape == (64, 2, 4, 4)
    assert logvar.shape == (64, 2, 4, 4)
    assert (mean * scale).std().item() == pytest.approx(1.0, rel=1e-5)
    assert autoencoder.decode(mean).shape == images.shape


def test_predict_x0_clip_bounds():
    x_t = torch.tensor([[-9.0, 0.5, 9.0]])
    eps = torch.zeros_like(x_t)
    unclipped = predict_x0(x_t, eps, 0.25, clip=False)
    assert torch.equal(unclipped, x_t / 0.5)
    assert torch.equal(predict_x0(x_t, eps, 0.25, clip=True), torch.tensor([[-1.0, 1.0, 1.0]]))
    assert torch.equal(predict_x0(x_t, eps, 0.25, clip=2.5), torch.tensor([[-2.5, 1.0, 2.5]]))
