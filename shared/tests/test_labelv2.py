"""labelv2 reader: box-only lines, partial landmarks and empty boxes are named by file:line."""
import pytest

from shared.labelv2 import BadSample, read_labelv2


def test_box_only_line_has_no_landmarks(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("# images/a_0.png 8 8\n1 2 5 6\n")
    (rec,) = read_labelv2(p)
    assert rec["faces"] == [{"box": [1.0, 2.0, 5.0, 6.0], "landmarks": None}]
    assert rec["where"].endswith("labels.txt:1")


@pytest.mark.parametrize("line, message", [
    ("1 2 1 6", r"labels.txt:2: box .* has no area"),
    ("1 2 5 6 " + "1 1 1 " * 4 + "-1 -1 -1", r"labels.txt:2: some landmarks are -1"),
    ("1 2 5 nan", r"labels.txt:2: non-finite"),
])
def test_bad_face_lines(tmp_path, line, message):
    p = tmp_path / "labels.txt"
    p.write_text(f"# images/a_0.png 8 8\n{line}\n")
    with pytest.raises(BadSample, match=message):
        read_labelv2(p)


def test_bad_header(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("# images/a_0.png 8\n")
    with pytest.raises(BadSample, match=r"labels.txt:1: expected '# <image> <width> <height>'"):
        read_labelv2(p)
