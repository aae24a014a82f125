"""The Python examples of the README run (so that they never rot)."""

import re

from conftest import REPO


def test_readme_python_blocks_run():
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert namespace["dose"].array.shape == (40, 40, 40)
        assert namespace["dij"].shape == (60 * 100 * 60, 1)
