"""Render an ArchSpec to standalone, readable PyTorch source obeying the candidate contract.

The code imports only torch / torch.nn / torch.nn.functional / math, defines every helper it
uses, uses no dunder attributes except ``super().__init__`` and no getattr/eval, and works for
any ``in_channels`` and inputs down to 8x8 (pools use ceil_mode; shortcuts use 1x1 convs).
Its first line is ``# archlore-spec: <json>`` so the spec can be recovered from the code.
"""

from __future__ import annotations

import re

from archlore.search.spaces.open_spec import SPEC_HEADER, ArchSpec, Stage

_NORM = {
    "bn": "nn.BatchNorm2d(channels)",
    "gn": "nn.GroupNorm(math.gcd(8, channels), channels)",
    "ln": "LayerNorm2d(channels)",
    "none": "nn.Identity()",
}
_ACT = {
    "relu": "nn.ReLU(inplace=True)", "relu6": "nn.ReLU6(inplace=True)",
    "leaky_relu": "nn.LeakyReLU(0.1, inplace=True)", "elu": "nn.ELU(inplace=True)",
    "gelu": "nn.GELU()", "silu": "nn.SiLU(inplace=True)", "hardswish": "nn.Hardswish()",
    "mish": "nn.Mish()",
}

_SNIPPETS: dict[str, str] = {
    "LayerNorm2d": '''
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an (N, C, H, W) map (ConvNeXt style)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)
''',
    "ConvNormAct": '''
class ConvNormAct(nn.Sequential):
    """conv(kernel, stride, groups) -> norm -> activation (optional)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: bool = True, padding: int | None = None) -> None:
        pad = kernel // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, pad, groups=math.gcd(groups, math.gcd(cin, cout)),
                      bias=False),
            make_norm(cout),
            make_act() if act else nn.Identity(),
        )
''',
    "DropPath": '''
class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep)
        return x * mask / keep
''',
    "ChannelShuffle": '''
class ChannelShuffle(nn.Module):
    """Interleaves channel groups so grouped convs exchange information (ShuffleNet)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = math.gcd(self.groups, c)
        return x.reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)
''',
    "SqueezeExcite": '''
class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> bottleneck MLP -> sigmoid gate (SE-Net)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        hidden = max(4, int(channels * ratio))
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
''',
    "EfficientChannelAttention": '''
class EfficientChannelAttention(nn.Module):
    """ECA: a 1-D conv across pooled channels, kernel size adapted to the width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        t = int(abs((math.log2(channels) + 1) / 2))
        k = t if t % 2 else t + 1
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1).flatten(1).unsqueeze(1)  # (N, 1, C)
        gate = torch.sigmoid(self.conv(s)).transpose(1, 2).unsqueeze(-1)  # (N, C, 1, 1)
        return x * gate
''',
    "CBAM": '''
class CBAM(nn.Module):
    """Channel attention (avg + max pooled MLP) then spatial attention (7x7 conv)."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        hidden = max(4, int(channels * ratio))
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(gate)
        maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))
''',
    "SpatialSelfAttention": '''
class SpatialSelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, pre-norm, with its own residual.

    Written with explicit matmuls so FLOP counters see the attention cost on every device.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.heads = math.gcd(channels, 4)
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (N, H*W, C)
        q, k, v = self.qkv(tokens).reshape(n, h * w, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4)  # each (N, heads, H*W, C / heads)
        attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(n, h * w, c)
        return x + self.proj(out).transpose(1, 2).reshape(n, c, h, w)
''',
    "BlurPool": '''
class BlurPool(nn.Module):
    """Anti-aliased downsampling: a fixed [1, 2, 1] binomial blur, then stride 2 (Zhang 2019)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).contiguous())
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel, stride=2, padding=1, groups=self.channels)
''',
    "Residual": '''
class Residual(nn.Module):
    """y = post_act(shortcut(x) + drop_path(gamma * body(x))); no shortcut when skip is off."""

    def __init__(self, body: nn.Module, cin: int, cout: int, stride: int, skip: bool,
                 post_act: bool, drop_path: float = 0.0, layer_scale: float = 0.0,
                 zero_init: bool = False) -> None:
        super().__init__()
        self.body = body
        self.skip = skip
        self.shortcut = nn.Identity()
        if skip and (stride != 1 or cin != cout):
            self.shortcut = ConvNormAct(cin, cout, 1, stride, act=False)
        self.gamma = nn.Parameter(torch.full((cout, 1, 1), layer_scale)) if layer_scale else None
        self.drop_path = DropPath(drop_path)
        self.post_act = make_act() if post_act else nn.Identity()
        if zero_init and skip:
            norms = [m for m in body.modules() if isinstance(m, RESIDUAL_NORMS)]
            if norms:
                nn.init.zeros_(norms[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.gamma is not None:
            out = out * self.gamma
        if self.skip:
            out = self.shortcut(x) + self.drop_path(out)
        return self.post_act(out)
''',
    "Inception": '''
class Inception(nn.Module):
    """Parallel 1x1 / kxk / double-kxk / pool branches, concatenated to cout channels."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, hidden: int) -> None:
        super().__init__()
        quarter = max(1, cout // 4)
        self.b1 = ConvNormAct(cin, quarter, 1, stride)
        self.b2 = nn.Sequential(ConvNormAct(cin, hidden, 1), ConvNormAct(hidden, quarter, kernel, stride))
        self.b3 = nn.Sequential(ConvNormAct(cin, hidden, 1), ConvNormAct(hidden, quarter, kernel),
                                ConvNormAct(quarter, quarter, kernel, stride))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride, 1), ConvNormAct(cin, cout - 3 * quarter, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)
''',
    "DenseStage": '''
class DenseStage(nn.Module):
    """DenseNet block: each layer sees the concatenation of all earlier maps; 1x1 transition out."""

    def __init__(self, cin: int, cout: int, depth: int, growth: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.entry = ConvNormAct(cin, cout, 1, stride) if stride != 1 else nn.Identity()
        width = cout if stride != 1 else cin
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.Sequential(ConvNormAct(width, 4 * growth, 1),
                                             ConvNormAct(4 * growth, growth, kernel)))
            width += growth
        self.transition = ConvNormAct(width, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.entry(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.transition(torch.cat(features, dim=1))
''',
}

