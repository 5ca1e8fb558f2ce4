"""The twin pass on a tiny SD1.5-layout model inside ComfyUI (imported as a library, CPU)."""

import pytest
import torch

from comfy_inprocess import encode, split_cond_uncond, tiny_checkpoint, twin_prompts

STEPS = 5  # ddim_uniform gives exactly 5 steps (6 would give 7)
LATENT = {"samples": torch.zeros(1, 4, 16, 16)}  # 128 px; attention maps recorded at 8x8


@pytest.fixture(scope="module")
def tiny():
    model, clip = tiny_checkpoint(0)
    prompts = twin_prompts(clip)
    return model, clip, prompts


def twins(tiny, attention=0.5, residual=0.8, negative_schedule=True, model=None, latent=LATENT, seed=3):
    from text2cinemagraph.nodes.twin import TwinSettings, sample_twins

    base, _, p = tiny
    settings = TwinSettings(STEPS, 5.0, 7.5, attention, residual, negative_schedule)
    return sample_twins(model or base, p["artistic"], p["natural"], p["empty"], latent, seed, settings)


def plain(tiny, prompt, cfg, seed=3):
    """Core ComfyUI sampling of one prompt: the same sampler, schedule and noise (scaled to the
    release's unit-variance start, as the twin pass does)."""
    import comfy.sample
    import comfy.samplers

    from text2cinemagraph.nodes.twin import release_start

    model, _, p = tiny
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "ddim_uniform", STEPS).cpu()
    latent = LATENT["samples"]
    noise = release_start(comfy.sample.prepare_noise(latent, seed), float(sigmas[0]))
    return comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.sampler_object("euler"), sigmas,
                                      p[prompt], p["empty"], latent, seed=seed)


def test_without_injection_the_twins_equal_two_plain_runs(tiny):
    artistic, natural, _ = twins(tiny, attention=0.0, residual=0.0, negative_schedule=False)
    assert torch.allclose(artistic["samples"], plain(tiny, "artistic", 5.0), rtol=1e-4, atol=1e-3)
    assert torch.allclose(natural["samples"], plain(tiny, "natural", 7.5), rtol=1e-4, atol=1e-3)


def test_full_injection_gives_every_natural_row_the_artistic_attention(tiny, monkeypatch):
    """Every UNet row of the natural image, the negative-schedule row included, gets the
    artistic image's maps in output blocks 4..11: one call of 5 rows per step."""
    import text2cinemagraph.nodes.twin as twin
    from text2cinemagraph.nodes.stages.twin_attention import TwinAttention, attention_probabilities, twin_layout

    seen = {"checked": 0, "differ_elsewhere": 0, "batches": set()}

    class Spy(TwinAttention):
        def attn1(self, q, k, v, options):
            self.block, self.layout = options["block"], twin_layout(q.shape[0], options)
            return super().attn1(q, k, v, options)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            inner = self.attention_fn

            def spy(q, k, v, heads):
                if getattr(self, "block", None) is not None and q.shape == k.shape:
                    seen["batches"].add(q.shape[0])
                    twins, source = self.layout
                    maps = [attention_probabilities(q[row], k[row], heads) for row in range(q.shape[0])]
                    pairs = [(a, a + 1) for a in range(0, twins, 2)] + [(source, twins)]
                    same = all(torch.equal(maps[a], maps[n]) for a, n in pairs)
                    if self.block[0] == "output" and self.block[1] >= 4:
                        assert same, self.block
                        seen["checked"] += 1
                    elif not same:
                        seen["differ_elsewhere"] += 1
                self.block = None
                return inner(q, k, v, heads)

            self.attention_fn = spy

    monkeypatch.setattr(twin, "TwinAttention", Spy)
    twins(tiny, attention=1.0, residual=1.0)
    assert seen["batches"] == {5}  # [uncond a, uncond n, cond a, cond n, negative n] in one call
    assert seen["checked"] == STEPS * 8  # every step, output blocks 4..11
    assert seen["differ_elsewhere"] > 0  # blocks that are not injected keep their own maps


