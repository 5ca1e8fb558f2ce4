"""TwinPromptBuilder on a table of prompts: styles, plurals, synonyms, directions, nothing to animate."""

import pytest

from text2cinemagraph.kernels.errors import InputError
from text2cinemagraph.nodes.stages.twin_prompt import NATURAL_SUFFIX, build_twin_prompts

# prompt -> (nouns of the natural prompt, regions, direction, region kind)
TABLE = [
    ("a large waterfall falling between hills in the style Van Gogh painting during sunset, 4k",
     ("waterfall", "hills"), ("waterfall",), "auto", "waterfall"),
    ("a river flowing in front of a mountain in the style of starry nights painting",
     ("river", "mountain"), ("river",), "auto", "river"),
    ("pixel art of clouds over a castle", ("clouds",), ("clouds",), "auto", "clouds"),
    ("an ukiyo-e print of ocean waves crashing on rocks", ("ocean waves", "rocks"), ("ocean waves",), "auto", "ocean/sea"),
    ("smoke rising from a chimney of a small house, watercolor", ("smoke", "house"), ("smoke",), "auto", "smoke"),
    ("a campfire at night, oil painting", None, None, "auto", None),
    ("Rivers and lakes under a starry sky, Monet style", ("rivers", "lakes", "sky"), ("rivers", "lakes", "sky"), "auto", "river"),
    ("a cascade in a green forest", ("cascade", "forest"), ("cascade",), "auto", "waterfall"),
    ("the sea at dawn, impressionism", ("sea",), ("sea",), "auto", "ocean/sea"),
    ("a stream through a meadow in the style of Hokusai", ("stream",), ("stream",), "auto", "stream"),
    ("a lake surrounded by snowy mountains, anime style", ("lake", "mountains"), ("lake",), "auto", "lake"),
    ("fog over the hills, digital art", ("fog", "hills"), ("fog",), "auto", None),
    ("a waterfall in a jungle, in downwards direction", ("waterfall",), ("waterfall",), "downwards", "waterfall"),
    ("a river in left to right direction, cyberpunk", ("river",), ("river",), "left to right", "river"),
    ("clouds in Right To Left, Upwards direction over a city", ("clouds",), ("clouds",), "right to left, upwards", "clouds"),
    ("smoke in upwards, left to right direction from a factory", ("smoke",), ("smoke",), "upwards, left to right", "smoke"),
    ("a river, in the downwards, right to left direction, by Turner", ("river",), ("river",), "downwards, right to left", "river"),
    ("waterfalls in a fantasy world, in downwards direction", ("waterfalls",), ("waterfalls",), "downwards", "waterfall"),
    ("a boat on a lake at sunset, oil painting", ("boat", "lake"), ("lake",), "auto", "lake"),
    ("a bridge over a river in a city, Van Gogh", ("bridge", "river"), ("river",), "auto", "river"),
    ("two waterfalls and a river, studio ghibli", ("waterfalls", "river"), ("waterfalls", "river"), "auto", "waterfall"),
    ("a fountain in a garden, pastel drawing", ("fountain",), ("fountain",), "auto", None),
    ("storm clouds above the ocean, dramatic", ("clouds", "ocean"), ("clouds", "ocean"), "auto", "clouds"),
    ("steam rising from a cup of coffee", ("steam",), ("steam",), "auto", None),
    ("A WATERFALL IN A CAVE, UNREAL ENGINE, in upwards direction", ("waterfall",), ("waterfall",), "upwards", "waterfall"),
    ("mist over a pond in the early morning, Chinese ink painting", ("mist", "pond"), ("mist", "pond"), "auto", None),
    ("burning fire in a fireplace, cozy room, 8k", ("fire",), ("fire",), "auto", "fire"),
    ("northern lights over a frozen lake, low poly", ("lake",), ("lake",), "auto", None),
    ("a canal in Venice at night with gondolas, in left to right, downwards direction", ("canal",), ("canal",),
     "left to right, downwards", "river"),
    ("sea waves at sunset, in the style of Studio Ghibli", ("sea waves",), ("sea waves",), "auto", "ocean/sea"),
]

NOTHING_MOVES = [
    "a portrait of a cat, oil painting",
    "a red car parked next to a building",
    "a mountain at noon, pixel art",
    "abstract geometric shapes",
]


@pytest.mark.parametrize("prompt, nouns, regions, direction, kind", TABLE)
def test_prompt_table(prompt, nouns, regions, direction, kind):
    twin = build_twin_prompts(prompt)
    assert twin.direction == direction
    assert "direction" not in twin.artistic.lower()
    assert twin.natural.endswith(NATURAL_SUFFIX)
    if nouns is not None:
        assert set(nouns) <= set(twin.nouns), twin  # the vocabulary may know more scene nouns
        assert twin.natural == ", ".join((*twin.nouns, NATURAL_SUFFIX))
    if regions is not None:
        assert set(regions) <= set(twin.regions), twin
    else:
        assert twin.regions
    if kind is not None:
        assert twin.region_kind == kind
    for region in twin.regions:  # AttentionClusterMask finds the region's words in the artistic prompt
        assert region in twin.artistic.lower()


@pytest.mark.parametrize("prompt", NOTHING_MOVES)
def test_prompt_with_nothing_animatable_is_a_clear_error(prompt):
    with pytest.raises(InputError) as error:
        build_twin_prompts(prompt)
    assert error.value.input_name == "prompt" and "nothing that can move" in str(error.value)


def test_empty_prompt_is_refused():
    with pytest.raises(InputError, match="prompt: is empty"):
        build_twin_prompts("   ")


def test_overrides_win():
    twin = build_twin_prompts("a portrait of a cat", natural_override="a cat, photo", region_override="fur")
    assert twin.natural == "a cat, photo" and twin.regions == ("fur",) and twin.region_kind == "generic"


def test_tagger_keeps_only_nouns():
    # "falls" is a verb here; a part-of-speech tagger (NLTK's when installed) drops it.
    def tagger(words):
        return [(w, "VBZ" if w == "falls" else "NN") for w in words]

    twin = build_twin_prompts("water falls over rocks", tagger=tagger)
    assert twin.nouns == ("water", "rocks") and twin.regions == ("water",)
    untagged = build_twin_prompts("water falls over rocks", tagger=lambda words: [(w, "NN") for w in words])
    assert untagged.nouns[0] == "water falls"  # without a tagger the longer vocabulary phrase wins
