# kb: timeout=30
# %% [markdown]
# # A Gaussian mixture with an exact denoiser and score
# When the data distribution is a mixture of Gaussians, every quantity a
# diffusion sampler needs has a closed form, so samplers can be checked
# against exact answers instead of against a trained network.
#
# Let the data be $p_0(x_0) = \sum_k w_k \, \mathcal{N}(x_0; \mu_k, \operatorname{diag}(s_k^2))$
# and noise it as $x = \alpha x_0 + \sigma \varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$.
# Here $\alpha = 1$ in the variance-exploding view of Karras et al. (2022) and
# $\alpha = \sqrt{\bar\alpha_t}$ for DDPM or the VP SDE. Each component stays
# Gaussian, so the noised marginal is again a mixture:
#
# $$
# p(x) = \sum_k w_k \, \mathcal{N}\big(x; \alpha \mu_k, \operatorname{diag}(v_k)\big),
# \qquad v_k = \alpha^2 s_k^2 + \sigma^2 .
# $$
#
# With responsibilities $r_k(x) = w_k \mathcal{N}(x; \alpha\mu_k, v_k) / p(x)$, the score is
# $\nabla_x \log p(x) = -\sum_k r_k(x) (x - \alpha\mu_k) / v_k$, and the optimal denoiser
# (the posterior mean, per-component Gaussian conditioning) is
#
# $$
# \mathbb{E}[x_0 \mid x] = \sum_k r_k(x) \Big(\mu_k + \frac{\alpha s_k^2}{v_k}(x - \alpha\mu_k)\Big).
# $$
#
# The two are tied by Tweedie's formula, $\alpha \, \mathbb{E}[x_0 \mid x] = x + \sigma^2 \nabla_x \log p(x)$,
# which holds for any data distribution under Gaussian noise. The code computes both
# independently and checks that they agree.
# Everything is float64 because the checks downstream claim exactness.

# %%
import math

import torch

DTYPE = torch.float64


# %% The mixture
class GaussianMixture:
    """Mixture of diagonal Gaussians in d dimensions, noised as x = alpha * x0 + sigma * eps.

    `sigma` and `alpha` may be floats or tensors of shape (batch,), one value per row of x.
    Shape letters: B batch, K components, D dimensions.
    """

    def __init__(self, weights, means, stds):
        self.means = torch.as_tensor(means, dtype=DTYPE)  # (K, D)
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(self.means.shape)}")
        n_components, dim = self.means.shape

        weights = torch.as_tensor(weights, dtype=DTYPE)
        if weights.shape != (n_components,) or (weights <= 0).any():
            raise ValueError(f"weights must be {n_components} positive numbers, got {weights.tolist()}")
        self.weights = weights / weights.sum()  # (K,)

        stds = torch.as_tensor(stds, dtype=DTYPE)
        if stds.ndim == 1:  # isotropic: one std per component
            stds = stds[:, None].expand(n_components, dim)
        if stds.shape != (n_components, dim) or (stds <= 0).any():
            raise ValueError(f"stds must be positive with shape (K,) or (K, D), got {tuple(stds.shape)}")
        self.stds = stds.clone()  # (K, D)

    @property
    def dim(self):
        return self.means.shape[1]

    def sample(self, n, generator=None):
        """Draw n clean samples x0, shape (n, D)."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, dtype=DTYPE, generator=generator)
        return self.means[component] + self.stds[component] * eps

    def mean_and_covariance(self):
        """Return the mixture's overall mean (D,) and covariance (D, D)."""
        mean = self.weights @ self.means
        centred = self.means - mean
        second_moment = torch.einsum("k,kd,ke->de", self.weights, centred, centred)
        within = torch.diag(self.weights @ self.stds**2)
        return mean, second_moment + within

    def _noised_components(self, x, sigma, alpha):
        """Return component means alpha*mu (B, K, D), variances v (B, K, D) and responsibilities (B, K)."""
        x = torch.as_tensor(x, dtype=DTYPE)
        batch = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=DTYPE).reshape(-1, 1, 1).expand(batch, 1, 1)
        alpha = torch.as_tensor(alpha, dtype=DTYPE).reshape(-1, 1, 1).expand(batch, 1, 1)

        centres = alpha * self.means[None]  # (B, K, D)
        variances = alpha**2 * self.stds[None] ** 2 + sigma**2  # (B, K, D)

        diff = x[:, None, :] - centres  # (B, K, D)
        log_normal = -0.5 * (diff**2 / variances + torch.log(2 * math.pi * variances)).sum(-1)  # (B, K)
        log_joint = torch.log(self.weights)[None] + log_normal
        responsibilities = torch.softmax(log_joint, dim=1)
        return centres, variances, responsibilities, torch.logsumexp(log_joint, dim=1)

    def log_prob(self, x, sigma=0.0, alpha=1.0):
        """Log-density of the noised marginal at x (B, D); returns (B,)."""
        return self._noised_components(x, sigma, alpha)[3]

    def score(self, x, sigma, alpha=1.0):
        """Score grad_x log p(x) of the noised marginal, shape (B, D)."""
        x = torch.as_tensor(x, dtype=DTYPE)
        centres, variances, responsibilities, _ = self._noised_components(x, sigma, alpha)
        per_component = -(x[:, None, :] - centres) / variances  # (B, K, D)
        return (responsibilities[..., None] * per_component).sum(1)

    def denoise(self, x, sigma, alpha=1.0):
        """Optimal denoiser E[x0 | x] under squared error, shape (B, D)."""
        x = torch.as_tensor(x, dtype=DTYPE)
        centres, variances, responsibilities, _ = self._noised_components(x, sigma, alpha)
        alpha = torch.as_tensor(alpha, dtype=DTYPE).reshape(-1, 1, 1)
        gain = alpha * self.stds[None] ** 2 / variances  # (B, K, D)
        posterior_means = self.means[None] + gain * (x[:, None, :] - centres)
        return (responsibilities[..., None] * posterior_means).sum(1)


