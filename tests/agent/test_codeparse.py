"""Parsing model answers: fences or not, prose, several classes, truncation, edit blocks."""

from __future__ import annotations

import pytest
from archlore.agent.codeparse import (
    CodeParseError,
    EditApplyError,
    apply_edit_blocks,
    extract_code,
    parse_edit_blocks,
)

from tests.agent.conftest import PARENT


def test_unfenced_code_with_prose_before_and_after():
    code = extract_code("Sure, here it is.\n\n" + PARENT + "\nThis network is better because "
                        "it normalises activations.\n")
    assert code.startswith("import torch") and "normalises" not in code
    compile(code, "x", "exec")


def test_non_python_fences_are_ignored_and_last_net_wins():
    text = ("```bash\npip install torch\n```\nFirst try:\n```python\n"
            + PARENT.replace("16", "8") + "```\nBetter:\n```py\n" + PARENT + "```")
    code = extract_code(text)
    assert "Conv2d(in_channels, 16" in code and "pip" not in code


def test_top_level_side_effects_are_dropped_helpers_kept():
    text = ("```python\nimport torch.nn as nn\nWIDTH = 8\n\n\ndef conv(c_in, c_out):\n"
            "    return nn.Conv2d(c_in, c_out, 3, padding=1)\n\n\nclass Unused(nn.Module):\n"
            "    pass\n\n\nclass Net(nn.Module):\n    def __init__(self, num_classes=10, "
            "in_channels=1):\n        super().__init__()\n        self.c = conv(in_channels, "
            "WIDTH)  # keep this comment\n        self.fc = nn.Linear(WIDTH, num_classes)\n\n"
            "    def forward(self, x):\n        return self.fc(self.c(x).mean((2, 3)))\n\n\n"
            "model = Net()\nprint(model)\n```")
    code = extract_code(text)
    assert "def conv" in code and "WIDTH = 8" in code and "# keep this comment" in code
    assert "Unused" not in code and "print(" not in code and "model = Net()" not in code


def test_several_net_classes_keep_the_last_renamed():
    text = ("```python\n" + PARENT.replace("class Net(", "class Net1(") + "\n"
            + PARENT.replace("class Net(", "class BetterNet(").replace("import torch\n", "", 1)
            + "```")
    code = extract_code(text)
    assert "class Net(nn.Module)" in code and "Net1" not in code and "BetterNet" not in code


@pytest.mark.parametrize("text,needle", [
    ("I cannot help with that.", "no Python code"),
    ("```python\n" + PARENT[:230], "truncated"),  # stops mid-expression
    ("```python\n" + PARENT.split("    def forward")[0], "truncated"),  # unclosed, no forward
    ("```python\nimport torch\nclass Model(torch.nn.Module):\n    pass\n```", "no class 'Net'"),
    ("```python\nimport torch\nclass Net(torch.nn.Module):\n    def f(self)\n        pass\n```",
     "syntax error at line 3"),
])
def test_unusable_answers_raise_clear_errors(text, needle):
    with pytest.raises(CodeParseError, match=needle):
        extract_code(text)


def test_edit_blocks_exact_and_indentation_tolerant():
    blocks = parse_edit_blocks(
        "<<<<<<< SEARCH\nself.bn1 = nn.BatchNorm2d(16)\n=======\n"
        "self.bn1 = nn.GroupNorm(4, 16)\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\n        x = F.relu(self.conv2(x))   \n=======\n"
        "        x = F.silu(self.conv2(x))\n>>>>>>> REPLACE")
    out = apply_edit_blocks(PARENT, blocks)
    assert "        self.bn1 = nn.GroupNorm(4, 16)\n" in out  # re-indented like the parent
    assert "        x = F.silu(self.conv2(x))\n" in out
    compile(out, "x", "exec")


