"""The DFC/HailoRT wheel-pair check the image build runs (stages/hailo/wheels.py)."""
from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading

import pytest

from stages.hailo import wheels

DFC = "hailo_dataflow_compiler-3.33.0-py3-none-linux_x86_64.whl"
RT = "hailort-4.23.0-cp310-cp310-linux_x86_64.whl"


def test_parse_names():
    d, r = wheels.parse(DFC), wheels.parse(RT)
    assert (d.kind, d.version, d.minor, d.python) == ("dfc", "3.33.0", "3.33", "py3")
    assert (r.kind, r.version, r.python) == ("hailort", "4.23.0", "cp310")
    assert wheels.parse("numpy-1.26.4-cp310-cp310-manylinux_2_17_x86_64.whl") is None


def test_pairs():
    found = {"dfc": wheels.parse(DFC), "hailort": wheels.parse(RT)}
    assert "3.33.0" in wheels.check(found, python=(3, 10)) and "4.23.0" in wheels.check(found, python=(3, 10))
    bad = {"dfc": wheels.parse(DFC), "hailort": wheels.parse("hailort-4.22.0-cp310-cp310-linux_x86_64.whl")}
    with pytest.raises(wheels.WheelError, match=r"mismatched.*DFC 3.33 needs HailoRT 4.23"):
        wheels.check(bad, python=(3, 10))
    with pytest.raises(wheels.WheelError, match="Python 3.10 but this image has Python 3.11"):
        wheels.check(found, python=(3, 11))
    assert "SDK absent" in wheels.check({}, python=(3, 10))
    assert "missing: HailoRT" in wheels.check({"dfc": found["dfc"]}, python=(3, 11))


def test_pairs_file_holds_the_default():
    pairs = wheels.load_pairs()
    assert pairs["default"] == ("3.33", "4.23") and pairs["default"] in pairs["pairs"]


def test_find_in_folder_and_over_http(tmp_path):
    for f in (DFC, RT, "hailort-4.20.0-cp310-cp310-linux_x86_64.whl", "other-1.0-py3-none-any.whl"):
        (tmp_path / f).write_bytes(b"x")
    found = wheels.find([str(tmp_path)])
    assert found["dfc"].file == DFC and found["hailort"].file == RT      # newest of each
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        found = wheels.find([url, str(tmp_path / "nothing-here")])
        assert found["hailort"].url == url + RT
        got = wheels.fetch(found, tmp_path / "out")
        assert sorted(p.name for p in got) == sorted([DFC, RT])
    finally:
        server.shutdown()
        server.server_close()


def test_build_script_exit_codes(tmp_path):
    """What the Dockerfile runs: 0 and 'absent' without wheels, 1 with a mismatched pair."""
    run = lambda links: subprocess.run([sys.executable, wheels.__file__, "fetch", str(tmp_path / "dest")],  # noqa: E731
                                       capture_output=True, text=True, env={"PIP_FIND_LINKS": links})
    r = run(str(tmp_path))
    assert r.returncode == 0 and "SDK absent" in r.stdout
    (tmp_path / "hailo_dataflow_compiler-3.33.0-py3-none-linux_x86_64.whl").write_bytes(b"x")
    (tmp_path / "hailort-4.21.0-py3-none-linux_x86_64.whl").write_bytes(b"x")
    r = run(str(tmp_path))
    assert r.returncode == 1 and "mismatched Hailo wheels" in r.stderr
