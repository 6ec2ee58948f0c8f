# kb: timeout=60
# %% [markdown]
# # Digits data and a sample-quality measure
# The 8x8 handwritten digits that ship with scikit-learn (1797 images, UCI
# "Optical Recognition of Handwritten Digits"), scaled to [-1, 1] as diffusion
# models expect, and one quality measure shared by every digit experiment.
#
# The measure rests on a small classifier trained on the real training digits.
# `digit_quality(samples)` returns:
#
# | key | meaning | range, better |
# | --- | --- | --- |
# | `confidence` | mean over samples of the classifier's top softmax probability | 0.1 to 1, higher |
# | `class_entropy` | entropy of the predicted-class histogram divided by log 10 | 0 (one class) to 1 (all ten equally), higher |
# | `frechet` | Fréchet distance between Gaussians fitted to the classifier's penultimate features of the samples and of the held-out test digits | 0 upward, lower |
#
# The Fréchet distance is the FID recipe of Heusel et al. (2017, arXiv
# 1706.08500, eq. 6) with this classifier in place of Inception:
# $d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2})$.
# It is the only one of the three numbers that reflects both quality and variety,
# so experiments assert their margins on it. Confidence alone is easy to fool:
# a classifier can be confident on noise.

# %%
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

TEST_FRACTION = 0.2  # 360 of the 1797 images are held out for testing

