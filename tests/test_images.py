"""docker/images.yaml, compose.yaml and the fingerprints agree."""
import shutil
from pathlib import Path

import yaml

from shared.config import REPO
from host import images as img
from shared.dag import load_dag


def compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_every_image_has_a_compose_service_with_its_dockerfile_and_parent():
    services = compose()["services"]
    for name, spec in img.load_images().items():
        assert name in services or any(s.image == name for s in load_dag().values()), name
        svc = services[name] if name in services else services[next(s.name for s in load_dag().values()
                                                                      if s.image == name)]
        assert svc["build"]["dockerfile"] == spec["dockerfile"]
        assert svc["image"] == img.tag(name)
        if "parent" in spec:
            assert svc["build"]["args"]["PARENT"] == img.tag(spec["parent"])
            assert f"ARG PARENT={img.tag(spec['parent'])}" in (REPO / spec["dockerfile"]).read_text()


def test_every_stage_service_mounts_the_volume_without_network():
    services = compose()["services"]
    for s in load_dag().values():
        svc = services[s.name]
        assert "./volumes:/work" in svc["volumes"]
        assert svc["network_mode"] == "none"


def test_fingerprint_follows_code_and_parents(tmp_path, monkeypatch):
    images = img.load_images()
    a = img.fingerprint(images, "dataset")
    assert a == img.fingerprint(images, "dataset")
    assert a != img.fingerprint(images, "dataset", {"light": "other:os", "heavy": "x"})
    assert img.chain(images, "dataset") == ["py-light", "dataset"]
    # a change in a copied file changes the fingerprint
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "docker", repo / "docker")
    shutil.copytree(REPO / "shared", repo / "shared")
    shutil.copytree(REPO / "stages", repo / "stages")
    monkeypatch.setattr(img, "REPO", repo)
    b = img.fingerprint(images, "dataset")
    (repo / "stages" / "dataset" / "schema.yaml").write_text("# changed\n")
    assert img.fingerprint(images, "dataset") != b
    assert img.fingerprint(images, "py-light") == img.fingerprint(images, "py-light")


def test_docs_and_tests_rebuild_the_image_but_leave_its_runs_current(tmp_path, monkeypatch):
    """A stage's README or tests are copied (the label changes: rebuild) but compute nothing (the
    environment id its runs are cached under stays); its code changes both."""
    images = img.load_images()
    repo = tmp_path / "repo"
    for d in ("docker", "shared", "stages", "configs"):
        shutil.copytree(REPO / d, repo / d)
    monkeypatch.setattr(img, "REPO", repo)

    def ids():
        return img.fingerprint(images, "quantize"), img.fingerprint(images, "quantize", computes_only=True)
    label, env = ids()
    assert label != env
    (repo / "stages" / "quantize" / "README.md").write_text("# edited\n")
    (repo / "stages" / "quantize" / "tests" / "test_new.py").write_text("def test_x():\n    pass\n")
    (repo / "shared" / "tests" / "note.md").write_text("x\n")
    label2, env2 = ids()
    assert label2 != label and env2 == env
    (repo / "stages" / "quantize" / "measure.py").write_text("# changed\n")
    assert ids()[1] != env
    assert img.computes(Path("stages/quantize/steps.py")) and not img.computes(Path("stages/quantize/tests/conftest.py"))


def test_pip_install_script_keeps_the_ca_out_of_layers():
    text = (REPO / "docker" / "pip-install.sh").read_text()
    assert "/run/secrets/pip_ca" in text
    for spec in img.load_images().values():
        df = (REPO / spec["dockerfile"]).read_text()
        assert "pip_ca" not in df.replace("id=pip_ca", "")  # only as a secret mount
        assert "COPY" not in df or "pip_ca" not in df.split("COPY", 1)[1].split("\n", 1)[0]


def test_host_code_stays_out_of_images():
    """The orchestration (host/) is in no image: no image's code list names it, .dockerignore drops it."""
    assert "host" in (REPO / ".dockerignore").read_text().split()
    for name, spec in img.load_images().items():
        assert not any(c == "host" or c.startswith("host/") for c in spec.get("code", [])), name
    assert not any(REPO.glob("shared/pipeline/*.py"))      # the old home is gone



