"""Parity of the twin pass and DDIMInvert with an independent reference of the release.

``twin_reference.py`` runs the release's algorithm (LDM DDIM in alpha space, one UNet call of
five rows per step, torch forward hooks for injection and recording) directly on the tiny
SD1.5-layout UNet module; the node runs inside ComfyUI's sampler with its patches. The two
share only the weights and the start noise.

Tolerances (relative to the reference's largest value, because the random tiny model drives the
latents to magnitudes of about 70): both paths run the same float32 UNet, but the reference does
its DDIM arithmetic in float64 in alpha space while ComfyUI steps Euler in float32 in sigma space,
and the attention sums run in different orders (ComfyUI's SDPA call vs the module's forward).
Measured on this machine (2026-11-30), max |diff| / max |value| over 50 steps:
q/k only 1.5e-6, residual only 1.2e-6, negative schedule only 1.2e-6, all three 1.7e-6 (natural
latent; artistic 9.4e-7 in every case), self-attention mean 1.4e-6, DDIMInvert 2.8e-6: about ten
float32 epsilons (1.2e-7). The bound 1e-5 is six times the largest; the change each mechanism
makes is asserted to exceed 100 times the bound, so no mechanism can break silently.

Step counts: "all three" (the release's settings) runs the release's 50-step schedule. Parity of
two implementations of one algorithm holds at any step count, so the cases that switch on one
mechanism each, the split-call and the LoRA case run 10 steps (timesteps 901, 801, ..., 1), with
the release's settings written for 10 steps; a run of 50 steps costs about 7 s per pass on the
2-core test machine, 10 steps about 1.4 s. Every assertion and tolerance is the same at both.
Measured at 10 steps (2026-12-07): q/k only 1.8e-6, residual only 2.3e-6, negative schedule only
1.8e-6 (natural latent; artistic 1.5e-6), self-attention mean 1.5e-6: the bound is four times the largest.
"""

import pytest
import torch

from comfy_inprocess import split_cond_uncond, tiny_checkpoint, twin_prompts
from twin_reference import Release, alphas_cumprod, ddim_timesteps, reference_inversion, reference_twin_pass

STEPS = 50  # the release's schedule: timesteps 981, 961, ..., 1
FEW_STEPS = 10  # the other cases (see above): timesteps 901, 801, ..., 1
# steps with t <= 541, where the maps are recorded: 541, 521, ..., 1 of 50; 501, 401, ..., 1 of 10
RECORDED_STEPS = {STEPS: 28, FEW_STEPS: 6}
SIZE = 16  # latent 16x16 (128 px); the recorded level is 8x8 tokens
SEED = 7
SD15_SCALE = 0.18215  # ComfyUI's LATENT is the diffusion latent divided by SD1.x's VAE scale factor
LATENT_TOL = 1e-5  # relative to the largest latent value
MAP_TOL = 1e-5  # relative to the largest map value

# (node's attention_injection, residual_injection, negative_schedule), the steps, and the release's
# settings for those steps (q/k while i <= steps // 2, the residual while i <= 0.8 steps)
CASES = {
    "q/k only": ((0.5, 0.0, False), FEW_STEPS, Release(qk_until=5, residual_until=None, negative_schedule=False)),
    "residual only": ((0.0, 0.8, False), FEW_STEPS, Release(qk_until=None, residual_until=8, negative_schedule=False)),
    "negative schedule only": ((0.0, 0.0, True), FEW_STEPS,
                               Release(qk_until=None, residual_until=None, negative_schedule=True)),
    "all three": ((0.5, 0.8, True), STEPS, Release()),  # the release's settings at the release's 50 steps
}
RELEASE_AT_FEW_STEPS = Release(qk_until=5, residual_until=8)  # all three at 10 steps
NOTHING = Release(qk_until=None, residual_until=None, negative_schedule=False)
_REFERENCES = {}  # (settings, steps) -> the reference pass on the seeded weights, computed once per module


@pytest.fixture(scope="module")
def tiny():
    model, clip = tiny_checkpoint(0)
    prompts = twin_prompts(clip)
    noise = torch.randn(1, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(SEED))
    # the reference runs on its own copy of the same seeded weights: ComfyUI patches the weights
    # of the modules it loads (LoRAs) in place, and that copy is never loaded by ComfyUI
    reference_unet = tiny_checkpoint(0)[0].get_model_object("diffusion_model")
    _REFERENCES.clear()
    return model, prompts, noise, reference_unet


def node_run(tiny, fractions, steps, model=None):
    from text2cinemagraph.nodes.twin import TwinSettings, sample_twins

    base, p, _, _ = tiny
    latent = {"samples": torch.zeros(1, 4, SIZE, SIZE)}
    settings = TwinSettings(steps, 5.0, 7.5, *fractions)
    artistic, natural, maps = sample_twins(model or base, p["artistic"], p["natural"], p["empty"], latent, SEED, settings)
    return artistic["samples"] * SD15_SCALE, natural["samples"] * SD15_SCALE, maps.self_attention, maps.self_samples