# %% Load the digits
def load_digits_tensor(split="train", seed=0):
    """Return (images, labels) for one split of the scikit-learn digits.

    images: float32 (N, 1, 8, 8) in [-1, 1] (pixel values 0..16 map linearly).
    labels: int64 (N,). The split is stratified by class and fixed by `seed`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"invalid split {split!r}: expected 'train' or 'test'")

    # Imported here because importing scikit-learn takes about a second.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = data.images.astype(np.float32) / 8.0 - 1.0  # 0..16 -> -1..1
    train_idx, test_idx = train_test_split(
        np.arange(len(images)),
        test_size=TEST_FRACTION,
        stratify=data.target,
        random_state=seed,
    )
    idx = train_idx if split == "train" else test_idx

    x = torch.from_numpy(images[idx]).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(data.target[idx]).long()
    return x, y


# %% Classifier
class DigitClassifier(nn.Module):
    """Small MLP on flattened 8x8 digits. `features` returns the penultimate layer."""

    def __init__(self, hidden=128, feature_dim=32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Linear(hidden, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


_CLASSIFIERS = {}  # seed -> trained DigitClassifier, one per process


def train_classifier(seed=0, steps=300):
    """Train (or fetch from the per-process cache) the quality classifier.

    Full-batch Adam on the training split with light pixel noise, so the
    classifier also learns from slightly imperfect digits. Takes about 2 s
    on 2 CPU cores.
    """
    if seed in _CLASSIFIERS:
        return _CLASSIFIERS[seed]

    x, y = load_digits_tensor("train", seed=seed)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)

    # The MLP is too small to gain from several threads, and on 2 shared CPU cores two
    # threads made this loop about 8x slower than one, so it runs on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # Callers often score samples under torch.no_grad(), so gradients are switched back on.
        with torch.enable_grad():
            for _ in range(steps):
                noisy = x + 0.1 * torch.randn(x.shape, generator=generator)
                loss = F.cross_entropy(model(noisy), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)

    model.eval()
    _CLASSIFIERS[seed] = model
    return model


def classifier_accuracy(seed=0):
    """Return the quality classifier's accuracy on the held-out test digits."""
    model = train_classifier(seed)
    x, y = load_digits_tensor("test", seed=seed)
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# %% Quality measure
def frechet_distance(features_a, features_b):
    """Fréchet distance between Gaussians fitted to two (N, D) feature arrays."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False)
    cov_b = np.cov(b, rowvar=False)

    # tr((S_a S_b)^{1/2}) is the sum of the square roots of the eigenvalues of
    # S_a S_b, which are real and non-negative for covariance matrices. Summing
    # them avoids scipy.linalg.sqrtm, which fails on the singular covariances
    # that dead ReLU features produce. Rounding can leave tiny negative or
    # imaginary parts, which are dropped.
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b).real.clip(min=0.0)
    trace_covmean = np.sqrt(eigenvalues).sum()
    d2 = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_covmean
    return float(max(d2, 0.0))


def digit_quality(samples, seed=0):
    """Score generated digits (N, 1, 8, 8) in [-1, 1] as described in the table above.

    Samples are clamped to [-1, 1] first, as they would be for display.
    Use a few hundred samples: the Fréchet distance is biased upward for
    small N, so real training digits score about 5 at N = 360, not 0 (see
    the reference values below).
    """
    model = train_classifier(seed)
    x = torch.as_tensor(samples, dtype=torch.float32).clamp(-1, 1)
    x = x.reshape(-1, 1, 8, 8)
    test_x, _ = load_digits_tensor("test", seed=seed)

    with torch.no_grad():
        features = model.features(x)
        probs = model.head(features).softmax(1)
        test_features = model.features(test_x)

    counts = torch.bincount(probs.argmax(1), minlength=10).double()
    p = counts / counts.sum()
    p = p[p > 0]
    entropy = max(0.0, -(p * p.log()).sum().item() / math.log(10))

    return {
        "confidence": probs.max(1).values.mean().item(),
        "class_entropy": entropy,
        "frechet": frechet_distance(features.numpy(), test_features.numpy()),
    }


# %% Reference values
if __name__ == "__main__":
    import time

    start = time.perf_counter()
    model = train_classifier(0)
    seconds = time.perf_counter() - start
    accuracy = classifier_accuracy(0)
    print(f"classifier trained in {seconds:.2f} s, test accuracy {accuracy:.3f}")
    assert accuracy > 0.93, f"classifier test accuracy {accuracy:.3f} is below 0.93"

    train_x, _ = load_digits_tensor("train")
    test_x, _ = load_digits_tensor("test")
    assert train_x.shape == (1437, 1, 8, 8), train_x.shape
    assert test_x.shape == (360, 1, 8, 8), test_x.shape
    assert train_x.min() == -1, train_x.min()
    assert train_x.max() == 1, train_x.max()

    # Reference points: real digits, Gaussian noise, and the mean digit repeated.
    g = torch.Generator().manual_seed(0)
    real = train_x[torch.randperm(len(train_x), generator=g)[:360]]
    noise = torch.randn(360, 1, 8, 8, generator=g)
    mean_digit = train_x.mean(0, keepdim=True).expand(360, -1, -1, -1)
    rows = {"real train digits": real, "Gaussian noise": noise, "mean digit x360": mean_digit}
    scores = {name: digit_quality(x) for name, x in rows.items()}

    print(f"{'samples (360 each)':<20} {'confidence':>10} {'class_entropy':>14} {'frechet':>9}")
    for name, q in scores.items():
        print(f"{name:<20} {q['confidence']:>10.3f} {q['class_entropy']:>14.3f} {q['frechet']:>9.2f}")

    # Independent check of the Fréchet distance: two Gaussians with known
    # means and diagonal covariances have d^2 = |mu1-mu2|^2 + sum (s1 - s2)^2.
    rng = np.random.default_rng(0)
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 1.0, 0.5])
    a = rng.normal(0.0, s1, size=(200_000, 3))
    b = rng.normal(1.0, s2, size=(200_000, 3))
    exact = 3 * 1.0 + np.sum((s1 - s2) ** 2)
    estimate = frechet_distance(a, b)
    assert abs(estimate - exact) < 0.05, f"Fréchet {estimate:.4f} vs exact {exact:.4f}"
    print(f"Fréchet distance on known Gaussians: {estimate:.4f} (exact {exact:.4f})")

    real_fd = scores["real train digits"]["frechet"]
    noise_fd = scores["Gaussian noise"]["frechet"]
    assert real_fd * 10 < noise_fd, f"real {real_fd:.2f} vs noise {noise_fd:.2f}"
    assert scores["real train digits"]["class_entropy"] > 0.95
