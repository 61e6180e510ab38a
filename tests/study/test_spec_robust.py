"""Study specs that are malformed, hostile or too large: one-line ConfigErrors naming the file."""

import re
import textwrap

import pytest

from noisyseg.errors import ConfigError
from noisyseg.study import load_spec
from noisyseg.study.spec import MAX_DEPTH, MAX_NODES, MAX_SPEC_BYTES, MAX_TRIALS, StudySpec

BASE = "data: synthetic-echo:n=20,size=32,seed=0\n"


def write(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def refused(path, match):
    """Load ``path``; the ConfigError must be one line, start with the file and match."""
    with pytest.raises(ConfigError, match=match) as info:
        load_spec(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    assert len(msg.splitlines()) == 1, msg
    return msg


def alias_bomb(levels, width=9):
    """A 'billion laughs' under train.model_options: ``width ** levels`` leaves."""
    lines = [BASE + "train:", "  model: unet", "  model_options:",
             "    l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# 1. nesting depth

@pytest.mark.parametrize("value", [
    "[" * 20000 + "]" * 20000,
    "{a: " * 20000 + "1" + "}" * 20000,
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
], ids=["lists-20000", "mappings-20000", "lists-just-too-deep"])
def test_deep_nesting_is_refused(tmp_path, value):
    p = write(tmp_path, BASE + "train: {model_options: {a: " + value + "}}\n")
    refused(p, rf"spec\.yaml line 2: nested deeper than {MAX_DEPTH} levels")


def test_deep_block_mappings_are_refused(tmp_path):
    text = BASE + "train:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)) + "\n"
    refused(write(tmp_path, text), rf"nested deeper than {MAX_DEPTH} levels")


def test_depth_built_from_aliases_is_refused(tmp_path):
    chain = ["    a0: &a0 [1]"] + [f"    a{i}: &a{i} [*a{i - 1}]" for i in range(1, 60)]
    text = BASE + "train:\n  model_options:\n" + "\n".join(chain) + "\n"
    refused(write(tmp_path, text), rf"train\.model_options\.a\d+(\[0\])+: nested deeper than {MAX_DEPTH}")


def test_recursive_alias_is_refused(tmp_path):
    p = write(tmp_path, BASE + "train: {model_options: {loop: &x [*x]}}\n")
    refused(p, rf"train\.model_options\.loop(\[0\])+: nested deeper than {MAX_DEPTH} levels")


def test_nesting_within_the_limit_is_fine(tmp_path):
    depth = MAX_DEPTH - 4  # the document, train, model_options and the key take 3 levels
    p = write(tmp_path, BASE + "train: {model_options: {a: " + "[" * depth + "]" * depth + "}}\n")
    assert load_spec(p).base["train"]["model_options"]["a"]


# 2. encoding and file size

def test_a_file_that_is_not_utf8_names_the_byte(tmp_path):
    p = write(tmp_path, b"name: x\n\xff\xfe junk\n")
    refused(p, r"spec\.yaml: not UTF-8 text \(byte 0xff at offset 8\)")


def test_latin1_text_names_the_offset(tmp_path):
    p = write(tmp_path, (BASE + "description: caf\xe9\n").encode("latin-1"))
    refused(p, rf"not UTF-8 text \(byte 0xe9 at offset {len(BASE) + len('description: caf')}\)")


def test_a_utf8_bom_is_accepted(tmp_path):
    p = write(tmp_path, b"\xef\xbb\xbf" + BASE.encode() + b"name: bom\n")
    assert load_spec(p).name == "bom"


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    p = write(tmp_path, BASE + "description: >-\n" + ("  " + "x" * 1000 + "\n") * 1100)
    refused(p, rf"spec\.yaml: \d+ bytes, larger than the limit of {MAX_SPEC_BYTES} bytes")


@pytest.mark.parametrize("text,match", [
    ("name: x\x00y\n", r"spec\.yaml line 1: not valid YAML \(unacceptable character #x0000"),
    ("name: [x\n", r"spec\.yaml line 2: not valid YAML"),
    ("train: !!python/object:os.system {}\n", r"spec\.yaml line 1: not valid YAML \(could not determine"),
])
def test_yaml_errors_are_one_line(tmp_path, text, match):
    refused(write(tmp_path, text), match)


# 3. size once aliases are expanded

@pytest.mark.parametrize("levels", [6, 9])
def test_alias_bomb_is_refused(tmp_path, levels):
    p = write(tmp_path, alias_bomb(levels))
    refused(p, rf"spec\.yaml: train\.model_options\.l\d.*: more than {MAX_NODES} values once YAML "
               r"aliases are expanded")


def test_string_alias_bomb_is_refused(tmp_path):
    long = "x" * 100_000
    text = BASE + f"train:\n  model_options:\n    s: &s {long}\n    t: [" + ", ".join(["*s"] * 30) + "]\n"
    refused(write(tmp_path, text), rf"more than {MAX_SPEC_BYTES} characters of text once YAML aliases")


def test_merge_key_bomb_is_refused(tmp_path):
    lines = [BASE + "train:", "  model_options:", "    m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7}"]
    for i in range(1, 10):
        lines.append(f"    m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 9) + "]}")
    refused(write(tmp_path, "\n".join(lines) + "\n"), rf"more than {MAX_NODES} values")


def test_too_many_nodes_stop_the_parser(tmp_path):
    items = ",".join(["1"] * (2 * MAX_NODES + 10))  # 400 KB: under the size limit
    p = write(tmp_path, BASE + "train: {model_options: {a: [" + items + "]}}\n")
    refused(p, rf"spec\.yaml line 2: more than {2 * MAX_NODES} YAML nodes \(keys and values\); a spec "
               rf"may hold at most {MAX_NODES} values")


def test_class_labels_may_be_names_or_integers(tmp_path):
    p = write(tmp_path, BASE + "corrupt: {model: dilate, strength: 2, classes: [lv_cavity, 2]}\n")
    assert load_spec(p).trials()[0].corrupt.classes == ["lv_cavity", 2]


def test_small_aliases_and_merges_still_work(tmp_path):
    p = write(tmp_path, BASE + "train: &t {epochs: 2, batch_size: 4, threads: 1}\n"
              "grid:\n  train: [*t, {<<: *t, epochs: 3}]\n")
    assert sorted(t.train.epochs for t in load_spec(p).trials()) == [2, 3]


# 4. grid size, before the trials exist

def test_a_huge_grid_is_refused_before_expanding(tmp_path):
    axes = "".join(f"  train.model_options.k{i}: [{', '.join(map(str, range(19)))}]\n" for i in range(6))
    p = write(tmp_path, BASE + "grid:\n" + axes)
    refused(p, rf"spec\.yaml: grid: 47045881 trials \(19 x 19 x 19 x 19 x 19 x 19\), more than the "
               rf"limit of {MAX_TRIALS}")


def test_grids_are_summed_against_the_limit(tmp_path):
    grid = "  - seed: [" + ", ".join(map(str, range(400))) + "]\n    train.epochs: [" + \
        ", ".join(map(str, range(1, 201))) + "]\n"
    p = write(tmp_path, BASE + "grids:\n" + grid * 2)
    refused(p, rf"grids: 160000 trials \(80000 \+ 80000\), more than the limit of {MAX_TRIALS}")


def test_trials_checks_the_limit_itself():
    spec = StudySpec(name="big", base={"data": "synthetic-echo"},
                     grids=[{"seed": list(range(1000)), "train.epochs": list(range(1, 1001))}])
    assert spec.grid_points() == 10**6
    with pytest.raises(ConfigError, match=r"big: grid: 1000000 trials"):
        spec.trials()


def test_large_grid_of_a_large_base_is_refused(tmp_path):
    opts = "".join(f"    o{i}: [{', '.join(['1'] * 40)}]\n" for i in range(50))  # 2050 values
    seeds = ", ".join(map(str, range(10000)))
    p = write(tmp_path, BASE + "train:\n  model_options:\n" + opts + f"grid:\n  seed: [{seeds}]\n")
    refused(p, r"grid: 10000 trials of \d+ values each, more than the limit of \d+ values")


# 5. duplicate keys

@pytest.mark.parametrize("text,match", [
    (BASE + "train: {epochs: 2}\ntrain: {epochs: 3}\n",
     r"line 3: duplicate key 'train' \(first on line 2\)"),
    (BASE + "train:\n  epochs: 2\n  lr: 0.1\n  epochs: 3\n",
     r"line 5: duplicate key 'epochs' \(first on line 3\)"),
    (BASE + "grid:\n  seed: [0]\n  seed: [1]\n", r"line 4: duplicate key 'seed'"),
    (BASE + "train: {model_options: {width: 4, width: 8}}\n", r"line 2: duplicate key 'width'"),
    (BASE + "audit: {refurbish: yes, refurbish: true}\n", r"line 2: duplicate key 'refurbish'"),
    ("data: synthetic-echo\ndata: synthetic-echo\n", r"line 2: duplicate key 'data' \(first on line 1\)"),
])
def test_duplicate_keys_are_refused(tmp_path, text, match):
    refused(write(tmp_path, text), rf"spec\.yaml {match}")


def test_a_merge_may_be_overridden(tmp_path):
    p = write(tmp_path, BASE + "train: {<<: {epochs: 2, lr: 0.1}, epochs: 3}\n")
    t = load_spec(p).trials()[0]
    assert (t.train.epochs, t.train.lr) == (3, 0.1)


# 6. fields: missing, unknown, wrong type

@pytest.mark.parametrize("text,match", [
    (BASE + "corrupt: {strength: 2}\n", r"corrupt: missing required field 'model'"),
    (BASE + "corrupt: {modle: natural, strength: 2}\n",
     r"corrupt\.modle: unknown field; expected one of model, target_dice"),
    (BASE + "train: [1, 2]\n", r"train: expected a mapping of fields, got \[1, 2\]"),
    (BASE + "train: unet\n", r"train: expected a mapping of fields, got 'unet'"),
    (BASE + "audit: [vog]\n", r"audit: expected a mapping of fields"),
    (BASE + "volumes: 3\n", r"volumes: expected a mapping of fields, got 3"),
    (BASE + "corrupt: natural\n", r"corrupt: expected a mapping of fields \(or none\), got 'natural'"),
    (BASE + "corrupt: [natural]\n", r"corrupt: expected a mapping of fields"),
    (BASE + "train: {epochs: many}\n", r"train\.epochs: expected an integer, got 'many'"),
    (BASE + "train: {epochs: 2.5}\n", r"train\.epochs: expected an integer, got 2\.5"),
    (BASE + "train: {epochs: true}\n", r"train\.epochs: expected an integer, got True"),
    (BASE + "train: {lr: fast}\n", r"train\.lr: expected a number, got 'fast'"),
    (BASE + "train: {lr: .nan}\n", r"train\.lr: expected a finite number, got nan"),
    (BASE + "train: {epochs: 0}\n", r"train\.epochs: must be >= 1, got 0"),
    (BASE + "train: {model: 3}\n", r"train\.model: expected a string, got 3"),
    (BASE + "train: {model_options: [4]}\n", r"train\.model_options: expected a mapping, got \[4\]"),
    (BASE + "train: {patch_size: 64}\n", r"train\.patch_size: expected a list of integers or null, got 64"),
    (BASE + "train: {augment: maybe}\n", r"train\.augment: expected true or false, got 'maybe'"),
    (BASE + "corrupt: {model: natural, strength: two}\n",
     r"corrupt\.strength: expected a number or null, got 'two'"),
    (BASE + "corrupt: {model: natural, target_dice: 0.9, fraction: half}\n",
     r"corrupt\.fraction: expected a number, got 'half'"),
    (BASE + "corrupt: {model: [natural], strength: 2}\n", r"corrupt\.model: expected a string"),
    (BASE + "corrupt: {model: natural, strength: 2, classes: lv}\n",
     r"corrupt\.classes: expected a list of strings or integers, or null, got 'lv'"),
    (BASE + "corrupt: {model: natural, strength: .inf}\n", r"corrupt\.strength: expected a finite number"),
    (BASE + "audit: {detectors: 3}\n",
     r"audit\.detectors: expected a detector name or a list of them, got 3"),
    (BASE + "audit: {detectors: [{vog: 1}]}\n", r"audit\.detectors: expected a list of strings"),
    (BASE + "audit: {warmup: soon}\n", r"audit\.warmup: expected an integer, got 'soon'"),
    (BASE + "volumes: {dims: three}\n", r"volumes\.dims: expected an integer, got 'three'"),
    (BASE + "volumes: {dims: 3, spacing: fine}\n", r"volumes\.spacing: expected 'median' or 3 sizes"),
    (BASE + "volumes: {tolerance: -1}\n", r"volumes\.tolerance: expected a number >= 0, got -1"),
    (BASE + "seed: one\n", r"seed: expected an integer from 0 to 4294967295, got 'one'"),
    (BASE + "seed: -1\n", r"seed: expected an integer from 0 to 4294967295, got -1"),
    (BASE + "seed: 0x" + "f" * 40 + "\n", r"seed: an integer of more than 64 bits is not supported"),
    (BASE.replace("synthetic-echo:n=20,size=32,seed=0", "[echo]"), r"data: expected a source string"),
    ("- data\n- train\n", r"spec\.yaml: expected a mapping with data, train, grid, \.\.\., got a list"),
    ("just text\n", r"spec\.yaml: expected a mapping with data, train, grid, \.\.\., got a string"),
    ("", r"spec\.yaml: the file is empty"),
    ("# only a comment\n", r"spec\.yaml: the file is empty"),
    (BASE + "name: [a, b]\n", r"name: expected a string, got \['a', 'b'\]"),
    (BASE + "description: {a: 1}\n", r"description: expected a string"),
    (BASE + "grid: seed\n", r"grid: expected a mapping of field: \[values\], got 'seed'"),
    (BASE + "grids: null\n", r"grids: expected a list of mappings, got None"),
    (BASE + "grids: [seed]\n", r"grids\[0\]: expected a mapping of field: \[values\]"),
    (BASE + "grid: {seed: 3}\n", r"grid\.seed: expected a non-empty list of values, got 3"),
    (BASE + "grid: {seed: []}\n", r"grid\.seed: expected a non-empty list of values, got \[\]"),
    (BASE + "grid: {'corrupt..model': [natural]}\n",
     r"grid\.corrupt\.\.model: empty part in the dotted path"),
    (BASE + "grid: {" + ".".join(["train"] + ["a"] * 60) + ": [1]}\n",
     rf"grid\.'train\.a\.a.*: more than {MAX_DEPTH} parts"),
    (BASE + "corrupt: none\ngrid: {corrupt.target_dice: [0.9]}\n",
     r"grid\.corrupt\.target_dice: corrupt is 'none', not a mapping of fields"),
    (BASE + "train: {model_options: {when: 2024-01-31}}\n",
     r"train\.model_options\.when: a date is not a supported value \(quote it to make it a string\)"),
    (BASE + "train: {model_options: {raw: !!binary aGVsbG8=}}\n", r"train\.model_options\.raw: binary data"),
    (BASE + "train: {model_options: !!set {a, b}}\n", r"train\.model_options: a set is not a supported"),
    (BASE + "train: {model_options: {1: a}}\n", r"train\.model_options: key 1 is not a string"),
    (BASE + "train: {model_options: {null: a}}\n", r"train\.model_options: key None is not a string"),
    (BASE + "grid: {seed: [0], 3: [1]}\n", r"grid: key 3 is not a string"),
    (BASE + "yes: 1\n", r"key True is not a string"),
    (BASE + 'train: {"a\\nb": 1}\n', r"train\.'a\\nb': unknown field"),
])
def test_bad_fields_are_named(tmp_path, text, match):
    refused(write(tmp_path, text), match)


def test_a_grid_value_of_the_wrong_type_names_the_grid_point(tmp_path):
    p = write(tmp_path, BASE + "grid: {train.epochs: [2, many]}\n")
    msg = refused(p, r"train\.epochs: expected an integer, got 'many' \(grid point train\.epochs='many'\)")
    assert "TypeError" not in msg


def test_a_null_section_means_its_defaults(tmp_path):
    p = write(tmp_path, BASE + "train:\naudit:\nvolumes:\ncorrupt:\n")
    (t,) = load_spec(p).trials()
    assert t.corrupt is None and t.train.epochs == 40 and t.audit.detectors == []


def test_long_values_are_shortened_in_messages(tmp_path):
    p = write(tmp_path, BASE + "train: {model: " + "x" * 5000 + "}\n")
    msg = refused(p, r"train\.model: unknown network 'xxx")
    assert len(msg) < 5000


def test_the_cli_reports_one_line_and_status_2(tmp_path, capsys):
    from tests.conftest import run_cli

    p = write(tmp_path, BASE + "train: {epochs: 2}\ntrain: {epochs: 3}\n")
    assert run_cli(["study", "run", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr()
    text = (err.err + err.out).strip()
    assert re.search(r"duplicate key 'train'", text) and len(text.splitlines()) == 1, text