def reference_run(tiny, settings, steps, unet=None):
    _, p, noise, reference_unet = tiny
    if unet is None:
        key = (repr(settings), steps)
        if key not in _REFERENCES:
            _REFERENCES[key] = reference_run(tiny, settings, steps, unet=reference_unet)
        return _REFERENCES[key]
    return reference_twin_pass(unet, noise, p["empty"][0][0], p["artistic"][0][0], p["natural"][0][0], steps, settings)


def differences(ours, theirs) -> tuple[float, float, float]:
    """Max abs difference of each output, relative to the reference's largest magnitude."""
    return tuple(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, theirs))


def baseline(tiny, steps):
    """The reference with no mechanism switched on."""
    return reference_run(tiny, NOTHING, steps)


@pytest.mark.parametrize("case", list(CASES))
def test_node_equals_the_release_reference(tiny, case):
    fractions, steps, settings = CASES[case]
    ours, theirs = node_run(tiny, fractions, steps), reference_run(tiny, settings, steps)
    artistic, natural, maps = differences(ours, theirs)
    print(f"{case} ({steps} steps): max |latent diff| / max |latent| artistic {artistic:.2e} natural {natural:.2e}; "
          f"max |map diff| / max map {maps:.2e}; latent max {float(theirs[1].abs().max()):.1f}")
    assert artistic < LATENT_TOL and natural < LATENT_TOL and maps < MAP_TOL
    assert ours[3] == RECORDED_STEPS[steps] * 5 * 2  # t <= 541: 28 of 50 steps (6 of 10) x 5 layers x (cond, uncond)
    # the mechanism matters: switching it off moves the natural twin far more than the tolerance
    plain = baseline(tiny, steps)
    assert float((theirs[1] - plain[1]).abs().max() / plain[1].abs().max()) > 100 * LATENT_TOL
    assert torch.equal(theirs[0], plain[0])  # nothing flows back into the artistic image


def test_split_cond_uncond_calls_give_the_same_twins(tiny):
    """ComfyUI evaluates cond and uncond in separate UNet calls when memory is short; the fifth
    row then rides with the unconditional call."""
    base = tiny[0]
    split = split_cond_uncond(base)
    ours = node_run(tiny, (0.5, 0.8, True), FEW_STEPS, model=split)
    theirs = reference_run(tiny, RELEASE_AT_FEW_STEPS, FEW_STEPS)
    assert max(differences(ours, theirs)) < LATENT_TOL


def test_a_lora_reaches_both_images(tiny):
    """A ModelPatcher weight patch (what LoraLoader adds) applied before the node changes both
    images exactly as the same change written into the reference's weights."""
    import copy

    base, reference_unet = tiny[0], tiny[3]
    key = "diffusion_model.output_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"
    weight = base.get_model_object(key)
    delta = 0.5 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(1)) / weight.shape[1] ** 0.5
    lora = base.clone()
    lora.add_patches({key: (delta,)}, 1.0)
    unet = copy.deepcopy(reference_unet)
    with torch.no_grad():
        unet.output_blocks[4][1].transformer_blocks[0].attn1.to_q.weight.add_(delta)
    ours = node_run(tiny, (0.5, 0.8, True), FEW_STEPS, model=lora)
    theirs = reference_run(tiny, RELEASE_AT_FEW_STEPS, FEW_STEPS, unet=unet)
    plain = reference_run(tiny, RELEASE_AT_FEW_STEPS, FEW_STEPS)
    assert max(differences(ours, theirs)) < LATENT_TOL
    assert min(differences(theirs[:2], plain[:2])) > 100 * LATENT_TOL


def test_ddim_invert_equals_the_release_inversion(tiny):
    """DDIMInvert (Euler over the flipped sigma schedule in ComfyUI) against ``reverse_ddim`` in
    alpha space. ComfyUI's x is the LDM x divided by sqrt(alpha) at the final timestep."""
    from text2cinemagraph.nodes.twin import invert_latent

    model, p, noise, reference_unet = tiny
    picture = torch.nn.functional.interpolate(noise[:, :, :4, :4], size=(SIZE, SIZE), mode="bicubic")
    steps = 10
    ours = invert_latent(model, p["empty"], {"samples": picture / SD15_SCALE}, steps)["samples"] * SD15_SCALE
    theirs = reference_inversion(reference_unet, picture, p["empty"][0][0], steps)
    final = float(alphas_cumprod()[ddim_timesteps(steps)[-1]])
    difference = float((ours * final**0.5 - theirs).abs().max() / theirs.abs().max())
    print(f"DDIMInvert: max |latent diff| {difference:.2e}")
    assert difference < LATENT_TOL
    assert float((theirs - picture).abs().max()) > 1.0  # it moved far
