# kb: timeout=120 gpu=optional
# %% [markdown]
# # Training the DDPM on 8x8 digits
# The U-Net of `unet.py` learns the epsilon-prediction loss of `ddpm.py` (Ho et al. 2020,
# Algorithm 1) on the scikit-learn digits, and then generates digits with DDIM (Song et al.
# 2021) and with ancestral sampling (Ho et al. 2020, Algorithm 2). Quality is measured with
# `digit_quality` from `digits.py`, against two baselines that know nothing about digits: the
# same network untrained, and Gaussian noise. Two seeds, because one good run proves little.
#
# On CPU the configuration is small (about 190k parameters, 200 Adam steps per seed, 200
# timesteps) so the snippet runs in about a minute on 2 cores. With CUDA it trains a wider
# network for longer on 1000 timesteps.

# %%
import time

import torch

from snippets.ddpm import cosine_beta_schedule, diffusion_loss, sample_ddim, sample_ddpm
from snippets.digits import digit_quality, load_digits_tensor
from snippets.unet import UNet, count_parameters

# NOTE: the CUDA configuration has not been run yet. Only the CPU one has been measured.
if torch.cuda.is_available():
    DEVICE = "cuda"
    CONFIG = dict(dim=32, attn_heads=4, attn_dim_head=16, timesteps=1000, steps=4000,
                  batch_size=128, ddim_steps=50)
else:
    DEVICE = "cpu"
    CONFIG = dict(dim=16, attn_heads=2, attn_dim_head=8, timesteps=200, steps=200,
                  batch_size=64, ddim_steps=20)


# %% Training loop
def make_unet(channels=1, seed=0, config=CONFIG):
    """Build the digit U-Net with two stages: linear attention at 8x8, full attention at 4x4."""
    torch.manual_seed(seed)
    return UNet(channels=channels, dim=config["dim"], dim_mults=(1, 2), full_attn=(False, True),
                attn_heads=config["attn_heads"], attn_dim_head=config["attn_dim_head"])


