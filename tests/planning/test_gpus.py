"""GPU choice over a catalog built from Runpod's real GPU type ids (docs/runpod.md)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.planning.test_vram import QWEN_7B_CONFIG
from thinnka.errors import PreflightError
from thinnka.options import RunOptions
from thinnka.planning.facts import ModelContext
from thinnka.planning.gpus import GpuOffer, Strategy, choose, explain
from thinnka.planning.stacks import stack_for
from thinnka.planning.training import plan_training
from thinnka.planning.vram import ModelFacts, estimate, shape_for

# (id, displayName, memoryInGb, illustrative $/GPU-hour, stockStatus)
CATALOG_ROWS: list[tuple[str, str, float, float | None, str | None]] = [
    ("NVIDIA GeForce RTX 4090", "RTX 4090", 24, 0.69, "High"),
    ("NVIDIA GeForce RTX 5090", "RTX 5090", 32, 0.94, "Medium"),
    ("NVIDIA RTX A5000", "RTX A5000", 24, 0.27, "High"),
    ("NVIDIA RTX A6000", "RTX A6000", 48, 0.49, "High"),
    ("NVIDIA A40", "A40", 48, 0.40, "Low"),
    ("NVIDIA L4", "L4", 24, 0.43, "High"),
    ("NVIDIA L40", "L40", 48, 0.99, "Medium"),
    ("NVIDIA L40S", "L40S", 48, 0.86, "Medium"),
    ("NVIDIA RTX 6000 Ada Generation", "RTX 6000 Ada", 48, 0.77, "High"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe", 80, 1.64, "High"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM", 80, 1.74, "Medium"),
    ("NVIDIA H100 PCIe", "H100 PCIe", 80, 2.39, "Low"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 2.69, "High"),
    ("NVIDIA H100 NVL", "H100 NVL", 94, 2.59, "Medium"),
    ("NVIDIA H200", "H200 SXM", 141, 3.59, "High"),
    ("NVIDIA H200 NVL", "NVIDIA H200 NVL", 143, 3.39, None),
    ("NVIDIA B200", "B200", 180, 5.99, "Low"),
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX PRO 6000", 96, 1.79, "High"),
    ("NVIDIA RTX PRO 4500 Blackwell", "RTX PRO 4500", 32, None, None),
    ("AMD Instinct MI300X OAM", "MI300X", 192, 2.49, "Low"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2 32GB", 32, 0.29, "Medium"),
]


def catalog(count: int = 1, changes: dict[str, dict[str, Any]] | None = None) -> list[GpuOffer]:
    """Offers for ``count`` GPUs; ``changes`` maps a GPU id to field overrides."""
    offers = []
    for gpu_id, name, memory, price, stock in CATALOG_ROWS:
        offer = GpuOffer(gpu_id, name, memory, count, price, stock, max_gpu_count=8)
        offers.append(dataclasses.replace(offer, **(changes or {}).get(gpu_id, {})))
    return offers


def ids(offers: list[GpuOffer]) -> list[str]:
    return [o.id for o in offers]


# ------------------------------------------------------------------ GpuOffer
def test_offer_properties() -> None:
    h100 = GpuOffer("NVIDIA H100 80GB HBM3", "H100 SXM", 80, 4, 2.69, "High", 8)
    assert h100.in_stock
    assert h100.price_per_hour == pytest.approx(10.76)
    assert h100.family == "H100 SXM"  # "sxm" only in the displayName
    assert h100.label == "4× H100 SXM"
    assert GpuOffer("NVIDIA L40S", "L40S", 48).label == "L40S"
    assert not GpuOffer("NVIDIA L40S", "L40S", 48, stock=None).in_stock
    assert not GpuOffer("NVIDIA L40S", "L40S", 48, stock="None").in_stock
    assert GpuOffer("NVIDIA L40S", "L40S", 48).price_per_hour is None


def test_families_match_like_the_original() -> None:
    families = {o.id: o.family for o in catalog() if o.family}
    assert families == {
        "NVIDIA L40S": "L40S",
        "NVIDIA A100-SXM4-80GB": "A100 SXM",
        "NVIDIA H100 80GB HBM3": "H100 SXM",
    }  # not L40, A100 PCIe, H100 PCIe/NVL, H200 SXM or V100 SXM2


# ------------------------------------------------------------------ priority
def test_priority_keeps_family_order_then_others_by_price() -> None:
    chosen = ids(choose(catalog(), 40))
    assert chosen[:3] == ["NVIDIA L40S", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]
    # Then every other fitting, in-stock GPU by price (H200 NVL is out of stock).
    assert chosen[3:] == [
        "NVIDIA A40",
        "NVIDIA RTX A6000",
        "NVIDIA RTX 6000 Ada Generation",
        "NVIDIA L40",
        "NVIDIA A100 80GB PCIe",
        "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        "NVIDIA H100 PCIe",
        "NVIDIA H100 NVL",
        "NVIDIA H200",
        "NVIDIA B200",
    ]


def test_priority_skips_families_that_are_too_small() -> None:
    chosen = ids(choose(catalog(), 60))
    assert chosen[:2] == ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]
    assert "NVIDIA L40S" not in chosen
    assert all(o.memory_gb >= 60 for o in choose(catalog(), 60))


def test_cheapest_orders_everything_by_price() -> None:
    chosen = choose(catalog(), 20, strategy="cheapest")
    assert chosen[0].id == "NVIDIA RTX A5000"
    prices = [o.price_per_hour for o in chosen]
    assert prices == sorted(prices)  # type: ignore[type-var]
    assert "NVIDIA RTX PRO 4500 Blackwell" not in ids(chosen)  # out of stock


def test_price_ties_go_to_more_memory_and_unknown_price_sorts_last() -> None:
    offers = [
        GpuOffer("NVIDIA L4", "L4", 24, 1, 0.5, "High"),
        GpuOffer("NVIDIA A40", "A40", 48, 1, 0.5, "High"),
        GpuOffer("NVIDIA L40", "L40", 48, 1, None, "High"),
        GpuOffer("NVIDIA RTX A6000", "RTX A6000", 48, 1, 0.7, "High"),
    ]
    assert ids(choose(offers, 10, strategy="cheapest")) == [
        "NVIDIA A40",
        "NVIDIA L4",
        "NVIDIA RTX A6000",
        "NVIDIA L40",
    ]
    family = [GpuOffer("NVIDIA L40S", "L40S", 48, 1, None, "High"), offers[0]]
    # In priority mode the family still comes first, whatever its price.
    assert ids(choose(family, 10)) == ["NVIDIA L40S", "NVIDIA L4"]


def test_gpu_count_multiplies_price_and_respects_max_per_pod() -> None:
    offers = catalog(4, {"NVIDIA L40S": {"max_gpu_count": 2}})
    chosen = choose(offers, 40, strategy="cheapest")
    assert "NVIDIA L40S" not in ids(chosen)
    assert chosen[0].price_per_hour == pytest.approx(4 * 0.40)
    verdict = next(v for v in explain(offers, 40) if v.offer.id == "NVIDIA L40S")
    assert not verdict.kept and verdict.reason == "at most 2 per pod"


# ------------------------------------------------------------------ filters
def test_out_of_stock_is_skipped() -> None:
    offers = catalog(1, {"NVIDIA L40S": {"stock": None, "price_per_gpu_hour": None}})
    chosen = ids(choose(offers, 40))
    assert chosen[:2] == ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]
    assert "NVIDIA L40S" not in chosen and "NVIDIA H200 NVL" not in chosen


def test_gpu_type_is_a_substring_filter_over_all_fitting_gpus() -> None:
    # Unlike the original, a GPU outside the three families can be asked for.
    assert ids(choose(catalog(), 20, gpu_type="4090")) == ["NVIDIA GeForce RTX 4090"]
    assert ids(choose(catalog(), 20, gpu_type="  RTX 4090 ")) == ["NVIDIA GeForce RTX 4090"]
    # Matches the id as well as the display name, case-insensitively.
    assert ids(choose(catalog(), 40, gpu_type="hbm3")) == ["NVIDIA H100 80GB HBM3"]
    h100 = ids(choose(catalog(), 40, gpu_type="H100"))
    assert h100 == ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H100 NVL"]
    assert ids(choose(catalog(), 40, gpu_type="sxm", strategy="cheapest")) == [
        "NVIDIA A100-SXM4-80GB",
        "NVIDIA H100 80GB HBM3",
        "NVIDIA H200",
    ]


def test_gpu_type_does_not_bypass_the_memory_rule() -> None:
    with pytest.raises(PreflightError) as err:
        choose(catalog(), 30.5, gpu_type="4090")
    assert err.value.reason == "no_gpu_fits"
    assert "--gpu-type '4090' matches nothing that fits (30.5 GB or more)" in str(err.value)


def test_max_price_caps_the_total_for_the_count() -> None:
    chosen = choose(catalog(2), 40, max_price=1.0, strategy="cheapest")
    assert ids(chosen) == ["NVIDIA A40", "NVIDIA RTX A6000"]  # 0.80 and 0.98 for two
    assert all((o.price_per_hour or 0) <= 1.0 for o in chosen)
    unknown = [GpuOffer("NVIDIA L40S", "L40S", 48, 1, None, "High")]
    verdict = explain(unknown, 40, max_price=5)[0]
    assert not verdict.kept and "price unknown" in verdict.reason


# ------------------------------------------------------------------ errors
def test_nothing_big_enough() -> None:
    with pytest.raises(PreflightError) as err:
        choose(catalog(), 250)
    message = str(err.value)
    assert err.value.reason == "no_gpu_fits"
    assert message.startswith("No GPU with at least 250.0 GB fits")
    assert "largest in stock is B200 (180 GB)" in message  # not the AMD MI300X


def test_everything_that_fits_is_out_of_stock() -> None:
    gone = ("NVIDIA H200", "NVIDIA B200")
    offers = catalog(1, {gpu_id: {"stock": None} for gpu_id in gone})
    with pytest.raises(PreflightError) as err:
        choose(offers, 120)
    assert "is in stock" in str(err.value)
    assert str(err.value).endswith("per pod: B200, H200 SXM, NVIDIA H200 NVL.")


def test_everything_costs_more_than_max_price() -> None:
    with pytest.raises(PreflightError) as err:
        choose(catalog(8), 40, max_price=2.0)
    message = str(err.value)
    assert "cost more than --max-price $2.00/h" in message
    assert "the cheapest is 8× A40 at $3.20/h" in message


def test_empty_catalog() -> None:
    with pytest.raises(PreflightError, match="no GPU types"):
        choose([], 10)
    amd = [GpuOffer("AMD Instinct MI300X OAM", "MI300X", 192, 1, 2.49, "High")]
    with pytest.raises(PreflightError, match="no GPU types that the training stack can use"):
        choose(amd, 10)


def test_gpus_the_stack_cannot_use_are_skipped() -> None:
    verdicts = {v.offer.id: v for v in explain(catalog(), 10, strategy="cheapest")}
    assert not verdicts["AMD Instinct MI300X OAM"].kept
    assert "AMD" in verdicts["AMD Instinct MI300X OAM"].reason
    assert verdicts["Tesla V100-SXM2-32GB"].reason == "not usable: Volta has no bf16"
    # Asking for one by name says why it cannot be used, not just "no match".
    with pytest.raises(PreflightError, match="--gpu-type 'v100': V100 SXM2 32GB is not usable"):
        choose(catalog(), 10, gpu_type="v100")


# ------------------------------------------------------------------ explain
def test_explain_gives_a_verdict_per_offer() -> None:
    offers = catalog(1, {"NVIDIA A40": {"stock": None}})
    verdicts = explain(offers, 40, gpu_type="sxm", max_price=2.0)
    assert len(verdicts) == len(offers)
    kept = [v for v in verdicts if v.kept]
    assert [(v.offer.id, v.rank) for v in kept] == [("NVIDIA A100-SXM4-80GB", 1)]
    assert ids([v.offer for v in kept]) == ids(choose(offers, 40, gpu_type="sxm", max_price=2.0))
    reasons = {v.offer.id: v.reason for v in verdicts}
    assert reasons["NVIDIA A100-SXM4-80GB"] == "priority family A100 SXM, $1.74/h"
    assert reasons["NVIDIA GeForce RTX 4090"] == "24 GB < 40.0 GB needed"
    assert reasons["NVIDIA A40"] == "out of stock for 1 GPU(s)"
    assert reasons["NVIDIA L40S"] == "does not match --gpu-type 'sxm'"
    assert reasons["NVIDIA H100 80GB HBM3"] == "$2.69/h > --max-price $2.00/h"
    assert all(v.rank is None for v in verdicts if not v.kept)


def test_explain_lists_kept_offers_first_in_order() -> None:
    verdicts = explain(catalog(), 40)
    kept = [v for v in verdicts if v.kept]
    assert verdicts[: len(kept)] == kept
    assert [v.rank for v in kept] == list(range(1, len(kept) + 1))
    assert ids([v.offer for v in kept]) == ids(choose(catalog(), 40))
    assert kept[3].reason == "by price, $0.40/h"  # the A40, first after the families
    cheapest = explain(catalog(), 40, strategy="cheapest")
    assert cheapest[0].reason == "by price, $0.40/h"


# ------------------------------------------------------------------ golden plans
# Golden plans: (model, mode, GPU count, price table) → chosen GPU and $/h, offline.
QWEN_7B = ModelFacts.from_hub(7_615_616_512, None, [], QWEN_7B_CONFIG)


@pytest.mark.parametrize(
    "options,strategy,first,price",
    [
        # GRPO default: LoRA on a bf16 base with colocated vLLM, on ONE GPU. vLLM's own
        # 15.2 GB copy must fit TRL's 0.3 share, so 48 GB cards are out.
        (RunOptions(), "priority", "A100 SXM", 1.74),
        (RunOptions(), "cheapest", "A100 PCIe", 1.64),
        # GRPO --no-vllm: QLoRA, small.
        (RunOptions(use_vllm=False), "cheapest", "RTX A5000", 0.27),
        # GRPO --shard-model: full fine-tune, ZeRO-3 over 8 GPUs; the vLLM share still
        # decides.
        (RunOptions(gpu_count=8, shard_model=True), "priority", "8× A100 SXM", 13.92),
        (RunOptions(gpu_count=8, shard_model=True), "cheapest", "8× A100 PCIe", 13.12),
        # With vLLM on a GPU of its own (server mode, 7 training processes) 48 GB fits.
        (
            RunOptions(gpu_count=8, shard_model=True, vllm_mode="server"),
            "priority",
            "8× L40S",
            6.88,
        ),
        (RunOptions(gpu_count=8, shard_model=True, vllm_mode="server"), "cheapest", "8× A40", 3.20),
        # SFT QLoRA on one GPU: small, the cheapest CUDA card with bf16 wins.
        (RunOptions(sft=True), "priority", "L40S", 0.86),
        (RunOptions(sft=True), "cheapest", "RTX A5000", 0.27),
    ],
)
def test_golden_plans(options: RunOptions, strategy: Strategy, first: str, price: float) -> None:
    plan = plan_training(options, ModelContext(hub_model_id="me/x", has_chat_template=True))
    need = estimate(QWEN_7B, shape_for(plan)).required_gb()
    chosen = choose(
        catalog(options.gpu_count), need, strategy=strategy, support=stack_for("openr1").gpus
    )
    assert chosen[0].label == first
    assert chosen[0].price_per_hour == pytest.approx(price)
