"""Which GPU to rent: ordering a Runpod catalog against a memory requirement.

Pure: the catalog (``GpuOffer`` records, built by the Runpod client from ``gpuTypes``
and ``lowestPrice``) comes in, an ordered candidate list goes out. The caller tries
the candidates in order, because stock is a hint, not a reservation.

Rules, applied in this order to every offer: usable by the training stack (CUDA with
bf16, which the recipes hard-code, on an architecture the stack's torch build has kernels
for: ``GpuSupport``), enough memory, in stock, the GPU count
allowed per pod, the ``--gpu-type`` filter, the ``--max-price`` cap. ``explain`` says
which rule kept or dropped each offer (for plan tables); ``choose`` returns the kept
ones or raises ``PreflightError`` saying what emptied the list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from thinnka.errors import PreflightError, RefusedChoice

__all__ = [
    "PRIORITY_FAMILIES",
    "GpuOffer",
    "GpuSupport",
    "GpuVerdict",
    "Strategy",
    "architecture",
    "choose",
    "explain",
]

Strategy = Literal["priority", "cheapest"]

# Runpod's stockStatus values that mean "some available"; null (or "None") means none.
_IN_STOCK = frozenset({"High", "Medium", "Low"})

# GPUs the recipes cannot train on, matched on "displayName id" lowered. Runpod lists
# AMD Instinct cards (no CUDA for the image, vLLM or bitsandbytes) and V100s (Volta: no
# bf16, no flash attention); the original never reached them, its families excluded them.
_UNUSABLE: tuple[tuple[str, str], ...] = (
    ("amd ", "not usable: AMD GPUs cannot run the CUDA training stack"),
)
_NO_BF16 = frozenset({"pascal", "volta", "turing"})

# NVIDIA architectures by name, matched in this order on "displayName id" lowered (Ada
# before Blackwell: "RTX 5000 Ada" is Ada, "RTX 5090" Blackwell). A name no pattern knows
# has no architecture, and no stack rule drops it.
_ARCHITECTURES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (arch, re.compile(pattern))
    for arch, pattern in (
        ("ada", r"\bada\b|\bl40s?\b|\bl4\b|\b40[6-9]0\b"),
        ("blackwell", r"blackwell|\bg?b[123]00\b|\b50[5-9]0\b|\brtx pro 6000\b"),
        ("hopper", r"\bg?h[12]00\b|\bh800\b|\bh20\b"),
        ("ampere", r"\ba(100|800|40|30|16|10g?|2)\b|\ba[2-6]\d00\b|\b30[5-9]0\b"),
        ("turing", r"\bt4\b|\b20[6-8]0\b|titan rtx|quadro rtx"),
        ("volta", r"\bv100\b|titan v\b"),
        ("pascal", r"\bp(100|40|4)\b|\b10[6-8]0\b"),
    )
)


def architecture(offer: GpuOffer) -> str | None:
    """The NVIDIA architecture of an offer by its names ("ampere", "blackwell", ...), or None."""
    name = offer.search_name
    if "amd " in name:
        return None
    return next((arch for arch, pattern in _ARCHITECTURES if pattern.search(name)), None)


@dataclass(frozen=True)
class GpuSupport:
    """The GPU architectures one training stack's torch build has kernels for, and why."""

    stack: str
    architectures: frozenset[str]
    why: str


# The original's families, in its order, matched like it: substrings of the lowered
# "<displayName> <id>" (no other GPU type was ever a candidate). The real H100 SXM id is
# "NVIDIA H100 80GB HBM3": only its displayName "H100 SXM" carries "sxm", which is why both
# are searched.
PRIORITY_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("L40S", ("l40s",)),
    ("A100 SXM", ("a100", "sxm")),
    ("H100 SXM", ("h100", "sxm")),
)


