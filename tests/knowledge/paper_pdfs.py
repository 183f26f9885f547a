"""Real PDFs for the knowledge tests and benchmark, written with fpdf2.

``write_pdf`` lays out pages of (kind, text) blocks — "title", "heading", "text" — one list per
page, so a test knows exactly which page each sentence lands on.
"""

from __future__ import annotations

import random
from pathlib import Path

Block = tuple[str, str]


def write_pdf(path: Path, pages: list[list[Block]], meta_title: str | None = None,
              user_password: str | None = None, unicode_font: bool = False) -> Path:
    """Kinds: "title" (16 pt bold), "heading" (12 pt bold), "text" (9 pt), "small" (7 pt, e.g. a
    conference header). ``unicode_font``: DejaVu Sans (from matplotlib) instead of Helvetica, so
    ligature code points such as U+FB01 can be written."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    family = "Helvetica"
    if unicode_font:
        import matplotlib

        ttf = Path(matplotlib.__file__).parent / "mpl-data/fonts/ttf"
        pdf.add_font("DejaVu", "", str(ttf / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(ttf / "DejaVuSans-Bold.ttf"))
        family = "DejaVu"
    if meta_title:
        pdf.set_title(meta_title)
    if user_password is not None:
        from fpdf.enums import EncryptionMethod

        pdf.set_encryption(owner_password="owner", user_password=user_password,
                           encryption_method=EncryptionMethod.RC4)
    for blocks in pages:
        pdf.add_page()
        pdf.set_xy(15, 15)
        for kind, text in blocks:
            if kind == "title":
                pdf.set_font(family, "B", 16)
                pdf.multi_cell(0, 8, text)
            elif kind == "heading":
                pdf.set_font(family, "B", 12)
                pdf.ln(2)
                pdf.multi_cell(0, 6, text)
            elif kind == "small":
                pdf.set_font(family, "", 7)
                pdf.multi_cell(0, 3.5, text)
            else:
                pdf.set_font(family, "", 9)
                pdf.multi_cell(0, 4.2, text)
            pdf.set_x(15)
    pdf.output(str(path))
    return path


TITLE = "Squeeze Networks: Channel Attention for Efficient Residual Models"
ARXIV = "2301.01234"

# idea id -> page its best evidence is on (asserted by the tests)
KNOWN_PAGES = {"squeeze-excitation": 2, "gelu": 3, "anti-aliased-downsampling": 3,
               "stochastic-depth": 4}
REFERENCE_ONLY = ("mish", "cbam")  # named only in the references: must not be extracted
# named only as training setup ("we train with a cosine schedule"): a recipe, not the design
SETUP_ONLY = ("cosine-schedule",)

FILLER = ("The network is trained on the standard training split and evaluated on the held-out "
          "validation images, with all hyper-parameters chosen on a separate split. ")


def paper_pages(injection: str = "") -> list[list[Block]]:
    """A 5-page paper: ideas on known pages, a references section naming other ideas."""
    return [
        [("title", TITLE), ("text", f"A. Author, B. Author. arXiv:{ARXIV}v2 [cs.CV] 2023"),
         ("heading", "Abstract"),
         ("text", "We study channel attention in compact convolutional networks. " + FILLER * 3),
         ("heading", "1 Introduction"),
         ("text", "Deep networks are hard to optimise. " + FILLER * 4 + injection)],
        [("heading", "2 Method"),
         ("text", FILLER * 2 + "We insert squeeze-and-excitation blocks after every residual "
          "stage, which improves top-1 accuracy by +1.2% at a negligible cost in FLOPs. "
          + FILLER * 3)],
        [("heading", "3 Design choices"),
         ("text", FILLER + "Replacing ReLU with GELU activations gives a further +0.4% top-1 "
          "accuracy. " + FILLER + "We apply anti-aliased downsampling with a blur pooling filter "
          "before every strided convolution, which reduces the error by 0.3%. " + FILLER * 2)],
        [("heading", "4 Regularisation"),
         ("text", FILLER * 2 + "Stochastic depth with a drop rate of 0.1 regularises the deepest "
          "model and improves accuracy by 0.5%. We train with a cosine learning rate schedule "
          "for 200 epochs. " + FILLER * 2)],
        [("heading", "References"),
         ("text", "[1] D. Misra. Mish: A self regularized non-monotonic activation function. "
          "BMVC 2020.\n[2] S. Woo et al. CBAM: Convolutional block attention module. ECCV 2018.\n"
          "[3] J. Hu et al. Squeeze-and-excitation networks. CVPR 2018.")],
    ]


# Technical vocabulary with numbers, citations and symbols, so the text tokenises like a real
# paper (~0.21 MiniLM word pieces per character, measured on arXiv text) rather than plain prose.
VOCAB = ("convolutional channel-wise feature-map stage block network accuracy training layer "
         "resolution kernel width depth image batch spatial attention residual parameterisation "
         "FLOPs budget scaling baseline ablation transferability representation gradient "
         "optimisation ImageNet-1k CIFAR-10 top-1 3x3 1x1 hyper-parameters regularisation "
         "downsampling (Table 3) (Fig. 4) [12] [27, 31] 76.3% 0.1 1e-4 ReLU BatchNorm SGD "
         "Nesterov momentum pre-activation re-parameterised heterogeneous throughput latency "
         "per-channel receptive-field eq. (2) O(n^2) backpropagation quantisation").split()
IDEA_SENTENCES = (
    "Squeeze-and-excitation modules improve top-1 accuracy by +1.1% in our ablation.",
    "Depthwise separable convolutions reduce FLOPs by 8x with little loss of accuracy.",
    "Inverted residual blocks with linear bottlenecks keep the representation compact.",
    "We use GELU activations throughout, which gives +0.3% over ReLU.",
    "Stochastic depth with a rate of 0.2 regularises the deepest models.",
    "Layer normalization is applied before every attention block.",
    "Anti-aliased downsampling with blur pooling improves shift invariance.",
    "A cosine learning rate schedule with linear warmup is used for all runs.",
    "Compound scaling of depth, width and resolution yields better trade-offs.",
    "Label smoothing of 0.1 and mixup are used as regularisers.",
)


def long_paper_pages(n_pages: int, seed: int = 0, chars_per_page: int = 3500) -> list[list[Block]]:
    """``n_pages`` of paper-like prose (numbered sections, idea sentences, a references tail)."""
    rng = random.Random(seed)

    def prose(n_chars: int) -> str:
        out: list[str] = []
        size = 0
        while size < n_chars:
            if rng.random() < 0.08:
                s = rng.choice(IDEA_SENTENCES)
            else:
                words = rng.choices(VOCAB, k=rng.randint(10, 22))
                s = " ".join(words).capitalize() + "."
            out.append(s)
            size += len(s) + 1
        return " ".join(out)

    n_refs = max(1, n_pages // 10)
    pages: list[list[Block]] = [[("title", "A Long Study of Convolutional Design"),
                                 ("heading", "Abstract"), ("text", prose(chars_per_page - 600))]]
    for i in range(1, n_pages - n_refs):
        blocks: list[Block] = []
        if i % 3 == 1:
            blocks.append(("heading", f"{i // 3 + 1} Section on design choice {i // 3 + 1}"))
        blocks.append(("text", prose(chars_per_page)))
        pages.append(blocks)
    refs = [f"[{j}] A. Author. Title of cited paper {j} on residual networks. Venue {2000 + j % 24}."
            for j in range(1, 40)]
    pages.append([("heading", "References"), ("text", "\n".join(refs))])
    for _ in range(n_refs - 1):
        pages.append([("text", "\n".join(refs))])
    return pages