# which snippets a snippet needs, so only used helpers are emitted (in dependency order)
_NEEDS = {
    "Residual": ["ConvNormAct", "DropPath"], "Inception": ["ConvNormAct"],
    "DenseStage": ["ConvNormAct"],
}
_ORDER = ["LayerNorm2d", "ConvNormAct", "DropPath", "ChannelShuffle", "SqueezeExcite",
          "EfficientChannelAttention", "CBAM", "SpatialSelfAttention", "BlurPool", "Residual",
          "Inception", "DenseStage"]
_ATTN = {"se": "SqueezeExcite({c}, {r})", "eca": "EfficientChannelAttention({c})",
         "cbam": "CBAM({c}, {r})", "mhsa": "SpatialSelfAttention({c})"}
_ATTN_SNIPPET = {"se": "SqueezeExcite", "eca": "EfficientChannelAttention", "cbam": "CBAM",
                 "mhsa": "SpatialSelfAttention"}


def channels(c: int, width: float) -> int:
    """Rendered channel count: c * width rounded to a multiple of 4, at least 4."""
    return max(4, int(round(c * width / 4.0)) * 4)


def odd_kernel(k: int) -> int:
    """Rendered stage kernel: even sizes go up by one, since 'same' padding (k // 2) keeps the
    map size only for odd kernels and residual adds / dense concats need equal sizes."""
    return k if k % 2 else k + 1