@dataclass(frozen=True)
class GpuOffer:
    """One GPU type as offered for ``gpu_count`` GPUs in one pod."""

    id: str  # the exact gpuTypeId, e.g. "NVIDIA L40S"; opaque, never normalised
    display_name: str  # e.g. "L40S"
    memory_gb: float  # memoryInGb, per GPU
    gpu_count: int = 1
    # lowestPrice(gpuCount).uninterruptablePrice for the cloud type asked for, per GPU.
    price_per_gpu_hour: float | None = None
    stock: str | None = None  # lowestPrice.stockStatus: "High", "Medium", "Low" or None
    max_gpu_count: int | None = None
    # The clouds to try for this type, in order ("SECURE", "COMMUNITY"; "ALL" where the
    # transport lets Runpod pick). REST v2 has no "any cloud", so --cloud-type ALL becomes
    # SECURE then COMMUNITY, each only where the catalog shows stock.
    clouds: tuple[str, ...] = ()

    @property
    def in_stock(self) -> bool:
        return self.stock in _IN_STOCK

    @property
    def price_per_hour(self) -> float | None:
        """What the pod's GPUs cost per hour together."""
        if self.price_per_gpu_hour is None:
            return None
        return self.price_per_gpu_hour * self.gpu_count

    @property
    def search_name(self) -> str:
        """The text family and ``--gpu-type`` matching look at, as the original built it."""
        return f"{self.display_name} {self.id}".lower()

    @property
    def family(self) -> str | None:
        """The original's priority family this GPU belongs to, if any."""
        name = self.search_name
        return next((f for f, words in PRIORITY_FAMILIES if all(w in name for w in words)), None)

    @property
    def label(self) -> str:
        count = f"{self.gpu_count}× " if self.gpu_count > 1 else ""
        return f"{count}{self.display_name}"


@dataclass(frozen=True)
class GpuVerdict:
    """Why one offer was kept (with its place in the order) or skipped."""

    offer: GpuOffer
    kept: bool
    reason: str
    rank: int | None = None  # 1-based position among the kept offers


def explain(
    offers: Iterable[GpuOffer],
    required_gb: float,
    *,
    strategy: Strategy = "priority",
    gpu_type: str | None = None,
    max_price: float | None = None,
    support: GpuSupport | None = None,
) -> list[GpuVerdict]:
    """A verdict for every offer: kept ones first in ``choose``'s order, then the rest."""
    wanted = (gpu_type or "").strip().lower()
    kept: list[GpuOffer] = []
    skipped: list[GpuVerdict] = []
    for offer in offers:
        reason = _skip_reason(offer, required_gb, wanted, gpu_type, max_price, support)
        if reason is None:
            kept.append(offer)
        else:
            skipped.append(GpuVerdict(offer, False, reason))
    kept.sort(key=_priority_key if strategy == "priority" else _price_key)
    verdicts = [
        GpuVerdict(offer, True, _kept_reason(offer, strategy), rank)
        for rank, offer in enumerate(kept, start=1)
    ]
    return verdicts + skipped


def choose(
    offers: Iterable[GpuOffer],
    required_gb: float,
    *,
    strategy: Strategy = "priority",
    gpu_type: str | None = None,
    max_price: float | None = None,
    support: GpuSupport | None = None,
) -> list[GpuOffer]:
    """Candidates to try in order; raises ``PreflightError`` (``no_gpu_fits``) if none.

    ``priority`` keeps the original's family order (L40S, A100 SXM, H100 SXM), then any
    other fitting GPU by price; ``cheapest`` orders everything by price. Ties go to more
    memory; an unknown price sorts last. ``support`` drops GPUs the stack cannot use.
    """
    offers = list(offers)
    verdicts = explain(
        offers,
        required_gb,
        strategy=strategy,
        gpu_type=gpu_type,
        max_price=max_price,
        support=support,
    )
    chosen = [v.offer for v in verdicts if v.kept]
    if not chosen:
        # Something fits but --gpu-type/--max-price removed it: the user's choice, exit 2.
        chose = any(
            v.kept for v in explain(offers, required_gb, strategy=strategy, support=support)
        )
        error = RefusedChoice if chose else PreflightError
        raise error(
            _why_nothing(offers, required_gb, gpu_type, max_price, support), reason="no_gpu_fits"
        )
    return chosen


def _unusable(offer: GpuOffer, support: GpuSupport | None = None) -> str | None:
    if why := next((why for word, why in _UNUSABLE if word in offer.search_name), None):
        return why
    arch = architecture(offer)
    if arch in _NO_BF16:
        return f"not usable: {arch.title()} has no bf16"
    if support is not None and arch is not None and arch not in support.architectures:
        return f"not usable by the {support.stack} stack ({arch.title()}): {support.why}"
    return None


