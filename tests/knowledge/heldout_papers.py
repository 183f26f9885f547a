"""Held-out papers for the offline extractor: three generated, paper-like PDFs written (in the
style of well-known CNN papers, in our own words) AFTER the extractor's rules were fixed, and
not used to tune them. Each lists its key ideas and things that must not be extracted, in the
format of ``expected.yaml``; ``bench_knowledge.py --dev`` reports them next to the real papers.
"""

from __future__ import annotations

from pathlib import Path

from tests.knowledge.paper_pdfs import write_pdf

REFS = "\n".join(f"[{j}] A. Author and B. Author. A cited study of convolutional networks. "
                 f"In CVPR, {1998 + j}." for j in range(1, 30))

PAPERS = [
    {
        "file": "ghost.pdf",
        "title": "GhostNet: More Features from Cheap Operations",
        "pages": [
            [("title", "GhostNet: More Features from Cheap Operations"),
             ("text", "Kai Han1, Yunhe Wang1, Qi Tian2"),
             ("text", "1 Noah's Ark Lab 2 University of Somewhere"),
             ("heading", "Abstract"),
             ("text", "Deploying convolutional networks on embedded devices is difficult because "
                      "of limited memory and compute. We observe that feature maps of trained "
                      "networks contain many similar pairs. This paper proposes a novel Ghost "
                      "module to generate more feature maps from cheap operations. Starting from "
                      "a set of intrinsic feature maps, we apply a series of cheap linear "
                      "transformations to produce ghost feature maps. Stacking Ghost bottlenecks "
                      "gives the lightweight GhostNet, which reaches 75.7% top-1 accuracy with "
                      "fewer FLOPs than MobileNetV3."),
             ("heading", "1 Introduction"),
             ("text", "Efficient architectures such as MobileNet and ShuffleNet rely on depthwise "
                      "convolutions and channel shuffle operations [12, 30]. Squeeze-and-"
                      "excitation modules [14] are used in many recent mobile networks. Pruning "
                      "and quantization [8] reduce redundancy after training.")],
            [("heading", "2 Related Work"),
             ("text", "Xception [3] uses depthwise separable convolutions throughout. "
                      "ShuffleNet [30] introduces channel shuffle between group convolutions. "
                      "Some works study large depthwise kernels for mobile models [25]."),
             ("heading", "3 Approach"),
             ("text", "Ghost Module for More Features. An ordinary convolution layer produces n "
                      "output maps with many redundant ones. In the Ghost module, a primary "
                      "convolution first generates m intrinsic feature maps, and then cheap "
                      "depthwise linear operations are applied on each intrinsic map to "
                      "generate s ghost maps, so that n = m * s. The ratio s controls the "
                      "speed-up, and we use s = 2 with a 3 x 3 kernel for the cheap operation. "
                      "The identity mapping is kept in parallel to preserve the intrinsic "
                      "features."),
             ("text", "Ghost Bottlenecks. We design the Ghost bottleneck specially for small "
                      "networks. It consists of two stacked Ghost modules: the first one acts "
                      "as an expansion layer that increases the number of channels, and the "
                      "second one reduces the channels to match the shortcut path. A shortcut "
                      "connects the input and the output of the two Ghost modules. Batch "
                      "normalization is applied after each layer, but ReLU is not used after "
                      "the second Ghost module, as suggested by MobileNetV2.")],
            [("heading", "3.3 Building Efficient CNNs"),
             ("text", "GhostNet stacks Ghost bottlenecks in stages whose first bottleneck uses "
                      "stride 2. For stride 2, a depthwise convolution with stride 2 is inserted "
                      "between the two Ghost modules. We also use squeeze-and-excitation modules "
                      "in some Ghost bottlenecks. Global average pooling and a 1 x 1 convolution "
                      "with 1280 channels come before the classifier. A width multiplier alpha "
                      "scales the number of channels in every layer."),
             ("heading", "4 Experiments"),
             ("text", "We train all models with SGD, a cosine learning rate schedule, weight "
                      "decay of 4e-5 and dropout of 0.2 before the classifier. Compared with "
                      "MobileNetV3 and ShuffleNetV2, GhostNet is 0.5% more accurate at similar "
                      "FLOPs. Replacing the Ghost module with an ordinary convolution costs "
                      "twice the FLOPs.")],
            [("heading", "References"), ("text", REFS)],
        ],
        "key_ideas": [
            {"name": "Ghost module (intrinsic maps + cheap linear operations)", "new": True},
            {"name": "Ghost bottleneck with two Ghost modules and a shortcut", "new": True},
            {"name": "no ReLU after the second Ghost module", "new": True},
            {"name": "squeeze-and-excitation modules in some bottlenecks", "new": False},
            {"name": "width multiplier on the number of channels", "new": False},
        ],
        "not_ideas": ["channel shuffle", "large depthwise kernels", "cosine schedule",
                      "weight decay"],
    },
    {
        "file": "eca.pdf",
        "title": "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks",
        "pages": [
            [("title", "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural "
                       "Networks"),
             ("text", "Qilong Wang, Banggu Wu, Pengfei Zhu"),
             ("text", "Tianjin University"),
             ("heading", "Abstract"),
             ("text", "Channel attention has shown great potential in improving deep CNNs, but "
                      "most methods pursue more complex modules. This paper proposes an "
                      "Efficient Channel Attention (ECA) module that involves only a handful of "
                      "parameters. Avoiding dimensionality reduction is important for learning "
                      "channel attention, and local cross-channel interaction is enough. The ECA "
                      "module is implemented by a fast 1D convolution whose kernel size is "
                      "determined adaptively from the channel dimension.")],
            [("heading", "2 Related Work"),
             ("text", "SENet [15] learns channel attention with two fully connected layers and "
                      "dimensionality reduction. CBAM [33] adds spatial attention with a 7 x 7 "
                      "convolution. Non-local networks [32] model long-range dependencies."),
             ("heading", "3 Proposed Method"),
             ("text", "Avoiding Dimensionality Reduction. The reduction in SE is harmful for the "
                      "channel attention: it breaks the direct correspondence between a channel "
                      "and its weight. Therefore our module keeps the channel dimension. Local "
                      "Cross-Channel Interaction. We capture the interaction of each channel "
                      "with its k neighbours through a 1D convolution of kernel size k over the "
                      "globally average-pooled channel descriptor, followed by a sigmoid."),
             ("text", "Adaptive Kernel Size. The coverage k of the interaction should grow with "
                      "the channel dimension C. We set k adaptively as a function of log2(C), "
                      "so that no cross-validation of k is needed. We insert the ECA module "
                      "after the last convolution of every residual block of ResNet.")],
            [("heading", "4 Experiments"),
             ("text", "We use ResNet-50 and MobileNetV2 as backbones and train them with random "
                      "cropping, label smoothing and a cosine schedule. Without dimensionality "
                      "reduction, ECA-Net improves top-1 accuracy by 2.3% over ResNet-50 with "
                      "only 80 extra parameters. Group normalization did not help in our "
                      "setting and was not used.")],
            [("heading", "References"), ("text", REFS)],
        ],
        "key_ideas": [
            {"name": "efficient channel attention module (1D convolution over pooled channels)",
             "new": False},
            {"name": "no dimensionality reduction in channel attention", "new": True},
            {"name": "adaptive kernel size from the channel dimension", "new": True},
        ],
        "not_ideas": ["spatial attention", "non-local block", "group normalization",
                      "label smoothing"],
    },
    {
        "file": "octave.pdf",
        "title": "Drop an Octave: Reducing Spatial Redundancy with Octave Convolution",
        "pages": [
            [("title", "Drop an Octave: Reducing Spatial Redundancy in Convolutional Neural "
                       "Networks with Octave Convolution"),
             ("text", "Yunpeng Chen, Haoqi Fan, Bing Xu"),
             ("text", "Facebook AI"),
             ("heading", "Abstract"),
             ("text", "Natural images can be decomposed into a low-frequency part and a high-"
                      "frequency part. We propose to factorize the feature maps by their "
                      "frequencies and design a novel Octave Convolution (OctConv) operation "
                      "that stores and processes the low-frequency maps at a lower spatial "
                      "resolution, reducing memory and computation. OctConv is a drop-in "
                      "replacement of vanilla convolution and improves ResNet-50 by 1.2% top-1 "
                      "while saving 30% of the FLOPs.")],
            [("heading", "3 Method"),
             ("text", "Octave Feature Representation. We split the channels of each feature map "
                      "into a high-frequency group and a low-frequency group, where a ratio "
                      "alpha of the channels is stored at half resolution. Octave "
                      "Convolution. The octave convolution updates both groups and exchanges "
                      "information between them: the high-to-low path pools the high-frequency "
                      "maps by 2 x 2 average pooling before a convolution, and the low-to-high "
                      "path upsamples the convolved low-frequency maps. We use average pooling "
                      "rather than strided convolution for the downsampling, since strided "
                      "convolution misaligns the feature maps."),
             ("text", "We replace every vanilla convolution of ResNet-50 with OctConv and keep "
                      "batch normalization and ReLU after each octave convolution. Setting "
                      "alpha = 0.25 gives the best trade-off between accuracy and FLOPs.")],
            [("heading", "4 Experiments"),
             ("text", "Compared with multi-branch designs such as Inception and with "
                      "squeeze-and-excitation networks, OctConv is complementary. Dropout and "
                      "mixup are used for the largest models only.")],
            [("heading", "References"), ("text", REFS)],
        ],
        "key_ideas": [
            {"name": "octave convolution (high- and low-frequency feature groups)", "new": True},
            {"name": "ratio alpha of low-frequency channels at half resolution", "new": True},
            {"name": "average pooling instead of strided convolution for the low-frequency path",
             "new": False},
            {"name": "batch normalization and ReLU after each octave convolution", "new": False},
        ],
        "not_ideas": ["inception module", "squeeze-and-excitation", "strided convolution",
                      "mixup"],
    },
]


def write_heldout(directory: Path) -> list[tuple[dict, Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    return [(p, write_pdf(directory / p["file"], p["pages"])) for p in PAPERS]
