import json
import random

import pytest

from glue_painters import variants
from glue_painters.plans import Layer, Parallel, Plan, PlanError, Repeat, full_plan


@pytest.mark.parametrize("text", [
    "0-7,[8-23]x3,24-31",
    "0-9,16x13,23-31",
    "0-3,28-4,29-31",
    "0,2,1,3",
    "5",
    "[0-3]",
    "[0,2,5-7]x2,8",
    "0-3,4x2,5",
    "3,4,3",
    "0-4,6,5,7-9",
])
def test_text_round_trip(text):
    plan = Plan.parse(text)
    assert plan.text == text
    assert Plan.parse(plan.text) == plan
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    assert Plan.from_json({"steps": plan.to_json()["steps"]}) == plan


def test_parse_structure():
    plan = Plan.parse("0-1,[2-4]x3,5x2,7-6")
    assert plan.steps == (
        Layer(0), Layer(1), Repeat(Parallel((2, 3, 4)), 3), Repeat(Layer(5), 2), Layer(7), Layer(6)
    )
    assert plan.executions == 2 + 9 + 2 + 2
    assert plan.depth == 2 + 3 + 2 + 2
    assert not plan.is_sequential
    assert plan.layers_used() == {0, 1, 2, 3, 4, 5, 6, 7}


def test_canonical_forms_are_equal_values():
    assert Plan.parse("3,3,3") == Plan.parse("3x3") == Plan((Repeat(Layer(3), 2), Layer(3)))
    assert Plan.parse("[1-2],[1-2]") == Plan.parse("[1-2]x2")
    assert Plan.parse("[4]") == Plan.parse("4")
    assert Plan.parse("2x1") == Plan.parse("2")
    assert Plan.parse("0-2,3") == Plan.parse("0-3")
    assert Plan.parse(" 0 - 3 , [ 4-5 ]x2") == Plan.parse("0-3,[4-5]x2")


def test_hash_is_stable_and_distinguishes():
    a = Plan.parse("0-7,[8-23]x3,24-31")
    assert a.hash == Plan.parse("0-7,[8-23]x3,24-31").hash
    assert len(a.hash) == 12
    assert len({Plan.parse(t).hash for t in ["0-3", "0-2", "3-0", "[0-3]", "[0-3]x2"]}) == 5


def test_hash_pinned_value():
    import hashlib
    assert Plan.parse("0-3").hash == hashlib.sha256(b"0-3").hexdigest()[:12]


@pytest.mark.parametrize("text, message", [
    ("", "empty plan text"),
    ("0-3,,4", "empty step"),
    ("0-3,a", "is not a layer"),
    ("[0-3", "'[' without ']'"),
    ("0-3]", "']' without '['"),
    ("[[0-1]]", "cannot be nested"),
    ("[]", "empty group"),
    ("[1,1]", "lists layer 1 twice"),
    ("0-3x2", "is a range"),
    ("2x0", "repeat count must be at least 1"),
    ("5x", "is not a layer"),
])
def test_parse_errors(text, message):
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Plan.parse(text)


def test_validate_against_layer_count():
    Plan.parse("0-7").validate(8)
    with pytest.raises(PlanError, match=r"step '\[6-8\]' uses layer 8, but the model has 8 layers \(0-7\)"):
        Plan.parse("0-5,[6-8]").validate(8)
    with pytest.raises(PlanError, match="needs at least one step"):
        Plan(())
    with pytest.raises(PlanError, match="has 0 layers"):
        Plan.parse("0").validate(0)


def test_json_errors():
    with pytest.raises(PlanError):
        Plan.from_json({"nope": 1})
    with pytest.raises(PlanError):
        Plan.from_json({"steps": [{"what": 1}]})


# ---- variants -------------------------------------------------------------------------------
def _order(plan):
    return [u.index for u in plan.units()]


def test_variants_follow_released_code_convention():
    T, N = 32, 7
    mid = list(range(8, 25))  # N+1 .. T-N-1
    head, tail = list(range(0, 8)), list(range(25, 32))
    assert variants.middle(T, N) == mid
    assert _order(variants.skip(T, N)) == head + tail
    assert _order(variants.reverse(T, N)) == head + mid[::-1] + tail
    assert _order(variants.middle_repeat(T, N)) == head + [16] * len(mid) + tail
    shuffled = list(mid)
    random.seed(3)          # the paper's code: global seed, then shuffle
    random.shuffle(shuffled)
    assert _order(variants.random(T, N, seed=3)) == head + shuffled + tail
    assert variants.parallel(T, N).text == "0-7,[8-24],25-31"
    assert variants.looped_parallel(T, N, 3).text == "0-7,[8-24]x3,25-31"
    assert variants.full(T) == full_plan(T)
    assert _order(variants.skip_one(T, 5)) == [i for i in range(T) if i != 5]
    assert _order(variants.switch(T, 5))[4:8] == [4, 6, 5, 7]


def test_random_does_not_touch_global_rng():
    random.seed(123)
    before = random.random()
    random.seed(123)
    variants.random(32, 4, seed=9)
    assert random.random() == before


def test_n_range_and_errors():
    assert variants.n_range(32) == list(range(0, 16))
    assert variants.middle(32, 15) == [16]
    with pytest.raises(PlanError, match="N=16 is out of range .* between 0 and 15"):
        variants.skip(32, 16)
    with pytest.raises(PlanError, match="N=-1"):
        variants.skip(32, -1)
    with pytest.raises(PlanError, match="switch i=31"):
        variants.switch(32, 31)
    with pytest.raises(PlanError, match="skip_one i=32"):
        variants.skip_one(32, 32)
    with pytest.raises(PlanError, match="k >= 1"):
        variants.looped_parallel(32, 4, 0)


def test_resolve_specs():
    assert variants.resolve("skip:n=7", 32) == variants.skip(32, 7)
    assert variants.resolve("looped_parallel:n=4,k=2", 32) == variants.looped_parallel(32, 4, 2)
    assert variants.resolve("random:n=4", 32) == variants.random(32, 4, 0)
    assert variants.resolve("full", 32) == full_plan(32)
    assert variants.resolve("0-3,[4-6]x2", 8).text == "0-3,[4-6]x2"
    with pytest.raises(PlanError, match="unknown variant 'skp'"):
        variants.resolve("skp:n=3", 32)
    with pytest.raises(PlanError, match="needs n="):
        variants.resolve("skip", 32)
    with pytest.raises(PlanError, match="takes n, not k"):
        variants.resolve("skip:n=3,k=2", 32)
    with pytest.raises(PlanError, match="expected key=integer"):
        variants.resolve("skip:n=three", 32)
    with pytest.raises(PlanError, match="uses layer 8"):
        variants.resolve("0-9", 8)