def _skip_reason(
    offer: GpuOffer,
    required_gb: float,
    wanted: str,
    gpu_type: str | None,
    max_price: float | None,
    support: GpuSupport | None,
) -> str | None:
    if unusable := _unusable(offer, support):
        return unusable
    if offer.memory_gb < required_gb:
        return f"{offer.memory_gb:g} GB < {required_gb:.1f} GB needed"
    if not offer.in_stock:
        return f"out of stock for {offer.gpu_count} GPU(s)"
    if offer.max_gpu_count is not None and offer.gpu_count > offer.max_gpu_count:
        return f"at most {offer.max_gpu_count} per pod"
    if wanted and wanted not in offer.search_name:
        return f"does not match --gpu-type {gpu_type!r}"
    if max_price is not None:
        price = offer.price_per_hour
        if price is None:
            return "price unknown, so --max-price cannot be checked"
        if price > max_price:
            return f"${price:.2f}/h > --max-price ${max_price:.2f}/h"
    return None


def _price_key(offer: GpuOffer) -> tuple[bool, float, float, str]:
    price = offer.price_per_hour
    return (price is None, price or 0.0, -offer.memory_gb, offer.id)


def _priority_key(offer: GpuOffer) -> tuple[int, bool, float, float, str]:
    names = [f for f, _ in PRIORITY_FAMILIES]
    rank = names.index(offer.family) if offer.family else len(names)
    return (rank, *_price_key(offer))


def _kept_reason(offer: GpuOffer, strategy: Strategy) -> str:
    price = offer.price_per_hour
    cost = f"${price:.2f}/h" if price is not None else "price unknown"
    if strategy == "priority" and offer.family:
        return f"priority family {offer.family}, {cost}"
    return f"by price, {cost}"


def _why_nothing(
    offers: list[GpuOffer],
    required_gb: float,
    gpu_type: str | None,
    max_price: float | None,
    support: GpuSupport | None = None,
) -> str:
    """The message for an empty candidate list: the rule that removed the last ones."""
    need = f"{required_gb:.1f} GB"
    wanted = (gpu_type or "").strip().lower()
    usable = [o for o in offers if _unusable(o, support) is None]
    if wanted and not any(wanted in o.search_name for o in usable):
        # --gpu-type asked for GPUs the stack cannot use: say why rather than "no match".
        asked = next((o for o in offers if wanted in o.search_name), None)
        if asked is not None:
            return f"--gpu-type {gpu_type!r}: {asked.display_name} is {_unusable(asked, support)}."
    if not usable:
        return "Runpod offered no GPU types that the training stack can use."
    offers = usable
    fitting = [o for o in offers if o.memory_gb >= required_gb]
    if not fitting:
        in_stock = [o for o in offers if o.in_stock] or offers
        big = max(in_stock, key=lambda o: o.memory_gb)
        where = "in stock" if big.in_stock else "offered"
        return (
            f"No GPU with at least {need} fits: the largest {where} is {big.display_name} "
            f"({big.memory_gb:g} GB). Shard across more GPUs or pick a smaller model."
        )
    count = fitting[0].gpu_count
    available = [
        o
        for o in fitting
        if o.in_stock and (o.max_gpu_count is None or o.gpu_count <= o.max_gpu_count)
    ]
    if not available:
        gone = ", ".join(sorted({o.display_name for o in fitting}))
        return f"No GPU with at least {need} is in stock for {count} GPU(s) per pod: {gone}."
    matching = [o for o in available if wanted in o.search_name]
    if not matching:
        names = sorted({o.display_name for o in available})
        listed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"--gpu-type {gpu_type!r} matches nothing that fits ({need} or more): try {listed}."
    priced = [o for o in matching if o.price_per_hour is not None]
    cap = f"--max-price ${max_price or 0:.2f}/h"
    if not priced:
        return f"{cap} cannot be checked: no GPU that fits has a known price."
    best = min(priced, key=_price_key)
    return (
        f"All GPUs that fit cost more than {cap}: the cheapest is {best.label} "
        f"at ${best.price_per_hour or 0:.2f}/h."
    )