# %% Ready-made mixtures and a distribution distance
def ring_mixture(n_components=8, radius=1.0, std=0.08):
    """Return a 2-D mixture of equal-weight Gaussians evenly spaced on a circle."""
    angles = torch.arange(n_components, dtype=DTYPE) * (2 * math.pi / n_components)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    return GaussianMixture(torch.ones(n_components), means, torch.full((n_components,), std))


def uneven_mixture():
    """Return a 2-D mixture with unequal weights and anisotropic components, radius about 1."""
    weights = [0.45, 0.3, 0.15, 0.1]
    means = [[-0.8, -0.4], [0.7, 0.6], [0.6, -0.9], [-0.5, 1.0]]
    stds = [[0.25, 0.08], [0.1, 0.3], [0.05, 0.05], [0.15, 0.15]]
    return GaussianMixture(weights, means, stds)


def sliced_wasserstein(x, y, n_projections=256, generator=None):
    """Sliced 2-Wasserstein distance between two equal-size point clouds (N, D).

    Projects both clouds onto random unit directions, where the 1-D optimal transport
    pairs sorted values, and returns sqrt of the mean squared gap over directions.
    With finite samples the value has a noise floor, so compare it against the distance
    between two independent draws from the same distribution.
    """
    x = torch.as_tensor(x, dtype=DTYPE)
    y = torch.as_tensor(y, dtype=DTYPE)
    if x.shape != y.shape:
        raise ValueError(f"point clouds must have equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")

    directions = torch.randn(x.shape[1], n_projections, dtype=DTYPE, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    x_sorted = torch.sort(x @ directions, dim=0).values  # (N, P)
    y_sorted = torch.sort(y @ directions, dim=0).values
    return ((x_sorted - y_sorted) ** 2).mean().sqrt().item()


# %% Check the closed forms
if __name__ == "__main__":
    generator = torch.Generator().manual_seed(0)
    mixture = uneven_mixture()
    x0 = mixture.sample(4000, generator=generator)

    # The sample moments approach the closed-form moments.
    mean, covariance = mixture.mean_and_covariance()
    print(f"sample mean {x0.mean(0).numpy().round(3)}   exact mean {mean.numpy().round(3)}")
    assert torch.allclose(x0.mean(0), mean, atol=0.03), (x0.mean(0), mean)
    assert torch.allclose(torch.cov(x0.T), covariance, atol=0.03), (torch.cov(x0.T), covariance)

    print(f"{'sigma':>6} {'alpha':>6} {'tweedie gap':>12} {'autograd gap':>13} {'mc denoiser gap':>16}")
    for sigma, alpha in [(0.01, 1.0), (0.3, 1.0), (2.0, 1.0), (0.5, 0.8), (1.0, 0.3)]:
        eps = torch.randn(x0.shape, dtype=DTYPE, generator=generator)
        x = alpha * x0 + sigma * eps

        # Tweedie: alpha * E[x0 | x] = x + sigma^2 * score.
        score = mixture.score(x, sigma, alpha)
        denoised = mixture.denoise(x, sigma, alpha)
        tweedie_gap = (alpha * denoised - (x + sigma**2 * score)).abs().max().item()

        # The score is the gradient of log_prob.
        x_grad = x[:16].clone().requires_grad_(True)
        mixture.log_prob(x_grad, sigma, alpha).sum().backward()
        autograd_gap = (x_grad.grad - score[:16]).abs().max().item()

        # E[x0 | x] is the regression of x0 on x: the residual x0 - E[x0|x] has mean zero and
        # is uncorrelated with E[x0|x] itself. Checked here by Monte Carlo, to within its noise.
        residual = x0 - denoised
        mc_gap = (residual * denoised).mean().abs().item()

        print(f"{sigma:6.2f} {alpha:6.2f} {tweedie_gap:12.1e} {autograd_gap:13.1e} {mc_gap:16.1e}")
        assert tweedie_gap < 1e-12, f"Tweedie's formula fails by {tweedie_gap:.2e} at sigma={sigma}"
        assert autograd_gap < 1e-10, f"score differs from autograd by {autograd_gap:.2e} at sigma={sigma}"
        assert mc_gap < 0.02, f"denoiser residual correlates with its output: {mc_gap:.3f} at sigma={sigma}"

    floor = sliced_wasserstein(mixture.sample(4000, generator=generator), x0, generator=generator)
    print(f"sliced W2 between two independent draws of 4000 points: {floor:.4f}")