def _body(stage: Stage, cin: int, cout: int, stride: int, used: set[str]) -> tuple[list[str], bool]:
    """Source lines of one block's residual branch, and whether an activation follows the add."""
    k, g = odd_kernel(stage.kernel), stage.groups
    hidden = max(4, int(round(cout * stage.expand)))
    shuffle = [f"ChannelShuffle({g})"] if stage.shuffle and g > 1 else []
    if shuffle:
        used.add("ChannelShuffle")
    if stage.block == "plain":
        return [f"ConvNormAct({cin}, {cout}, {k}, {stride}, groups={g}, act=False)"], True
    if stage.block == "basic":
        return [f"ConvNormAct({cin}, {cout}, {k}, {stride}, groups={g})", *shuffle,
                f"ConvNormAct({cout}, {cout}, {k}, groups={g}, act=False)"], True
    if stage.block == "bottleneck":
        return [f"ConvNormAct({cin}, {hidden}, 1)",
                f"ConvNormAct({hidden}, {hidden}, {k}, {stride}, groups={g})", *shuffle,
                f"ConvNormAct({hidden}, {cout}, 1, act=False)"], True
    if stage.block == "mbconv":
        hidden = max(4, int(round(cin * stage.expand)))
        expand = [f"ConvNormAct({cin}, {hidden}, 1)"] if hidden != cin else []
        return [*expand, f"ConvNormAct({hidden}, {hidden}, {k}, {stride}, groups={hidden})",
                f"ConvNormAct({hidden}, {cout}, 1, act=False)"], False
    if stage.block == "fused":  # EfficientNetV2's Fused-MBConv: full kxk expansion, 1x1 project
        hidden = max(4, int(round(cin * stage.expand)))
        return [f"ConvNormAct({cin}, {hidden}, {k}, {stride}, groups={g})",
                f"ConvNormAct({hidden}, {cout}, 1, act=False)"], False
    if stage.block == "convnext":
        return [f"nn.Conv2d({cin}, {cin}, {k}, {stride}, {k // 2}, groups={cin})",
                f"make_norm({cin})", f"nn.Conv2d({cin}, {hidden}, 1)", "make_act()",
                f"nn.Conv2d({hidden}, {cout}, 1)"], False
    if stage.block == "dwsep":
        return [f"ConvNormAct({cin}, {cin}, {k}, {stride}, groups={cin})",
                f"ConvNormAct({cin}, {cout}, 1, act=False)"], True
    if stage.block == "inception":
        used.add("Inception")
        return [f"Inception({cin}, {cout}, {k}, {stride}, {max(4, hidden // 2)})",
                f"make_norm({cout})"], True
    raise ValueError(f"unknown block {stage.block!r}")


def _stage_lines(spec: ArchSpec, idx: int, stage: Stage, cin: int, block0: int, nblocks: int,
                 used: set[str]) -> tuple[list[str], int]:
    """Lines of ``nn.Sequential(...)`` items for one stage, and its output channels."""
    cout = channels(stage.channels, spec.width)
    items: list[str] = []
    stride = stage.stride
    if stride == 2 and spec.downsample != "stride":
        if spec.downsample == "maxpool":
            items.append("nn.MaxPool2d(2, ceil_mode=True)")
        elif spec.downsample == "avgpool":
            items.append("nn.AvgPool2d(2, ceil_mode=True)")
        else:
            items.append(f"BlurPool({cin})")
            used.add("BlurPool")
        stride = 1
    if stage.block == "dense":
        growth = max(4, int(round(cout * stage.expand)))
        items.append(f"DenseStage({cin}, {cout}, {stage.depth}, {growth}, {odd_kernel(stage.kernel)}, {stride})")
        used.add("DenseStage")
        if stage.attention != "none":
            items.append(_ATTN[stage.attention].format(c=cout, r=stage.attn_ratio))
            used.add(_ATTN_SNIPPET[stage.attention])
        return items, cout
    for j in range(stage.depth):
        b_in, b_stride = (cin, stride) if j == 0 else (cout, 1)
        body, post_act = _body(stage, b_in, cout, b_stride, used)
        if stage.attention != "none":
            body.append(_ATTN[stage.attention].format(c=cout, r=stage.attn_ratio))
            used.add(_ATTN_SNIPPET[stage.attention])
        dp = spec.drop_path * (block0 + j) / max(1, nblocks - 1)
        extras = ""
        if dp > 0:
            extras += f", drop_path={dp:.3f}"
        if spec.init.layer_scale > 0:
            extras += f", layer_scale={spec.init.layer_scale:g}"
        if spec.init.zero_init_residual:
            extras += ", zero_init=True"
        inner = ",\n                    ".join(body)
        items.append(
            f"Residual(nn.Sequential(\n                    {inner}),\n"
            f"                {b_in}, {cout}, {b_stride}, skip={stage.skip}, post_act={post_act}{extras})")
        used.add("Residual")
    return items, cout