def train_ddpm(model, images, betas, steps, batch_size=64, lr=3e-3, seed=0, seconds=None,
               device=DEVICE):
    """Train `model` with Algorithm 1 on random minibatches of `images` (N, C, X, Y).

    Stops after `steps` Adam steps, or earlier once `seconds` have passed (when given).
    Returns the per-step losses and the seconds spent. On CPU the seconds are this process's
    CPU time, so a budget buys the same work however busy the machine is. On CUDA they are
    wall-clock time.
    """
    clock = time.perf_counter if device == "cuda" else time.process_time
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    images = images.to(device)
    alphas_cumprod = (1 - betas).cumprod(0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    losses = []
    start = clock()
    for _ in range(steps):
        index = torch.randint(0, len(images), (batch_size,), generator=generator)
        x0 = images[index.to(device)]
        # The loss draws t and the noise from the default generator, seeded in make_unet.
        loss = diffusion_loss(model, x0, alphas_cumprod)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if seconds is not None and clock() - start > seconds:
            break
    if device == "cuda":
        torch.cuda.synchronize()
    model.eval()
    return losses, clock() - start


def show_grid(images, title, rows=6, ax=None):
    """Draw the first rows * rows images (N, 1, X, Y) in [-1, 1] as one grid."""
    import matplotlib.pyplot as plt

    images = images[: rows * rows, 0].clamp(-1, 1).cpu()
    size = images.shape[-1]
    grid = images.reshape(rows, rows, size, size).permute(0, 2, 1, 3).reshape(rows * size, -1)
    ax = ax or plt.gca()
    ax.imshow(grid, cmap="gray_r", vmin=-1, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


# %% Train two seeds and measure quality
if __name__ == "__main__":
    if DEVICE == "cpu":
        # Two threads on 2 shared cores ran a training step about 7x slower than one thread
        # while other jobs were running, because the threads wait on each other.
        torch.set_num_threads(1)

    train_x, _ = load_digits_tensor("train")
    betas = cosine_beta_schedule(CONFIG["timesteps"])
    n_samples = 360
    seeds = (0, 1)
    results, curves, samples = {}, {}, {}

    for seed in seeds:
        generator = torch.Generator().manual_seed(100 + seed)
        shape = (n_samples, 1, 8, 8)

        untrained = make_unet(seed=seed).to(DEVICE).eval()
        baseline = sample_ddim(untrained, shape, betas, CONFIG["ddim_steps"], generator=generator,
                               device=DEVICE)
        results[("untrained U-Net", seed)] = digit_quality(baseline.cpu())
        results[("Gaussian noise", seed)] = digit_quality(torch.randn(shape, generator=generator))

        model = make_unet(seed=seed)
        losses, seconds = train_ddpm(model, train_x, betas, CONFIG["steps"], CONFIG["batch_size"],
                                     seed=seed)
        curves[seed] = losses
        samples[seed] = sample_ddim(model, shape, betas, CONFIG["ddim_steps"], generator=generator,
                                    device=DEVICE).cpu()
        results[("trained, DDIM", seed)] = digit_quality(samples[seed])
        print(f"seed {seed}: {len(losses)} steps in {seconds:.1f} s of {DEVICE} time, "
              f"final loss {sum(losses[-20:]) / 20:.3f}")
        if seed == seeds[0]:
            first_model = model

    print(f"U-Net: {count_parameters(first_model):,} parameters, {CONFIG['timesteps']} timesteps, "
          f"DDIM with {CONFIG['ddim_steps']} steps, {n_samples} samples per row")
    print(f"{'samples':<18} {'seed':>4} {'confidence':>10} {'class_entropy':>13} {'frechet':>8}")
    for (name, seed), q in results.items():
        print(f"{name:<18} {seed:>4} {q['confidence']:>10.3f} {q['class_entropy']:>13.3f} "
              f"{q['frechet']:>8.1f}")

    # The claim: on every seed, the trained model's Fréchet distance is under a quarter of the
    # better baseline's, and its samples cover most classes.
    for seed in seeds:
        trained = results[("trained, DDIM", seed)]["frechet"]
        best_baseline = min(results[("untrained U-Net", seed)]["frechet"],
                            results[("Gaussian noise", seed)]["frechet"])
        assert trained < 0.25 * best_baseline, f"seed {seed}: {trained:.1f} vs {best_baseline:.1f}"
        entropy = results[("trained, DDIM", seed)]["class_entropy"]
        assert entropy > 0.85, f"seed {seed}: class entropy {entropy:.3f}"

# %% Ancestral sampling
if __name__ == "__main__":
    generator = torch.Generator().manual_seed(7)
    start = time.perf_counter()
    ancestral = sample_ddpm(first_model, (36, 1, 8, 8), betas, generator=generator,
                            device=DEVICE).cpu()
    print(f"ancestral sampling: {CONFIG['timesteps']} network calls for 36 digits "
          f"in {time.perf_counter() - start:.1f} s; DDIM used {CONFIG['ddim_steps']}")

# %% Samples and loss curves
if __name__ == "__main__":
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(9, 2.6))
    show_grid(train_x, "real digits", ax=axes[0])
    show_grid(samples[0], f"DDIM, {CONFIG['ddim_steps']} steps", ax=axes[1])
    show_grid(ancestral, f"ancestral, {CONFIG['timesteps']} steps", ax=axes[2])
    for seed, losses in curves.items():
        window = 10
        smooth = torch.tensor(losses).unfold(0, window, 1).mean(1)
        axes[3].plot(range(window - 1, len(losses)), smooth, label=f"seed {seed}")
    axes[3].set_title("training loss (moving mean)", fontsize=9)
    axes[3].set_xlabel("Adam step")
    axes[3].legend(fontsize=8)
    plt.tight_layout()
    plt.show()