def layout_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of the two latents after removing each channel's mean and scale: how
    much the spatial arrangement agrees, whatever the colours (a style change shifts and scales
    channels; a layout change moves structures)."""
    def standardise(x):
        x = x[0]
        return ((x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True)).reshape(-1)

    return float(torch.corrcoef(torch.stack((standardise(a), standardise(b))))[0, 1])


def test_injection_makes_the_twins_structurally_closer(tiny):
    # On a random tiny model the margins are small (about 0.01 in correlation) but the runs are
    # deterministic, and with both seeds injection moves the natural twin's layout towards the artistic one.
    for seed in (5, 6):
        scores = {}
        for name, fractions in (("none", (0.0, 0.0)), ("attention", (1.0, 0.0)), ("paper", (0.5, 0.8))):
            artistic, natural, _ = twins(tiny, *fractions, negative_schedule=False, seed=seed)
            scores[name] = layout_similarity(artistic["samples"], natural["samples"])
        assert scores["none"] < scores["paper"] and scores["none"] < scores["attention"], scores


def test_recorded_maps_are_proper_averages_and_split_calls_agree(tiny):
    _, _, maps = twins(tiny)
    tokens = 8 * 8
    assert maps.grid == (8, 8) and maps.self_attention.shape == (tokens, tokens)
    assert torch.allclose(maps.self_attention.sum(dim=1), torch.ones(tokens), atol=1e-5)
    assert maps.cross_attention.shape == (2, tokens, 77)
    assert torch.allclose(maps.cross_attention.sum(dim=2), torch.ones(2, tokens), atol=1e-5)
    assert maps.self_samples % 10 == 0  # (recorded steps) x 5 blocks x 2 guidance halves

    base, _, _ = tiny
    split = split_cond_uncond(base)
    _, _, split_maps = twins(tiny, model=split)
    assert split_maps.self_samples == maps.self_samples
    assert torch.allclose(split_maps.self_attention, maps.self_attention, atol=1e-5)
    assert torch.allclose(split_maps.cross_attention, maps.cross_attention, atol=1e-5)


def test_bad_latent_size_is_named(tiny):
    from text2cinemagraph.kernels.errors import InputError

    with pytest.raises(InputError) as error:
        twins(tiny, latent={"samples": torch.zeros(1, 4, 12, 16)})
    assert error.value.input_name == "latent" and "64" in str(error.value)


def test_inversion_then_twin_sampling_reconstructs_the_latent():
    """A random UNet is not a denoiser; with its output layer scaled down (x0.005) it is smooth
    enough for DDIM inversion to be meaningful. Relative RMS error measured on this model:
    1.2e-2 with 10 steps, 6.0e-3 with 40 steps (exactly 0 with the output layer zeroed)."""
    from text2cinemagraph.nodes.twin import TwinSettings, invert_latent, sample_twins

    model, clip = tiny_checkpoint(1)
    with torch.no_grad():
        for parameter in model.get_model_object("diffusion_model").out[-1].parameters():
            parameter.mul_(0.005)
    empty = encode(clip, "")
    generator = torch.Generator().manual_seed(0)
    picture = {"samples": torch.nn.functional.interpolate(torch.randn(1, 4, 4, 4, generator=generator), size=(16, 16),
                                                          mode="bicubic", align_corners=False)}
    errors = {}
    for steps in (10, 40):
        inverted = invert_latent(model, empty, picture, steps)
        assert inverted["t2c_inverted"]
        assert (inverted["samples"] - picture["samples"]).norm() > 0.1 * picture["samples"].norm()  # it moved
        settings = TwinSettings(steps, 1.0, 1.0, 0.0, 0.0, False)
        artistic, natural, _ = sample_twins(model, empty, empty, empty, inverted, 0, settings)
        assert torch.equal(artistic["samples"], natural["samples"])
        errors[steps] = float((artistic["samples"] - picture["samples"]).norm() / picture["samples"].norm())
    assert errors[10] < 0.02 and errors[40] < 0.6 * errors[10], errors


def test_a_huge_latent_is_refused_before_sampling(tiny):
    """The recorded self-attention map grows as (H*W/256)^2: 2048 px would hold 1 GiB."""
    from text2cinemagraph.kernels.errors import InputError

    with pytest.raises(InputError) as error:
        twins(tiny, latent={"samples": torch.zeros(1, 4, 256, 256)})
    assert error.value.input_name == "latent" and "2048x2048" in str(error.value) and "1.00 GiB" in str(error.value)


def test_a_model_without_the_sd1_block_layout_is_refused(tiny):
    """An SDXL-like UNet (three levels: 9 input and 9 output blocks) is named, not sampled with
    SD1.5's block numbers."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models
    from comfy_test_pack.tiny_checkpoint import TINY_UNET_CONFIG

    from text2cinemagraph.kernels.errors import InputError

    config = dict(TINY_UNET_CONFIG, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4],
                  transformer_depth=[0, 0, 1, 1, 1, 1], transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1])
    model_config = comfy.supported_models.SD15(config)
    model_config.set_inference_dtype(torch.float32, None)
    xl_like = comfy.model_patcher.ModelPatcher(model_config.get_model({}, "", device=torch.device("cpu")),
                                               load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())
    with pytest.raises(InputError) as error:
        twins(tiny, model=xl_like)
    assert error.value.input_name == "model" and "9 output blocks" in str(error.value)


def test_unet_call_arguments_are_read_by_name_or_refused_naming_the_version():
    from text2cinemagraph.nodes._comfy import ComfyUIVersionError, diffusion_model_call

    class Executor:
        @staticmethod
        def original(x, timesteps=None, context=None, y=None, control=None, transformer_options={}, **kwargs):
            return x

    call = diffusion_model_call(Executor, ("x", "t", "c", None, None, {"cond_or_uncond": [1, 0]}), {})
    assert call.arguments["transformer_options"] == {"cond_or_uncond": [1, 0]} and call.arguments["context"] == "c"

    class Renamed:
        @staticmethod
        def original(x, timesteps=None, context=None, options=None):
            return x

    with pytest.raises(ComfyUIVersionError, match="transformer_options"):
        diffusion_model_call(Renamed, ("x", "t", "c", {}), {})
