"""The stage end to end on tiny models: .espdl per model and variant, accuracy table, budget, ESP-IDF project."""
import csv
import json
import re
from pathlib import Path

import yaml

from shared.artifacts import check_manifest, check_record
from stages.esp.firmware import ESP_DL_VERSION
from stages.esp.steps import run


def test_run_end_to_end(make_ctx, esp_cfg):
    ctx = make_ctx(esp_cfg)
    m = run(ctx)["metrics"]
    out = ctx.out
    for model in ("enhancer", "denoiser", "yunet"):
        for v in ("int8", "mixed"):
            assert (out / "train" / model / f"{v}.espdl").stat().st_size > 1000
        assert (out / "train" / model / "int8_error_report.csv").exists()
        picked = json.loads((out / "train" / model / "mixed_int16_layers.json").read_text())
        assert picked["selected"] == [] and picked["threshold"] == 10.0
        assert (out / "train" / model / "mixed.espdl").read_bytes() == (out / "train" / model / "int8.espdl").read_bytes()
    acc = list(csv.DictReader(open(out / "accuracy.csv")))
    keys = {(r["model"], r["variant"], r["metric"]) for r in acc}
    for v in ("int8", "mixed"):
        assert {("enhancer", v, "psnr"), ("denoiser", v, "ssim"), ("yunet", v, "ap"), ("chain", v, "ap")} <= keys
    psnr = [r for r in acc if r["model"] == "enhancer" and r["metric"] == "psnr"]
    assert all(abs(float(r["value"]) - float(r["fp32"])) < 10 and float(r["fp32"]) > 0 for r in psnr)
    assert "| simulated | FP32 (ORT) |" in (out / "accuracy.md").read_text()
    mem = json.loads((out / "memory.json").read_text())["rows"]
    chain = [r for r in mem if r["model"] == "chain" and r["variant"] == "int8"][0]
    singles = [r for r in mem if r["model"] != "chain" and r["variant"] == "int8"]
    assert chain["weights_bytes"] == sum(r["weights_bytes"] for r in singles) > 0
    assert all(r["pass"] and r["activations_in"] == "SRAM" for r in mem)  # 32x32 fits
    assert m["memory"]["train/chain/int8"]["pass"] is True
    # every simulated artifact in the report's file convention, with its accuracy and device bytes
    files = {f["file"]: f for f in m["files"]}
    assert {"train/yunet/int8.espdl", "train/enhancer/mixed.espdl", "train/chain/int8"} <= set(files)
    yunet = files["train/yunet/int8.espdl"]
    assert yunet["role"] == "detector" and 0 <= yunet["eval"]["ap"] <= 1
    assert yunet["weight_bytes"] == [r for r in singles if r["model"] == "yunet"][0]["weights_bytes"]
    assert files["train/chain/int8"]["role"] == "chain" and files["train/chain/int8"]["weight_bytes"] == chain["weights_bytes"]
    assert files["train/chain/int8"]["models"] == [f"train/{x}/int8.espdl" for x in ("enhancer", "denoiser", "yunet")]
    # ... and as typed artifact records (shared/artifacts.py), all the report reads: every model file
    # written, each measured .espdl with its role, an int precision, its simulated accuracy and bytes
    recs = {r["file"]: r for r in ctx.artifacts}
    check_manifest({"stage": "esp", "artifacts": ctx.artifacts, "chains": ctx.chains}, out)
    for r in ctx.artifacts:
        check_record(r, out)
    assert set(recs) == {f"train/{x}/{v}.espdl" for x in ("enhancer", "denoiser", "yunet") for v in ("int8", "mixed")} | {
        "train/chain/int8", "train/chain/mixed"} | {f"firmware/main/models/{x}.espdl" for x in ("enhancer", "denoiser", "yunet")}
    roles = {"enhancer": "enhancer", "denoiser": "denoiser", "yunet": "detector"}
    for f in m["files"]:   # every model the simulator measured
        r = recs[f["file"]]
        assert r["precision"] == {"int8": "int8", "mixed": "int8+int16"}[f["file"].split("/")[-1].removesuffix(".espdl")]
        assert r["precision"].startswith("int") and r["metrics"] == f["eval"]
        assert r["cost"] == {"weight_bytes": f["weight_bytes"], "bytes": f["bytes"]}
        if f["role"] == "chain":   # the folder of the chain's models, in the chain discover's group was
            assert r["role"] == "chain" and r["format"] == "dir" and r["chain"] == "train/chain"
            assert json.loads((out / f["file"] / "chain.json").read_text())["models"] == f["models"]
        else:
            assert r["role"] == roles[f["file"].split("/")[1]] == f["role"] and r["chain"] == str(Path(f["file"]).parent)
            assert r["format"] == "espdl"
    assert recs["train/chain/int8"]["metrics"]["ap"] == files["train/chain/int8"]["eval"]["ap"]
    fw_recs = [r for f, r in recs.items() if f.startswith("firmware/")]
    assert {r["role"] for r in fw_recs} == set(roles.values()) and all(r["metrics"] is None for r in fw_recs)
    assert all(r["precision"] == "int8+int16" and "copy of train/" in r["label"] for r in fw_recs)
    # the generated project agrees with the models it embeds
    fw = out / "firmware"
    for rel in ("CMakeLists.txt", "main/CMakeLists.txt", "main/app_main.cpp", "main/idf_component.yml",
                "partitions.csv", "sdkconfig.defaults"):
        assert (fw / rel).exists(), rel
    app = (fw / "main" / "app_main.cpp").read_text()
    cmake = (fw / "main" / "CMakeLists.txt").read_text()
    for model in ("enhancer", "denoiser", "yunet"):
        assert (fw / "main" / "models" / f"{model}.espdl").read_bytes() == (out / "train" / model / "mixed.espdl").read_bytes()
        assert f"models/{model}.espdl BINARY" in cmake
        assert f'asm("_binary_{model}_espdl_start")' in app and f'{{"{model}", {model}_espdl}}' in app
    assert "kNumModels = 3" in app and "model->test()" in app and "kChainResident = true" in app
    comp = yaml.safe_load((fw / "main" / "idf_component.yml").read_text())
    assert comp["dependencies"]["espressif/esp-dl"] == ESP_DL_VERSION
    sdk = (fw / "sdkconfig.defaults").read_text()
    assert 'CONFIG_IDF_TARGET="esp32s3"' in sdk and "CONFIG_SPIRAM=y" in sdk and "FLASHSIZE_8MB=y" in sdk
    size_k = int(re.search(r"factory,\s+app,\s+factory,\s+0x10000,\s+(\d+)K", (fw / "partitions.csv").read_text())[1])
    total = sum((fw / "main" / "models" / f"{x}.espdl").stat().st_size for x in ("enhancer", "denoiser", "yunet"))
    assert size_k * 1024 >= 1024 * 1024 + total and size_k % 64 == 0
    assert json.loads((fw / "jmmc_project.json").read_text())["models"] == ["enhancer", "denoiser", "yunet"]