def render(spec: ArchSpec) -> str:
    """Standalone source of ``class Net(nn.Module)`` for ``spec``."""
    used: set[str] = {"ConvNormAct"}
    if spec.norm == "ln":
        used.add("LayerNorm2d")
    stem_c = channels(spec.stem.channels, spec.width)
    patchify = spec.stem.kernel == spec.stem.stride and spec.stem.depth == 1
    stem = [f"ConvNormAct(in_channels, {stem_c}, {spec.stem.kernel}, {spec.stem.stride}"
            + (", padding=0)" if patchify else ")")]
    for _ in range(spec.stem.depth - 1):
        stem.append(f"ConvNormAct({stem_c}, {stem_c}, 3)")
    lines: list[str] = []
    cin, block0, nblocks = stem_c, 0, spec.total_blocks()
    for i, stage in enumerate(spec.stages):
        items, cin = _stage_lines(spec, i, stage, cin, block0, nblocks, used)
        block0 += stage.depth
        desc = (f"stage {i + 1}: {stage.depth} x {stage.block}, {cin} ch, stride {stage.stride}, "
                f"kernel {stage.kernel}, attention {stage.attention}")
        joined = ",\n            ".join(items)
        lines.append(f"        # {desc}\n        self.stage{i + 1} = nn.Sequential(\n            {joined},\n        )")
    for name in list(used):
        used.update(_NEEDS.get(name, []))
    helpers = "".join("\n" + _SNIPPETS[n] for n in _ORDER if n in used)

    head = spec.head
    head_in = cin
    head_lines = []
    if head.channels:
        hc = channels(head.channels, spec.width)
        head_lines.append(f"        self.head_conv = ConvNormAct({cin}, {hc}, 1)")
        head_in = hc
    else:
        head_lines.append("        self.head_conv = nn.Identity()")
    fc = []
    if head.hidden:
        fc += [f"nn.Dropout({head.dropout:g})", f"nn.Linear({head_in}, {head.hidden})", "make_act()"]
        head_in = head.hidden
    fc += [f"nn.Dropout({head.dropout:g})", f"nn.Linear({head_in}, num_classes)"]
    head_lines.append("        self.classifier = nn.Sequential(" + ", ".join(fc) + ")")
    pool = {"avg": "F.adaptive_avg_pool2d(x, 1)", "max": "F.adaptive_max_pool2d(x, 1)",
            "avgmax": "0.5 * (F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1))"}[head.pool]
    resize = ""
    if spec.resolution != 1.0:
        resize = (f"        x = F.interpolate(x, scale_factor={spec.resolution:g}, mode=\"bilinear\", "
                  "align_corners=False)\n")
    stage_calls = "".join(f"        x = self.stage{i + 1}(x)\n" for i in range(len(spec.stages)))
    init_call = "        self.init_weights()\n" if spec.init.scheme != "default" else ""
    init_method = _init_method(spec.init.scheme)
    summary = ", ".join(f"{s.depth}x{s.block}-{channels(s.channels, spec.width)}" for s in spec.stages)
    stem_joined = ",\n            ".join(stem)
    # the name is free text: quotes, backslashes or newlines in it must not end the docstring
    # the norm types make_norm builds, which zero_init_residual zeroes (not attention's own norm)
    norms_line = ("" if "Residual" not in used else "\n\n# the norms zero_init_residual may zero\nRESIDUAL_NORMS = "
                  + ("(LayerNorm2d,)" if spec.norm == "ln" else "(nn.BatchNorm2d, nn.GroupNorm)")
                  + "\n")
    title = re.sub(r"[^A-Za-z0-9_ .:+@-]", "_", spec.name)
    return f'''{SPEC_HEADER}{spec.to_json()}
"""{title}: generated by archlore's open space ({summary}).

norm={spec.norm}, act={spec.act}, downsample={spec.downsample}, drop_path={spec.drop_path:g}.
Input (N, in_channels, H, W) -> logits (N, num_classes).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_norm(channels: int) -> nn.Module:
    return {_NORM[spec.norm]}


def make_act() -> nn.Module:
    return {_ACT[spec.act]}
{helpers}{norms_line}

class Net(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            {stem_joined},
        )
{chr(10).join(lines)}
{chr(10).join(head_lines)}
{init_call}{init_method}
    def forward(self, x: torch.Tensor) -> torch.Tensor:
{resize}        x = self.stem(x)
{stage_calls}        x = self.head_conv(x)
        x = {pool}.flatten(1)
        return self.classifier(x)
'''


def _init_method(scheme: str) -> str:
    if scheme == "default":
        return ""
    conv = {"kaiming": 'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
            "xavier": "nn.init.xavier_uniform_(m.weight)",
            "trunc_normal": "nn.init.trunc_normal_(m.weight, std=0.02)"}[scheme]
    return f'''
    def init_weights(self) -> None:
        """{scheme} initialisation of conv and linear weights; biases start at 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                {conv}
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
'''