@pytest.mark.parametrize("answer,needle", [
    ("<<<<<<< SEARCH\n        x = F.relu(self.conv3(x))\n=======\n        pass\n"
     ">>>>>>> REPLACE", "block 1: SEARCH line 'x = F.relu(self.conv3(x))' is not in the parent; "
                        "closest parent line 17: 'x = F.relu(self.conv2(x))'"),
    ("<<<<<<< SEARCH\n        super().__init__()\n=======\n>>>>>>> REPLACE\n"
     "<<<<<<< SEARCH\n\n=======\nx\n>>>>>>> REPLACE", "block 2: SEARCH part is empty"),
    ("<<<<<<< SEARCH\n        x = torch.flatten(self.pool(x), 1)\n        x = F.relu(self.conv2(x))"
     "\n=======\n\n>>>>>>> REPLACE", "not as one contiguous run"),
    ("<<<<<<< SEARCH\nimport torch.nn as nn\n=======\nimport torch.nn as nn\n>>>>>>> REPLACE\n"
     "<<<<<<< SEARCH\nimport torch.nn as nn\nimport torch.nn.functional as F\n=======\n"
     ">>>>>>> REPLACE", "block 2: its SEARCH lines 2-3 overlap those of block 1"),
])
def test_edit_block_failures_name_block_and_line(answer, needle):
    with pytest.raises(EditApplyError) as info:
        apply_edit_blocks(PARENT, parse_edit_blocks(answer))
    assert needle in str(info.value)


@pytest.mark.parametrize("text", ["```python\n", "Here it is:\n```python\n   \n"])
def test_an_empty_unclosed_fence_is_a_parse_error_not_a_crash(text):
    with pytest.raises(CodeParseError, match="looks truncated"):
        extract_code(text)


def test_a_helper_named_only_by_a_kept_constant_is_kept():
    code = ("```python\nimport torch\nimport torch.nn as nn\n\n\nclass Block(nn.Module):\n"
            "    def __init__(self, c):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(c, c, 3, padding=1)\n\n"
            "    def forward(self, x):\n        return self.conv(x)\n\n\n"
            "BLOCK_TYPES = {'plain': Block}\n\n\nclass Net(nn.Module):\n"
            "    def __init__(self, num_classes=10, in_channels=1):\n"
            "        super().__init__()\n        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)\n"
            "        self.body = BLOCK_TYPES['plain'](8)\n        self.fc = nn.Linear(8, num_classes)\n\n"
            "    def forward(self, x):\n        return self.fc(self.body(self.stem(x)).mean((2, 3)))\n"
            "```")
    out = extract_code(code)
    namespace: dict = {}
    exec(compile(out, "child", "exec"), namespace)  # NameError when Block was dropped
    import torch

    logits = namespace["Net"](num_classes=10, in_channels=1)(torch.zeros(2, 1, 8, 8))
    assert tuple(logits.shape) == (2, 10)


def test_computed_module_values_the_net_reads_are_kept_side_effects_dropped():
    code = ("import math\nimport torch.nn as nn\n\nBASE = 8\nWIDTH = int(BASE * 1.5)\n"
            "STEM = max(WIDTH, round(math.sqrt(16)))\n\n\nclass Net(nn.Module):\n"
            "    def __init__(self, num_classes=10, in_channels=1):\n"
            "        super().__init__()\n"
            "        self.model = nn.Conv2d(in_channels, STEM, 3, padding=1)\n"
            "        self.fc = nn.Linear(STEM, num_classes)\n\n"
            "    def forward(self, x):\n        return self.fc(self.model(x).mean((2, 3)))\n\n\n"
            "model = Net()\nprint(model)\n")
    out = extract_code("```python\n" + code + "```")
    assert "WIDTH = int(BASE * 1.5)" in out and "STEM = max(" in out
    assert "model = Net()" not in out and "print(" not in out
    namespace: dict = {}
    exec(compile(out, "child", "exec"), namespace)
    assert namespace["Net"](num_classes=10, in_channels=1).fc.in_features == 12


def test_edit_blocks_with_crlf_line_endings_apply():
    answer = ("Here is the edit:\r\n<<<<<<< SEARCH\r\n        x = F.relu(self.conv2(x))\r\n"
              "=======\r\n        x = F.gelu(self.conv2(x))\r\n>>>>>>> REPLACE\r\n")
    blocks = parse_edit_blocks(answer)
    assert len(blocks) == 1
    out = apply_edit_blocks(PARENT, blocks)
    assert "        x = F.gelu(self.conv2(x))\n" in out and "\r" not in out
    assert "F.relu(self.conv2" not in out
    compile(out, "x", "exec")


def test_ambiguous_and_truncated_blocks():
    dup = PARENT + "\n# F.relu\n"
    with pytest.raises(EditApplyError, match="matches 2 places"):
        apply_edit_blocks(dup + "x = 1\nx = 1\n", parse_edit_blocks(
            "<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE"))
    with pytest.raises(EditApplyError, match="truncated"):
        parse_edit_blocks("<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n"
                          "<<<<<<< SEARCH\ny = 1\n=====")
