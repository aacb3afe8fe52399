"""The generated ESP-IDF project's board-dependent files, without building anything."""
import re

import pytest

from stages.esp import firmware

BOARD = {"name": "t", "sram_kb": 512, "sram_reserved_kb": 192, "psram_mb": 8, "psram_mode": "octal", "flash_mb": 8,
         "app_code_kb": 1024, "param_copy": True}


def test_sdkconfig_psram_mode_and_flash_size():
    assert "CONFIG_SPIRAM_MODE_OCT=y" in firmware.sdkconfig(BOARD)
    quad = firmware.sdkconfig({**BOARD, "psram_mode": "quad", "flash_mb": 16})
    assert "CONFIG_SPIRAM_MODE_QUAD=y" in quad and "CONFIG_ESPTOOLPY_FLASHSIZE_16MB=y" in quad
    assert "SPIRAM" not in firmware.sdkconfig({**BOARD, "psram_mb": 0})
    with pytest.raises(ValueError, match=r"esp.board.flash_mb: 3 is not a flash size"):
        firmware.sdkconfig({**BOARD, "flash_mb": 3})


def test_factory_partition_takes_the_rest_of_the_flash():
    text = firmware.partitions(BOARD, 500_000)
    size_k = int(re.search(r"factory,\s+app,\s+factory,\s+0x10000,\s+(\d+)K", text)[1])
    assert size_k * 1024 == 8 * 1024 * 1024 - 0x10000
    with pytest.raises(ValueError, match=r"code \+ models need .*board.flash_mb = 2"):
        firmware.partitions({**BOARD, "flash_mb": 2}, 1_500_000)


def test_cmake_sets_cmake_dir_before_esp_dl_utilities(tmp_path):
    m = tmp_path / "m.espdl"
    m.write_bytes(b"\0" * 64)
    firmware.generate(tmp_path / "fw", {"denoiser": m}, BOARD, 2, True, "train", "int8")
    cmake = (tmp_path / "fw" / "main" / "CMakeLists.txt").read_text()
    assert cmake.index("set(cmake_dir ${espdl_dir}/fbs_loader/cmake)") < cmake.index("include(${cmake_dir}/utilities.cmake)")
    with pytest.raises(ValueError, match="no models to embed"):
        firmware.generate(tmp_path / "fw2", {}, BOARD, 2, True, "train", "int8")
