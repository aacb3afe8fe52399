"""What can be tested without ESP-IDF: commands, size-report parsing, the skip messages, the prefetched deps."""
import logging
from types import SimpleNamespace

import pytest

from stages.esp_build import steps
from stages.esp_build.idf_cmd import commands, parse_size, shell

# captured layout of `idf.py size` (esp-idf-size 1.x, as in IDF 5.3) for an ESP32-S3 app
SIZE_NEW = """\
Total sizes:
                             Memory Type Usage Summary
┏━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Memory Type/Section   ┃ Used [bytes] ┃ Used [%] ┃ Remain [bytes] ┃ Total [bytes] ┃
┡━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ Flash Code            │       412334 │    12.31 │        2937362 │       3349696 │
│    .text              │       412334 │    12.31 │                │               │
│ Flash Data            │       431572 │     5.14 │        7957004 │       8388576 │
│    .rodata            │       431316 │     5.14 │                │               │
│ DIRAM                 │        73227 │    21.43 │         268469 │        341696 │
│    .bss               │        38600 │    11.30 │                │               │
│ IRAM                  │        16383 │    99.99 │              1 │         16384 │
└───────────────────────┴──────────────┴──────────┴────────────────┴───────────────┘
Total image size: 901542 bytes (.bin may be padded larger)
"""

SIZE_OLD = """\
Total sizes:
Used static DRAM:   11072 bytes ( 169664 remain, 6.1% used)
      .data size:    8704 bytes
Used static IRAM:   54174 bytes (  76898 remain, 41.3% used)
Used Flash size :  146147 bytes
Total image size:  188787 bytes (.bin may be padded larger)
"""


def test_parse_size_new_table():
    s = parse_size(SIZE_NEW)
    assert s["total_image_bytes"] == 901542
    assert s["memory"]["Flash Data"] == {"used": 431572, "used_pct": 5.14, "remain": 7957004, "total": 8388576}
    assert s["memory"][".rodata"]["used"] == 431316 and s["memory"][".rodata"]["total"] is None
    assert s["memory"]["IRAM"]["remain"] == 1 and "Memory Type/Section" not in s["memory"]


def test_parse_size_old_lines_and_garbage():
    s = parse_size(SIZE_OLD)
    assert s["total_image_bytes"] == 188787
    assert s["memory"]["static DRAM"] == {"used": 11072, "used_pct": 6.1, "remain": 169664, "total": None}
    assert s["memory"]["Flash size"]["used"] == 146147
    with pytest.raises(ValueError, match="idf.py size"):
        parse_size("ninja: error: loading 'build.ninja'")


def test_parse_size_without_total_line_uses_the_app_binary(tmp_path):
    # newer esp-idf-size: no "Total image size", empty "Used [%]" on some rows
    text = "\n".join(line for line in SIZE_NEW.splitlines() if not line.startswith("Total image size"))
    text = text.replace("│       412334 │    12.31 │        2937362", "│       412334 │          │        2937362")
    app = tmp_path / "jmmc_esp.bin"
    app.write_bytes(b"\0" * 1234)
    s = parse_size(text, app)
    assert s["total_image_bytes"] == 1234
    assert s["memory"]["Flash Code"] == {"used": 412334, "used_pct": None, "remain": 2937362, "total": 3349696}
    assert parse_size(text)["total_image_bytes"] is None


def test_commands_and_shell(tmp_path, monkeypatch):
    cmds = commands(tmp_path / "fw")
    assert cmds == [["idf.py", "-C", str(tmp_path / "fw"), "set-target", "esp32s3"],
                    ["idf.py", "-C", str(tmp_path / "fw"), "build"], ["idf.py", "-C", str(tmp_path / "fw"), "size"]]
    monkeypatch.setattr("shutil.which", lambda name: None)
    wrapped = shell(["idf.py", "-C", "/a b", "build"])
    assert wrapped[:2] == ["bash", "-c"] and '. "$IDF_PATH/export.sh"' in wrapped[2] and "'/a b'" in wrapped[2]


def _ctx(tmp_path, esp_manifest):
    esp = tmp_path / "esp"
    (esp / "firmware").mkdir(parents=True)
    (esp / "firmware" / "CMakeLists.txt").write_text("project(x)\n")
    out = tmp_path / "out"
    out.mkdir()
    return SimpleNamespace(out=out, log=logging.getLogger("t"), input_manifests={"esp": esp_manifest},
                           input=lambda s: esp)


def test_skip_without_idf(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "idf_available", lambda: False)
    r = steps.run(_ctx(tmp_path, {}))
    assert r["skipped"] == ("needs espressif/idf:v5.3.2; docker pull espressif/idf:v5.3.2 (or docker load) "
                            "and rerun `invoke stage esp-build`")
    r = steps.run(_ctx(tmp_path / "b", {"skipped": "needs X"}))
    assert r["skipped"].startswith("needs the esp stage's ESP-IDF project; esp was skipped: needs X")


def test_prefetched_deps_match_the_generated_manifest(tmp_path):
    from stages.esp.firmware import COMPONENT_YML, ESP_DL_VERSION
    deps = steps.Path(steps.__file__).parent / "idf_deps"
    assert (deps / "main" / "idf_component.yml").read_text() == COMPONENT_YML.format(version=ESP_DL_VERSION)
    fake = tmp_path / "deps"
    (fake / "managed_components" / "espressif__esp-dl").mkdir(parents=True)
    (fake / "dependencies.lock").write_text("lock")
    proj = tmp_path / "proj"
    proj.mkdir()
    assert steps.add_prefetched_components(proj, fake)
    assert (proj / "managed_components" / "espressif__esp-dl").is_dir() and (proj / "dependencies.lock").exists()
    assert not steps.add_prefetched_components(proj, None)
