"""Fuzzing study-spec loading: load_spec succeeds or raises a one-line ConfigError naming the file.

Budget: ``NOISYSEG_FUZZ_EXAMPLES`` examples per test (60 by default, under ~30 s in all);
``NOISYSEG_FUZZ_EXAMPLES=2000`` for a long run.
"""

import copy
import math
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisyseg.errors import ConfigError
from noisyseg.study import load_spec
from noisyseg.study.spec import SPEC_DIR

FUZZ = settings(max_examples=int(os.environ.get("NOISYSEG_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

SHIPPED = {p.stem: p.read_text(encoding="utf-8") for p in sorted(SPEC_DIR.glob("*.yaml"))}
FIELDS = ["data", "seed", "train", "corrupt", "audit", "volumes", "grid", "grids", "name",
          "description", "model", "model_options", "epochs", "batch_size", "lr", "loss",
          "target_dice", "strength", "fraction", "classes", "options", "detectors", "refurbish",
          "flag_rule", "flag_value", "warmup", "every", "confidence", "dims", "spacing",
          "corrupt.model", "corrupt.target_dice", "train.model", "audit.detectors", "seed"]
VALUES = ["none", "natural", "dilate", "unet", "vog", "loss", "median", "synthetic-echo", "top",
          "mixture", "", "\u202e", "\x85", "\u2028", "\ud7ff", "\U0001f600", "\t", "~", "*", "&a"]
ODD_NUMBERS = [-1, 0, 1, 2, 3, -1e308, 1e308, 2**31, 2**32, 2**63, -(2**63), 0.5, 1.5, 1e-320,
               math.nan, math.inf, -math.inf, 10**18]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.sampled_from(ODD_NUMBERS), st.sampled_from(VALUES), st.text(max_size=20))
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
trees = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)), max_leaves=40)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "spec.yaml"


def check_contract(path):
    """load_spec(path) either works (and so do its trials) or raises a one-line ConfigError
    naming the file; any other exception fails the test."""
    try:
        spec = load_spec(path)
        assert spec.grid_points() >= 1
        assert spec.trials()
        return spec
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg and len(msg.splitlines()) == 1, msg
        assert str(path) in msg, msg
        assert len(msg) < 5000, msg[:200]
        return None


def write_text(path, text):
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return path


@FUZZ
@given(st.text(max_size=400))
def test_random_text(spec_path, text):
    check_contract(write_text(spec_path, text))


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(spec_path, data):
    spec_path.write_bytes(data)
    check_contract(spec_path)


@FUZZ
@given(st.one_of(trees, st.dictionaries(st.sampled_from(FIELDS), trees, max_size=8)))
def test_random_structures(spec_path, tree):
    check_contract(write_text(spec_path, yaml.safe_dump(tree, allow_unicode=True)))


@FUZZ
@given(st.dictionaries(st.sampled_from(["train", "corrupt", "audit", "volumes"]),
                       st.dictionaries(st.sampled_from(FIELDS), trees, max_size=4), max_size=4),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(FIELDS), st.lists(trees, max_size=3),
                                            max_size=3)))
def test_random_sections_and_grid(spec_path, sections, grid):
    doc = {"data": "synthetic-echo:n=20,size=32,seed=0", **sections}
    if grid is not None:
        doc["grid"] = grid
    check_contract(write_text(spec_path, yaml.safe_dump(doc, allow_unicode=True)))


# mutations of the shipped specs

def paths(node, prefix=()):
    """Every (path, value) in a loaded YAML tree."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


def replace(tree, path, value):
    tree = copy.deepcopy(tree)
    if not path:
        return value
    node = tree
    for p in path[:-1]:
        node = node[p]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return tree


DELETE = object()


@st.composite
def mutated_specs(draw):
    name = draw(st.sampled_from(sorted(SHIPPED)))
    text = SHIPPED[name]
    how = draw(st.sampled_from(["delete", "swap", "number", "junk", "duplicate", "text", "rename"]))
    if how in ("duplicate", "text"):
        lines = text.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        if how == "duplicate":  # the same key twice (or a repeated list item)
            return name, "".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
        junk = draw(st.text(max_size=10))
        cut = draw(st.integers(0, len(lines[i])))
        return name, "".join(lines[:i]) + lines[i][:cut] + junk + lines[i][cut:] + "".join(lines[i + 1:])
    tree = yaml.safe_load(text)
    where = draw(st.sampled_from([p for p, _ in paths(tree) if p]))
    old = dict(paths(tree))[where]
    if how == "delete":
        tree = replace(tree, where, DELETE)
    elif how == "swap":
        tree = replace(tree, where, draw(trees.filter(lambda v: type(v) is not type(old))))
    elif how == "number":
        tree = replace(tree, where, draw(st.sampled_from(ODD_NUMBERS)))
    elif how == "junk":
        tree = replace(tree, where, draw(st.text(min_size=1, max_size=10)) if not isinstance(old, str)
                       else old + draw(st.text(min_size=1, max_size=10)))
    else:  # rename the key at ``where``
        parent = dict(paths(tree))[where[:-1]]
        if isinstance(parent, dict):
            new = draw(keys)
            items = [(new if k == where[-1] else k, v) for k, v in parent.items()]
            tree = replace(tree, where[:-1], dict(items))
    return name, yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)


@FUZZ
@given(mutated_specs())
def test_mutated_shipped_specs(spec_path, mutated):
    _, text = mutated
    check_contract(write_text(spec_path, text))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_specs_pass_the_contract_unchanged(tmp_path, name):
    assert check_contract(write_text(tmp_path / "spec.yaml", SHIPPED[name])) is not None