def test_login_gated_wheels_feed_the_fingerprint(tmp_path, monkeypatch):
    images = img.load_images()
    assert images["hailo"]["wheels"] and "WHEELS" in compose()["services"]["hailo"]["build"]["args"]
    house = tmp_path / "wheelhouse"
    house.mkdir()
    assert img.wheels_digest(images["hailo"]["wheels"], house) == "none"
    (house / "unrelated-1.0-py3-none-any.whl").write_bytes(b"x")
    assert img.wheels_digest(images["hailo"]["wheels"], house) == "none"
    (house / "hailort-4.23.0-cp310-cp310-linux_x86_64.whl").write_bytes(b"abc")
    one = img.wheels_digest(images["hailo"]["wheels"], house)
    (house / "hailo_dataflow_compiler-3.33.0-py3-none-linux_x86_64.whl").write_bytes(b"abcd")
    two = img.wheels_digest(images["hailo"]["wheels"], house)
    assert "none" != one != two
    # the hailo image's fingerprint follows the wheelhouse; images without wheels do not
    plain = img.fingerprint(images, "hailo"), img.fingerprint(images, "report")
    monkeypatch.setattr(img, "wheels_digest", lambda pats, wheelhouse=None: two)
    assert img.fingerprint(images, "hailo") != plain[0]
    assert img.fingerprint(images, "report") == plain[1]


def test_kept_wheels_land_in_the_wheelhouse_once(tmp_path, monkeypatch):
    """keep_wheels copies the wheels a build left under a folder of the image into the wheelhouse,
    keeping the version sub-folder build-mmcv.sh looks in, and does not overwrite a kept one."""
    import subprocess
    image_files = tmp_path / "image" / "opt" / "wheels" / "jmmc-mmcv" / "1.7.2-torch2.14.1"
    image_files.mkdir(parents=True)
    (image_files / "mmcv_full-1.7.2-cp311-cp311-linux_x86_64.whl").write_bytes(b"wheel")
    calls = []

    def fake_docker(*args, check=True, **_):
        calls.append(args)
        if args[0] == "cp":
            shutil.copytree(tmp_path / "image" / args[1].split(":", 1)[1].rstrip("/.").lstrip("/"), args[2],
                            dirs_exist_ok=True)
        return subprocess.CompletedProcess(args, 0, stdout="cid\n", stderr="")

    monkeypatch.setattr(img, "docker", fake_docker)
    house = tmp_path / "wheelhouse"
    added = img.keep_wheels("jmmc/mm:local", "/opt/wheels", house)
    kept = house / "jmmc-mmcv" / "1.7.2-torch2.14.1" / "mmcv_full-1.7.2-cp311-cp311-linux_x86_64.whl"
    assert added == [kept] and kept.read_bytes() == b"wheel"
    assert img.keep_wheels("jmmc/mm:local", "/opt/wheels", house) == []
    assert calls[-1] == ("rm", "cid")
    assert "jmmc-mmcv/$V-torch$TORCH" in (REPO / "docker/mm/build-mmcv.sh").read_text()
    assert img.load_images()["mm"]["keep_wheels"] == "/opt/wheels"


def test_package_server_serves_quoted_paths(tmp_path, monkeypatch):
    """pip asks for a wheel under a folder like 1.7.2-torch2.14.1+cu130 as ...%2Bcu130/...: it must be found."""
    import urllib.request
    monkeypatch.setattr(img, "host_pip_sources", lambda: ([], [], None))
    monkeypatch.setattr(img, "PKG_PORT", 38097)
    (tmp_path / "jmmc-mmcv" / "1.7.2-torch2.14.1+cu130").mkdir(parents=True)
    (tmp_path / "jmmc-mmcv" / "1.7.2-torch2.14.1+cu130" / "w.whl").write_bytes(b"ok")
    with img.package_server(tmp_path) as args:
        base = args["JMMC_PIP_FIND_LINKS"].split()[-1]
        assert urllib.request.urlopen(base + "jmmc-mmcv/1.7.2-torch2.14.1%2Bcu130/w.whl").read() == b"ok"
