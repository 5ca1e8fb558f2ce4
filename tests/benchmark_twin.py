"""Benchmark of the twin pass (run on demand: ``python tests/benchmark_twin.py``; not a test).

On the tiny SD1.5-layout test model (real SD1.5 weights cannot be downloaded here):
- a plain batch-of-two sampling run (core ComfyUI, no patches) vs the twin pass, with
  and without attention recording, so the recording overhead is a share of sampling time;
- bytes written to storage during the twin pass (/proc/self/io write_bytes);
- the recorded state's size at 512 px, computed from the shapes.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comfy_inprocess import encode, tiny_checkpoint  # noqa: E402


def written_bytes() -> int:
    with open("/proc/self/io") as handle:
        return int(next(line for line in handle if line.startswith("write_bytes")).split()[1])


def median_time(run, repeats: int = int(os.environ.get("T2C_REPEATS", "3"))) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    threads = int(os.environ.get("T2C_THREADS", "1"))
    torch.set_num_threads(threads)
    size, steps = int(os.environ.get("T2C_SIZE", "512")), int(os.environ.get("T2C_STEPS", "20"))
    model, clip = tiny_checkpoint(0)  # imports ComfyUI

    import comfy.sample
    import comfy.samplers

    import text2cinemagraph.nodes.twin as twin
    from text2cinemagraph.nodes.stages.twin_attention import AttentionMaps, TwinAttention

    artistic, natural, empty = (encode(clip, t) for t in ("a river, van gogh", "river, nature, photography", ""))
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}

    def plain():
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "ddim_uniform", steps)
        both = latent["samples"].repeat(2, 1, 1, 1)
        comfy.sample.sample_custom(model, comfy.sample.prepare_noise(both, 0), 7.5, comfy.samplers.sampler_object("euler"),
                                   sigmas.cpu(), artistic, empty, both, disable_pbar=True, seed=0)

    def twins(negative_schedule: bool):
        settings = twin.TwinSettings(steps, 5.0, 7.5, 0.5, 0.8, negative_schedule)
        return lambda: twin.sample_twins(model, artistic, natural, empty, latent, 0, settings)

    plain()  # warm-up
    if os.environ.get("T2C_PAIRED"):  # plain and twin runs alternated: robust to a machine whose load drifts
        ratios = []
        for _ in range(int(os.environ["T2C_PAIRED"])):
            plain_s, twin_s = median_time(plain, 1), median_time(twins(True), 1)
            ratios.append(twin_s / plain_s)
            print(f"plain {plain_s:.2f} s, twin pass with recording and negative schedule {twin_s:.2f} s: "
                  f"{twin_s / plain_s:.3f}x", flush=True)
        print(f"median ratio over {len(ratios)} alternated pairs: {statistics.median(ratios):.3f}x")
        return
    rows = [("plain batch of 2 (core, no patches)", median_time(plain))]
    before = written_bytes()
    rows.append(("twin pass, recording, negative schedule", median_time(twins(True))))
    written = written_bytes() - before
    rows.append(("twin pass, recording", median_time(twins(False))))
    recording = (TwinAttention._record_self, TwinAttention._record_cross, TwinAttention.result)
    TwinAttention._record_self = TwinAttention._record_cross = lambda self, *args: None
    TwinAttention.result = lambda self: None
    rows.append(("twin pass, no recording", median_time(twins(False))))
    TwinAttention._record_self, TwinAttention._record_cross, TwinAttention.result = recording

    base = rows[3][1]
    print(f"tiny SD1.5-layout model, {size}x{size}, {steps} DDIM steps, {threads} thread(s), torch {torch.__version__}")
    print(f"| run | s | vs plain |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / rows[0][1] - 1:+.0%} |")
    print(f"attention recording overhead: {rows[2][1] / base - 1:+.1%} of the twin pass without recording")
    print(f"bytes written to storage during the twin pass: {written}")
    at_512 = AttentionMaps((32, 32), torch.zeros(1024, 1024), torch.zeros(2, 1024, 77), 1, 1)
    print(f"recorded state at 512 px: {at_512.size_mb():.2f} MB (1024x1024 self map + 2x1024x77 cross maps, fp32)")


if __name__ == "__main__":
    main()
