"""Config loading: _base_ merge, defaults, and errors that name file, line and key."""
import pytest

from shared.config import ConfigError, load_config, sha256_of, section


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_repo_configs_load():
    for name in ("demo", "smoke", "paper"):
        cfg = load_config(f"configs/{name}.yaml")
        assert cfg["run"] == name
        assert cfg["dataset"]["splits"]["train"] > 0


def test_base_merge_and_defaults(tmp_path):
    write(tmp_path, "a.yaml", "run: a\nseed: 3\ndataset:\n  splits: {train: 10, test: 4}\n")
    p = write(tmp_path, "b.yaml", "_base_: a.yaml\nrun: b\ndataset:\n  splits: {test: 5}\n")
    cfg = load_config(p)
    assert cfg["run"] == "b" and cfg["seed"] == 3
    assert cfg["dataset"]["splits"] == {"train": 10, "test": 5, "calibration": 64, "val": 96}
    assert cfg["dataset"]["source"] == "synthetic"          # schema default


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    p = write(tmp_path, "bad.yaml", "run: x\ndataset:\n  splits:\n    trian: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "bad.yaml:4" in msg and "dataset.splits.trian" in msg and "did you mean 'train'" in msg


def test_unknown_key_in_base_names_the_base_file(tmp_path):
    write(tmp_path, "base.yaml", "run: x\nsed: 1\n")
    p = write(tmp_path, "top.yaml", "_base_: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base.yaml:2: sed: unknown key \(did you mean 'seed'\?\)"):
        load_config(p)


@pytest.mark.parametrize("text, needle", [
    ("seed: -1\n", "seed: -1 is below the minimum 0"),
    ("seed: abc\n", "seed: must be int, got str"),
    ("seed: true\n", "seed: must be int, got bool"),
    ("device: tpu\n", "device: 'tpu' is not one of"),
    ("dataset:\n  size: [1, 2, 3]\n", "dataset.size: needs 2 items, got 3"),
    ("dataset: 5\n", "dataset: must be a mapping"),
    ("run: [\n", "invalid YAML"),
])
def test_type_errors(tmp_path, text, needle):
    p = write(tmp_path, "c.yaml", text)
    with pytest.raises(ConfigError, match=None) as e:
        load_config(p)
    assert needle in str(e.value), str(e.value)
    assert "c.yaml" in str(e.value)


def test_missing_file_and_base_cycle(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path, "x.yaml", "_base_: y.yaml\n")
    write(tmp_path, "y.yaml", "_base_: x.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "x.yaml")


def test_section_hash_changes_only_with_its_section(tmp_path):
    a = load_config(write(tmp_path, "a.yaml", "dataset: {preview: 1}\n"))
    b = load_config(write(tmp_path, "b.yaml", "dataset: {preview: 2}\n"))
    assert sha256_of(section(a, "dataset")) != sha256_of(section(b, "dataset"))
    c = load_config(write(tmp_path, "c.yaml", "device: cuda\ndataset: {preview: 1}\n"))
    assert sha256_of(section(a, "dataset")) == sha256_of(section(c, "dataset"))


def test_list_choices_apply_to_each_item(tmp_path):
    from shared.config import _check_leaf
    spec = {"type": "list", "items": "str", "choices": ["a", "b"]}
    assert _check_leaf(["a", "b"], spec, "k", "f:1") == ["a", "b"]
    with pytest.raises(ConfigError, match=r"k\[1\]: 'c' is not one of"):
        _check_leaf(["a", "c"], spec, "k", "f:1")


def test_resolved_config_round_trips_to_the_same_hashes(tmp_path):
    """The driver hands stages the resolved config as YAML (volumes/<run>/.config/config.yaml); the
    stage loads and validates it again, so a schema default that validation would change (an int
    default of a float key) gives the manifest a hash the host never matches: a stage never cached."""
    import yaml
    from shared.dag import load_dag
    for name in ("demo", "smoke", "paper"):
        cfg = load_config(f"configs/{name}.yaml")
        p = write(tmp_path, f"{name}.yaml", yaml.safe_dump(cfg))
        again = load_config(p)
        for stage, st in load_dag().items():
            assert sha256_of(section(again, stage, st.sections)) == sha256_of(section(cfg, stage, st.sections)), \
                f"configs/{name}.yaml: stage {stage}"
