"""A lexicon of architectural concepts for the offline extractor.

Each ``Concept`` maps surface forms in paper text (regexes) to the template's fields: category,
operator, expected effect and — where the concept is a known edit — the structured ``edits``
(open-space ArchSpec paths) and ``cell_ops`` (NAS-Bench-201) that make an ingested idea
applicable by the offline mutator. Edits use the ArchSpec path vocabulary of
``search/spaces/open.py``; concepts whose edit is not expressible there keep ``edits`` empty. Concept ids follow the
built-in corpus (``corpora/*.yaml``) where both describe the same idea, so an idea found in a
paper merges into the corpus idea (adding the paper's quote and page as provenance).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from archlore.knowledge.schema import Category, Direction

U, D, N, X = Direction.UP, Direction.DOWN, Direction.NEUTRAL, Direction.UNKNOWN


@dataclass(frozen=True)
class Concept:
    id: str
    name: str
    category: Category
    patterns: tuple[str, ...]  # case-insensitive regexes over sentences
    description: str
    operator: str = ""
    applies_to: tuple[str, ...] = ("stage",)
    effect: tuple[Direction, Direction, Direction] = (U, X, X)  # accuracy, MACs, params
    kernel_sizes: tuple[int, ...] = ()
    ratios: dict[str, float] = field(default_factory=dict)
    edits: tuple[dict[str, Any], ...] = ()
    cell_ops: tuple[str, ...] = ()
    code_hint: str = ""
    conflicts_with: tuple[str, ...] = ()

    @property
    def regex(self) -> re.Pattern[str]:
        return _compiled(self.patterns)


_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    if patterns not in _CACHE:
        _CACHE[patterns] = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
    return _CACHE[patterns]


def _set(path: str, value: Any) -> dict[str, Any]:
    return {"op": "set", "path": path, "value": value}


def _scale(path: str, value: float) -> dict[str, Any]:
    return {"op": "scale", "path": path, "value": value}


def _add(path: str, value: float) -> dict[str, Any]:
    return {"op": "add", "path": path, "value": value}


C = Category
CONCEPTS: tuple[Concept, ...] = (
    # --- block type ---------------------------------------------------------------------
    Concept("squeeze-excitation", "Squeeze-and-Excitation", C.ATTENTION,
            (r"squeeze[- ]and[- ]excitation", r"squeeze[- ]excitation", r"\bSE[- ](?:block|module|layer|net)s?\b"),
            "Channel attention: global-average-pool the feature map, two FC layers with a "
            "bottleneck ratio, sigmoid gates that rescale each channel.",
            "SE block", ("block",), (U, N, U), ratios={"se": 0.25},
            edits=(_set("stages[*].attention", "se"), _set("stages[*].attn_ratio", 0.25)),
            code_hint="s = x.mean((2,3)); s = sigmoid(fc2(relu(fc1(s)))); x = x * s[:, :, None, None]"),
    Concept("depthwise-separable", "Depthwise separable convolution", C.BLOCK_TYPE,
            (r"depth[- ]?wise[- ]separable", r"depth[- ]?wise conv", r"separable convolution"),
            "Factorise a KxK convolution into a per-channel (depthwise) KxK convolution and a "
            "1x1 pointwise convolution, cutting MACs and parameters by roughly K^2.",
            "depthwise conv + pointwise conv", ("block",), (N, D, D), kernel_sizes=(3,),
            edits=(_set("stages[*].block", "dwsep"),),
            code_hint="nn.Conv2d(c, c, 3, padding=1, groups=c); nn.Conv2d(c, c_out, 1)"),
    Concept("inverted-residual", "Inverted residual (MBConv)", C.BLOCK_TYPE,
            (r"inverted residual", r"\bMBConv\b", r"linear bottleneck"),
            "Expand channels with a 1x1 conv, depthwise 3x3, project back with a linear 1x1 "
            "conv; skip connection between the thin ends.",
            "MBConv", ("block",), (U, D, D), kernel_sizes=(3,), ratios={"expand": 6.0},
            edits=(_set("stages[*].block", "mbconv"), _set("stages[*].expand", 6.0)),
            code_hint="1x1 expand (x6) -> BN-ReLU6 -> dw3x3 -> BN-ReLU6 -> 1x1 project -> BN; + x"),
    Concept("bottleneck-block", "Bottleneck residual block", C.BLOCK_TYPE,
            (r"bottleneck (?:block|design|layer|architecture|residual)s?", r"1\s?[x×]\s?1 convolutions? (?:to )?reduc"),
            "1x1 conv reduces channels, 3x3 conv at the reduced width, 1x1 conv restores them; "
            "cheaper than two full-width 3x3 convs at the same depth.",
            "1x1-3x3-1x1 bottleneck", ("block",), (U, D, D), kernel_sizes=(1, 3),
            ratios={"reduction": 4.0},
            edits=(_set("stages[*].block", "bottleneck"), _set("stages[*].expand", 0.25)),
            cell_ops=("add_conv1x1",)),
    Concept("grouped-bottleneck", "Grouped convolution (cardinality)", C.BLOCK_TYPE,
            (r"grouped convolutions?", r"group convolutions?",
             r"group-?wise (?:\d\s?[x×]\s?\d )?conv\w*", r"\bcardinality\b"),
            "Split channels into groups convolved independently (ResNeXt cardinality): more "
            "width at the same MACs.",
            "grouped conv", ("block",), (U, D, D), kernel_sizes=(3,), ratios={"groups": 32.0},
            edits=(_set("stages[*].groups", 8),)),
    Concept("convnext-block", "ConvNeXt block", C.BLOCK_TYPE,
            (r"\bConvNeXt\b",),
            "Depthwise 7x7 conv, LayerNorm, inverted-bottleneck MLP (x4) with GELU, layer scale, "
            "residual: a ResNet modernised towards Transformer design choices.",
            "dw7x7-LN-MLP block", ("block",), (U, N, N), kernel_sizes=(7,), ratios={"expand": 4.0},
            edits=(_set("stages[*].block", "convnext"), _set("stages[*].kernel", 7),
                   _set("stages[*].expand", 4.0))),
    Concept("larger-late-kernels", "Large depthwise kernels", C.BLOCK_TYPE,
            (r"large(?:r)? depth[- ]?wise (?:conv\w* )?kernels?", r"\b[579]\s?[x×]\s?[579] depth[- ]?wise",
             r"depth[- ]?wise (?:conv\w* )?(?:with|of) (?:a )?(?:large|7\s?[x×]\s?7) kernel"),
            "Use larger (7x7) depthwise kernels for a wider receptive field at small MAC cost.",
            "dw7x7 conv", ("block",), (U, U, U), kernel_sizes=(7,),
            edits=(_set("stages[*].kernel", 7),), cell_ops=("swap_conv1x1_to_conv3x3",)),
    # --- connectivity -------------------------------------------------------------------
    Concept("identity-shortcut", "Residual (skip) connections", C.CONNECTIVITY,
            (r"residual (?:connection|learning|block|unit|mapping)s?", r"skip[- ]connections?",
             r"shortcut connections?", r"identity (?:shortcut|mapping)s?",
             r"bypass (?:connection|path)s?"),
            "Add the block input to its output (y = F(x) + x) so very deep networks train.",
            "identity shortcut", ("block",), (U, N, N),
            edits=(_set("stages[*].skip", True),), cell_ops=("add_skip",),
            code_hint="return x + self.body(x)"),
    Concept("dense-connectivity", "Dense connectivity", C.CONNECTIVITY,
            (r"dense(?:ly)? connect(?:ed|ions?|ivity)", r"dense blocks?", r"feature concatenation"),
            "Each layer takes the concatenation of all preceding feature maps in the block: "
            "feature reuse with few parameters.",
            "concatenation of all earlier features", ("block",), (U, U, D),
            edits=(_set("stages[*].block", "dense"),), cell_ops=("add_skip", "add_conv1x1")),
    # --- normalization ------------------------------------------------------------------
    Concept("batch-norm", "Batch normalization", C.NORMALIZATION,
            (r"batch[- ]?norm(?:alization|alisation)?", r"\bBN layers?\b"),
            "Normalise activations with mini-batch statistics after each conv; faster, more "
            "stable training at higher learning rates.",
            "BatchNorm2d", ("block",), (U, N, N), edits=(_set("norm", "bn"),)),
    Concept("layer-norm", "Layer normalization", C.NORMALIZATION,
            (r"layer[- ]?norm(?:alization|alisation)?",),
            "Normalise over channels per sample (no batch dependence); standard in Transformers "
            "and ConvNeXt.",
            "LayerNorm", ("block",), (U, N, N), edits=(_set("norm", "ln"),)),
    Concept("group-norm", "Group normalization", C.NORMALIZATION,
            (r"group[- ]?norm(?:alization|alisation)?",),
            "Normalise over groups of channels per sample: accuracy independent of batch size.",
            "GroupNorm", ("block",), (U, N, N), ratios={"groups": 32.0},
            edits=(_set("norm", "gn"),)),
    # --- activation ---------------------------------------------------------------------
    Concept("gelu", "GELU activation", C.ACTIVATION, (r"\bGELUs?\b", r"gaussian error linear"),
            "Gaussian Error Linear Unit x*Phi(x): a smooth ReLU used in Transformers and ConvNeXt.",
            "GELU", ("block",), (U, N, N), edits=(_set("act", "gelu"),)),
    Concept("swish", "Swish / SiLU activation", C.ACTIVATION, (r"\bswish\b", r"\bSiLU\b"),
            "x*sigmoid(x): smooth, non-monotonic; found by activation search, used in EfficientNet.",
            "SiLU", ("block",), (U, N, N), edits=(_set("act", "silu"),)),
    Concept("mish", "Mish activation", C.ACTIVATION, (r"\bmish\b",),
            "x*tanh(softplus(x)): smooth self-regularised activation.",
            "Mish", ("block",), (U, N, N), edits=(_set("act", "mish"),)),
    Concept("relu6", "ReLU6 activation", C.ACTIVATION, (r"\bReLU6\b",),
            "ReLU clipped at 6, robust under low-precision arithmetic (MobileNet).",
            "ReLU6", ("block",), (N, N, N), edits=(_set("act", "relu6"),)),
    Concept("hard-swish", "Hard-swish activation", C.ACTIVATION, (r"hard[- ]?swish", r"\bh-swish\b"),
            "Piecewise-linear approximation of swish, cheap on mobile hardware (MobileNetV3).",
            "Hardswish", ("block",), (U, N, N), edits=(_set("act", "hardswish"),)),
    # --- attention / context ------------------------------------------------------------
    Concept("cbam", "CBAM (channel + spatial attention)", C.ATTENTION,
            (r"\bCBAM\b", r"convolutional block attention"),
            "Channel attention (avg+max pooled MLP) followed by spatial attention (7x7 conv over "
            "pooled channel maps).",
            "CBAM", ("block",), (U, N, U), kernel_sizes=(7,),
            edits=(_set("stages[*].attention", "cbam"),)),
    Concept("self-attention", "Self-attention / Transformer blocks", C.ATTENTION,
            (r"self[- ]attention", r"multi[- ]head attention"),
            "Global multi-head self-attention over spatial positions (tokens), typically in the "
            "low-resolution late stages.",
            "multi-head self-attention", ("stage",), (U, U, U),
            edits=(_set("stages[-1].attention", "mhsa"),)),
    Concept("non-local", "Non-local blocks", C.ATTENTION, (r"non[- ]local (?:block|operation|network)s?",),
            "Aggregate features from all positions weighted by pairwise affinity.",
            "non-local block", ("stage",), (U, U, U),
            edits=(_set("stages[-1].attention", "mhsa"),)),
    # --- downsampling / pooling ---------------------------------------------------------
    Concept("anti-aliased-downsampling", "Anti-aliased (blur) downsampling", C.DOWNSAMPLING,
            (r"anti[- ]?alias(?:ed|ing)", r"blur[- ]?pool(?:ing)?", r"low[- ]pass filter(?:ing)? before"),
            "Low-pass (blur) filter before every stride-2 subsampling: more shift-invariant and "
            "slightly more accurate.",
            "BlurPool", ("stage",), (U, U, N), kernel_sizes=(3,),
            edits=(_set("downsample", "blur"),)),
    Concept("strided-conv-downsampling", "Strided convolution downsampling", C.DOWNSAMPLING,
            (r"strided convolutions?", r"stride(?:-| of )2 conv\w*",
             r"down-?sampl\w* (?:with|via|by|using) (?:the |a )?stride(?:\s?=\s?|-| of )2"),
            "Downsample with a stride-2 convolution instead of pooling (learned downsampling).",
            "stride-2 conv", ("stage",), (U, U, U), edits=(_set("downsample", "stride"),), cell_ops=("swap_pool_to_conv3x3",)),
    Concept("global-average-pooling", "Global average pooling head", C.REGULARIZATION,
            (r"global average pooling",),
            "Average each final feature map to one value before a single linear classifier, "
            "replacing large FC layers.",
            "AdaptiveAvgPool2d(1)", ("head",), (U, D, D), edits=(_set("head.pool", "avg"),),
            cell_ops=("add_avg_pool",)),
    Concept("patchify-stem", "Patchify stem", C.STAGE_LAYOUT,
            (r"patchify", r"patch embedding", r"non-overlapping (?:patches|convolution)"),
            "A stride-p, p x p non-overlapping conv as the stem (as in ViT / ConvNeXt).",
            "non-overlapping patch conv stem", ("stem",), (N, D, N), kernel_sizes=(2, 4),
            # 2x2 (not ViT's 16 or ConvNeXt's 4) so small inputs (8x8 digits, 32x32) survive
            edits=(_set("stem.kernel", 2), _set("stem.stride", 2), _set("stem.depth", 1))),
    # --- scaling / layout ---------------------------------------------------------------
    Concept("compound-scaling", "Compound scaling", C.SCALING,
            (r"compound scal(?:ing|e)",),
            "Scale depth, width and resolution together with fixed ratios (alpha, beta, gamma) "
            "rather than one dimension alone.",
            "compound coefficient", ("stage",), (U, U, U),
            ratios={"depth": 1.2, "width": 1.1, "resolution": 1.15},
            edits=(_scale("width", 1.1), _scale("resolution", 1.15), _add("stages[-1].depth", 1))),
    Concept("width-scaling", "Width scaling", C.SCALING,
            (r"width multiplier", r"wider networks?", r"increas\w* (?:the )?width", r"width scaling",
             r"channel multiplier", r"scale factor (?:\w+ )?(?:on|to|for) the number of (?:channels|filters)",
             r"(?:multiply|scale) the number of (?:channels|filters)"),
            "Multiply every layer's channel count by a factor.",
            "channel multiplier", ("stage",), (U, U, U), ratios={"width": 1.25},
            edits=(_scale("width", 1.25),)),
    Concept("deeper-stages", "Depth scaling", C.SCALING,
            (r"deeper networks?", r"increas\w* (?:the )?depth", r"depth scaling", r"more layers"),
            "Add blocks per stage.",
            "more blocks", ("stage",), (U, U, U), ratios={"depth": 1.5},
            edits=(_add("stages[*].depth", 1),)),
    Concept("higher-resolution", "Input resolution scaling", C.SCALING,
            (r"higher (?:input )?resolution", r"resolution scaling", r"larger input (?:images|resolution)"),
            "Train and test at a higher input resolution.",
            "input resize", ("stem",), (U, U, N), ratios={"resolution": 1.25},
            edits=(_scale("resolution", 1.25),)),
    Concept("stage-compute-ratio", "Stage compute ratio", C.STAGE_LAYOUT,
            (r"stage (?:compute )?ratio", r"blocks per stage", r"\(3,\s?3,\s?9,\s?3\)"),
            "Redistribute blocks across stages, e.g. (3, 3, 9, 3): most compute in stage 3.",
            "stage depths", ("stage",), (U, N, N)),
    Concept("eca", "Efficient channel attention (ECA)", C.ATTENTION,
            (r"efficient channel attention", r"\bECA(?:-Net)?\b"),
            "Channel attention without dimensionality reduction: a 1D conv over the pooled "
            "channel descriptor.",
            "ECA", ("block",), (U, N, N), edits=(_set("stages[*].attention", "eca"),)),
    Concept("channel-shuffle", "Channel shuffle", C.BLOCK_TYPE,
            (r"channel shuffle",),
            "Permute channels between grouped convolutions so information crosses groups.",
            "channel shuffle", ("block",), (U, D, D),
            edits=(_set("stages[*].groups", 4), _set("stages[*].shuffle", True))),
    Concept("inception-module", "Inception (multi-branch) block", C.BLOCK_TYPE,
            (r"\binception (?:module|block)s?\b",),
            "Parallel 1x1 / 3x3 / 5x5 / pooling branches concatenated: multi-scale features.",
            "inception block", ("block",), (U, U, U), kernel_sizes=(1, 3, 5),
            edits=(_set("stages[*].block", "inception"),)),
    Concept("deep-stem", "Deep stem", C.STAGE_LAYOUT,
            (r"deep stem", r"three 3\s?[x×]\s?3 conv(?:olution)?s? (?:in|as) the stem"),
            "Replace one large stem convolution with a stack of 3x3 convolutions.",
            "3x3 conv stack stem", ("stem",), (U, U, N), kernel_sizes=(3,),
            edits=(_set("stem.kernel", 3), _set("stem.depth", 3))),
    Concept("max-pool-downsampling", "Max-pooling downsampling", C.DOWNSAMPLING,
            (r"max[- ]pool(?:ing)? (?:layer|downsampl)\w*", r"downsampl\w* (?:by|with) max[- ]pool"),
            "Downsample between stages with 2x2 max pooling.",
            "MaxPool2d(2)", ("stage",), (N, D, N), edits=(_set("downsample", "maxpool"),),
            cell_ops=("add_avg_pool",)),
    Concept("zero-init-residual", "Zero-initialised residual branches", C.TRAINING,
            (r"zero[- ]init\w*", r"initiali[sz]\w* (?:the )?(?:last )?(?:BN|batch[- ]?norm)\w* .{0,30}zero"),
            "Initialise the last norm scale of each residual branch to zero so every block starts "
            "as the identity.",
            "gamma=0 on last BN", ("block",), (U, N, N),
            edits=(_set("init.zero_init_residual", True),)),
    Concept("layer-scale", "Layer scale", C.TRAINING, (r"layer[- ]scale",),
            "Learnable per-channel scale on each residual branch, initialised small (1e-6).",
            "per-channel gamma", ("block",), (U, N, N), ratios={"init": 1e-6},
            edits=(_set("init.layer_scale", 1e-6),)),
    Concept("kaiming-init", "He (Kaiming) initialisation", C.TRAINING,
            (r"kaiming (?:normal |uniform )?init\w*", r"\bHe init\w*", r"msra init\w*"),
            "Initialise conv weights with variance 2/fan_in for ReLU networks.",
            "kaiming_normal_", ("block",), (U, N, N), edits=(_set("init.scheme", "kaiming"),)),
    # --- regularization -----------------------------------------------------------------
    Concept("head-dropout", "Dropout", C.REGULARIZATION, (r"\bdropout\b",),
            "Randomly zero activations during training (before the classifier) against "
            "overfitting.",
            "Dropout", ("head",), (U, N, N), ratios={"p": 0.2},
            edits=(_set("head.dropout", 0.2),)),
    Concept("stochastic-depth", "Stochastic depth / drop path", C.REGULARIZATION,
            (r"stochastic depth", r"drop[- ]?path", r"drop[- ]connect"),
            "Randomly skip whole residual blocks during training, rate growing with depth.",
            "DropPath", ("block",), (U, N, N), ratios={"drop_path": 0.1},
            edits=(_set("drop_path", 0.1),)),
    Concept("label-smoothing", "Label smoothing", C.TRAINING, (r"label smoothing",),
            "Train against a mixture of the one-hot target and the uniform distribution.",
            "CrossEntropyLoss(label_smoothing=0.1)", ("training",), (U, N, N),
            ratios={"epsilon": 0.1}),
    Concept("mixup", "Mixup / CutMix", C.TRAINING, (r"\bmixup\b", r"\bcutmix\b", r"\bcutout\b"),
            "Train on convex combinations (mixup) or cut-and-paste patches (CutMix) of image pairs "
            "and their labels.",
            "input/label mixing", ("training",), (U, N, N), ratios={"alpha": 0.2}),
    Concept("weight-decay", "Weight decay", C.REGULARIZATION, (r"weight decay", r"L2 regulari[sz]ation"),
            "Penalise weight norms (decoupled in AdamW).",
            "weight decay", ("training",), (U, N, N), ratios={"wd": 5e-4}),
    # --- training recipe ----------------------------------------------------------------
    Concept("cosine-schedule", "Cosine learning-rate schedule", C.TRAINING,
            (r"cosine (?:learning[- ]rate |lr )?(?:schedule|decay|annealing)", r"\bSGDR\b"),
            "Decay the learning rate along a half cosine to zero (optionally with warm restarts).",
            "CosineAnnealingLR", ("training",), (U, N, N)),
    Concept("lr-warmup", "Learning-rate warmup", C.TRAINING, (r"\bwarm[- ]?up\b",),
            "Ramp the learning rate up linearly over the first epochs before the main schedule.",
            "linear warmup", ("training",), (U, N, N)),
    Concept("adamw", "AdamW optimizer", C.TRAINING, (r"\bAdamW\b", r"decoupled weight decay"),
            "Adam with weight decay decoupled from the gradient update.",
            "AdamW", ("training",), (U, N, N)),
    Concept("auto-augment", "Learned augmentation policies", C.TRAINING,
            (r"auto[- ]?augment", r"rand[- ]?augment"),
            "Apply augmentation policies found by search (AutoAugment) or sampled uniformly "
            "(RandAugment).",
            "RandAugment", ("training",), (U, N, N)),
)

BY_ID: dict[str, Concept] = {c.id: c for c in CONCEPTS}
