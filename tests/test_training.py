"""Training scripts: data layout, losses, and a few steps of tiny networks that learn on synthetic clips."""

import json
import os
import pickle

import numpy as np
import pytest
import torch

from text2cinemagraph.kernels import InputError
from text2cinemagraph.nodes.stages.networks import FlowNetConfig, FrameNetConfig, HintNetConfig, load_network
from text2cinemagraph.nodes.stages.networks.flow_net import sd_cross_attention_weights
from text2cinemagraph.__main__ import main as cli
from text2cinemagraph.nodes.stages.training.common import TrainSettings, learning_rate
from text2cinemagraph.nodes.stages.training.data import (
    FlowClips,
    FrameClips,
    average_rule_mask,
    crop_and_flip,
    find_clips,
    flow_hint,
    load_flow,
    read_captions,
    write_synthetic_clips,
)
from text2cinemagraph.nodes.stages.training.losses import (
    MultiscaleDiscriminator,
    VGGLoss,
    end_point_error,
    feature_matching_loss,
    lsgan_loss,
)
from text2cinemagraph.nodes.stages.training.train_flow import initialise_from_sd, train_flow
from text2cinemagraph.nodes.stages.training.train_frame import dense_displacements, train_frame

TINY_FLOW = FlowNetConfig(num_filters=16, heads=2, context_dim=8, spade_hidden=8, norm_groups=8)
TINY_FRAME = FrameNetConfig(ngf=8, feature_channels=8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    write_synthetic_clips(str(root), count=4, size=64, frames=12)
    return str(root)


def settings(data, out, **changes):
    values = dict(data=data, out=str(out), crop=64, batch_size=2, epochs=1000, decay_epochs=0, lr=1e-3, ndf=8,
                  workers=0, device="cpu", max_steps=20, save_every=1000, log_every=1000)
    values.update(changes)
    return TrainSettings(**values)


def mean(history, key, steps):
    return float(np.mean([history[i][key] for i in steps]))


def test_g_flow_learns_the_flow_of_synthetic_clips(clips, tmp_path):
    seen = []

    def encode(captions):
        seen.extend(captions)
        return torch.ones(len(captions), 77, 8)

    captions = {"clip000": "a river", "clip001": "a waterfall"}
    history = train_flow(settings(clips, tmp_path), "flow", TINY_FLOW, text_encoder=encode, captions=captions)
    assert [r["step"] for r in history] == list(range(1, 21))
    assert {"G_GAN", "G_GAN_Feat", "G_EPE", "D_real", "D_fake"} <= set(history[0])
    assert mean(history, "G_EPE", range(15, 20)) < 0.5 * mean(history, "G_EPE", range(3))
    assert "a river" in seen and "" in seen  # clips without a caption get the empty prompt
    kind, network = load_network(str(tmp_path / "latest_net_G.safetensors"), ["flow"])
    assert kind == "flow" and network.config == TINY_FLOW
    logged = [json.loads(line) for line in open(tmp_path / "log.jsonl")]
    assert logged[-1]["step"] == 20


def test_g_flow_keeps_the_query_and_key_projections_frozen(clips, tmp_path):
    from text2cinemagraph.nodes.stages.networks import build_network

    torch.manual_seed(0)
    reference = build_network("flow", TINY_FLOW)
    train_flow(settings(clips, tmp_path, max_steps=2), "flow", TINY_FLOW)
    from text2cinemagraph.nodes.stages.networks import read_state_dict

    trained, _ = read_state_dict(str(tmp_path / "latest_net_G.safetensors"))
    for name in reference.frozen_parameter_names():
        before = reference.state_dict()[name]
        # Frozen: trained weights equal the initial ones, which depend only on the seed.
        assert torch.equal(trained[name], before), name
    assert not torch.equal(trained["dconv8.weight"], reference.state_dict()["dconv8.weight"])


def test_hint_network_learns(tmp_path):
    data = tmp_path / "data"
    write_synthetic_clips(str(data), count=2, size=256, frames=0)
    history = train_flow(settings(str(data), tmp_path / "out", crop=256, batch_size=1, ndf=4, max_steps=10), "hint",
                         HintNetConfig(num_filters=4, spade_hidden=8))
    assert mean(history, "G_EPE", range(7, 10)) < 0.6 * mean(history, "G_EPE", range(2))
    assert load_network(str(tmp_path / "out" / "latest_net_G.safetensors"), ["hint"])[0] == "hint"


def test_g_frame_learns_and_resumes(clips, tmp_path):
    history = train_frame(settings(clips, tmp_path, max_steps=16), TINY_FRAME)
    assert mean(history, "G_L1", range(12, 16)) < 0.75 * mean(history, "G_L1", range(3))
    resumed = train_frame(settings(clips, tmp_path, max_steps=18, resume=True), TINY_FRAME)
    assert [r["step"] for r in resumed] == [17, 18]
    kind, network = load_network(str(tmp_path / "latest_net_G.safetensors"), ["frame"])
    assert network.config == TINY_FRAME


def test_train_frame_command_line_trains_the_release_size(clips, tmp_path):
    code = cli(["train-frame", "--data", clips, "--out", str(tmp_path), "--crop", "64", "--batch-size", "1",
                "--max-steps", "1", "--workers", "0", "--device", "cpu"])
    assert code == 0
    kind, network = load_network(str(tmp_path / "latest_net_G.safetensors"))
    assert kind == "frame" and network.config == FrameNetConfig()
    assert cli(["train-frame", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert cli(["train-flow", "--network", "hint", "--data", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2


def test_schedule_is_constant_then_linear_to_zero():
    s = TrainSettings(data="", out="", epochs=100, decay_epochs=100, lr=2e-4)
    assert learning_rate(s, 0) == learning_rate(s, 99.9) == 2e-4
    assert learning_rate(s, 150) == pytest.approx(1e-4)
    assert learning_rate(s, 200) == 0.0


def test_clips_are_found_and_sampled(clips):
    assert [c.name for c in find_clips(clips, need_frames=True)] == [f"clip{i:03d}" for i in range(4)]
    torch.manual_seed(0)
    sample = FlowClips(clips, crop=32, hints=True, captions={"clip000": "x"})[0]
    assert sample["image"].shape == (3, 32, 32) and sample["flow"].shape == (2, 32, 32)
    assert sample["mask"].shape == (1, 32, 32) and sample["hint"].shape == (2, 32, 32)
    assert sample["image"].min() >= -1 and sample["image"].max() <= 1 and sample["caption"] == "x"
    frames = FrameClips(clips, crop=48)[1]
    middle, total = frames["steps"].tolist()
    assert 0 <= middle < total <= 12 and frames["start"].shape == (3, 48, 48)
    with pytest.raises(InputError, match="no training clips"):
        find_clips(os.path.dirname(clips))


def test_flow_files_in_every_layout(tmp_path):
    flow = torch.randn(2, 5, 7)
    np.save(tmp_path / "a.npy", flow.permute(1, 2, 0).numpy())  # [H, W, 2]
    torch.save(flow[None], tmp_path / "b.pt")
    from safetensors.torch import save_file

    save_file({"flow": flow}, str(tmp_path / "c.safetensors"))
    for name in ("a.npy", "b.pt", "c.safetensors"):
        assert torch.allclose(load_flow(str(tmp_path / name)), flow)
    with open(tmp_path / "d.pth", "wb") as handle:  # the Eulerian dataset's pickled numpy (uncompressed here)
        pickle.dump(flow[None].numpy(), handle)
    assert torch.allclose(load_flow(str(tmp_path / "d.pth")), flow)


class _Evil:
    def __reduce__(self):
        return os.system, ("true",)


def test_flow_pickles_may_only_build_numpy_arrays(tmp_path):
    with open(tmp_path / "e.pth", "wb") as handle:
        pickle.dump({"flow": _Evil()}, handle)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        load_flow(str(tmp_path / "e.pth"))


def test_average_mask_and_hints():
    flow = torch.zeros(2, 40, 40)
    flow[0, 10:30, 5:35] = 2.0
    flow[0, 0, 0] = 0.01  # too slow to count
    mask = average_rule_mask(flow)
    assert mask.sum() == 20 * 30 and mask[0, 0, 0] == 0
    hint = flow_hint(flow, mask, 1, torch.Generator().manual_seed(0))
    assert torch.allclose(hint[0][mask[0] > 0], torch.full((600,), 2.0)) and hint[:, mask[0] == 0].abs().max() == 0
    assert flow_hint(flow, mask, 3, torch.Generator().manual_seed(0)).shape == (2, 40, 40)


def test_flipping_negates_the_horizontal_flow():
    flow = torch.zeros(2, 8, 8)
    flow[0] = 1.0
    flow[1] = 0.5
    image = torch.arange(64.0).view(1, 8, 8)
    for seed in range(8):
        torch.manual_seed(seed)
        picture, moved = crop_and_flip([image, flow], (1,), 8)
        flipped = not torch.equal(picture, image)
        assert torch.equal(moved[0], torch.full((8, 8), -1.0 if flipped else 1.0))
        assert torch.equal(moved[1], torch.full((8, 8), 0.5))


def test_captions_file(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text("train/00012_input.jpg: a river: at dawn\n00013: waves\nnonsense\n")
    assert read_captions(str(path)) == {"00012": "a river: at dawn", "00013": "waves"}


def test_discriminator_losses_follow_pix2pixhd():
    torch.manual_seed(0)
    discriminator = MultiscaleDiscriminator(5, ndf=8, layers=3, scales=2)
    outputs = discriminator(torch.randn(1, 5, 64, 64))
    assert len(outputs) == 2 and len(outputs[0]) == 5  # two scales, n_layers + 2 outputs each
    assert outputs[1][0].shape[-1] == 17  # the second scale sees the input downsampled twice
    assert lsgan_loss([[torch.ones(1, 1, 2, 2)]], True) == 0 and lsgan_loss([[torch.ones(1, 1, 2, 2)]], False) == 1
    assert feature_matching_loss(outputs, outputs) == 0
    assert end_point_error(torch.zeros(1, 2, 3, 3), torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3)) == 5


def test_vgg_loss_reads_local_torchvision_weights(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    # vgg19's own features (configuration "E"), without building and initialising its 120M-parameter
    # classifier, which the loss never reads: the file holds exactly the keys of vgg19().features
    features = make_layers(cfgs["E"])
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg19.pth")
    loss = VGGLoss(str(tmp_path / "vgg19.pth"))
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(a, a) == 0 and loss(a, b) > 0
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="--vgg-weights"):
        VGGLoss(str(tmp_path / "bad.pth"))


def test_dense_displacements_match_the_euler_integration():
    flow = torch.zeros(2, 12, 12)
    flow[0, 4:8, 2:10] = 1.0
    forward, backward = dense_displacements(flow, 3, 6)
    assert torch.allclose(forward[0, 5, 3], torch.tensor(3.0)) and forward[:, 0].abs().max() == 0
    assert torch.allclose(backward[0, 5, 6], torch.tensor(-3.0))


def test_sd_cross_attention_blocks_map_to_g_flow(tmp_path):
    from safetensors.torch import save_file

    from text2cinemagraph.nodes.stages.networks import build_network

    torch.manual_seed(0)
    network = build_network("flow", TINY_FLOW)
    own = network.state_dict()
    sd = {}
    for sd_block, ours in (("input_blocks.4.1", "attn_input_block_1"), ("output_blocks.7.1", "attn_output_block_1"),
                           ("middle_block.1", "attn_middle_block")):
        for key, value in own.items():
            if key.startswith(ours + "."):
                sd["model.diffusion_model." + sd_block + key[len(ours):]] = torch.randn_like(value)
        sd[f"model.diffusion_model.{sd_block}.transformer_blocks.0.attn1.to_q.weight"] = torch.zeros(1)
        sd[f"model.diffusion_model.{sd_block}.transformer_blocks.0.norm1.weight"] = torch.zeros(1)
    sd["model.diffusion_model.input_blocks.4.0.in_layers.0.weight"] = torch.zeros(1)
    mapped = sd_cross_attention_weights(sd)
    assert all(".attn1." not in k and ".norm1." not in k for k in mapped) and len(mapped) == 3 * 19
    save_file(sd, str(tmp_path / "sd.safetensors"))
    assert initialise_from_sd(network, str(tmp_path / "sd.safetensors")) == 3 * 19
    key = "attn_middle_block.transformer_blocks.0.attn2.to_k.weight"
    original = "model.diffusion_model.middle_block.1" + key[len("attn_middle_block"):]
    assert torch.equal(network.state_dict()[key], sd[original])
