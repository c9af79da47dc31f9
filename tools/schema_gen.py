"""Generate the recipe-key whitelists under ``recipes/schema/``: an offline tool, kept out of
the runtime package. Run from the repository root: ``python tools/schema_gen.py --regenerate``.

Two sources, because the two trainers run different TRL versions:

* trainer ``trl``: the TRL installed next to thinnka (it must be ``TRL_PIN``, the version the
  pod installs). The fields come from ``dataclasses.fields()`` of the very classes TRL's own
  ``trl/scripts/{sft,grpo}.py`` hand to ``TrlParser``, so the whitelist is what that parser
  accepts. ``tests/planning/test_schema.py`` repeats this and fails when the file is stale.
* trainer ``openr1``: TRL 0.18.0 and transformers 4.52.3 cannot be installed next to thinnka's
  own stack, so their wheels (``pip download --no-deps trl==0.18.0 transformers==4.52.3``) are
  read as source with ``ast`` (nothing imported), and Open R1's own arguments come from the
  hand-kept ``recipes/schema/openr1_own_args.json`` (read from Open R1 at ``OPENR1_REF``).

Types are stored as compact strings (``"float"``, ``"str?"``, ``"list|str?"``...) that
``schema.coerce`` understands; see ``recipes/schema/README.md``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import json
import types
import typing
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from thinnka.planning.versions import OPENR1_REF, OPENR1_STACK, TRL_PIN
from thinnka.resources import resource_dir

__all__ = ["build_openr1", "build_trl", "main", "normalize_type", "write_all"]

# PEFT takes the string "all-linear" for target modules, but ModelConfig types the field as a
# list; without this the override parser would turn "all-linear" into ["all-linear"].
_TYPE_OVERRIDES = {"lora_target_modules": "list|str?"}
_ATOMS = ("bool", "int", "float", "str", "list", "dict", "any")


# ----------------------------------------------------------------- type normalisation
def _compose(atoms: Iterable[str], optional: bool) -> str:
    seen = [a for a in _ATOMS if a in set(atoms)] or ["any"]
    if "any" in seen:
        seen = ["any"]
    return "|".join(seen) + ("?" if optional else "")


def normalize_type(tp: Any) -> tuple[str, list[Any] | None]:
    """A live annotation (a type object) → (compact type string, Literal choices or None)."""
    atoms: list[str] = []
    choices: list[Any] = []
    optional = False

    def walk(t: Any) -> None:
        nonlocal optional
        origin = typing.get_origin(t)
        if t is type(None) or t is None:
            optional = True
        elif origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(t):
                walk(arg)
        elif origin is typing.Literal:
            atoms.append("str")
            choices.extend(typing.get_args(t))
        elif t in (list, tuple) or origin in (list, tuple):
            atoms.append("list")
        elif t is dict or origin is dict:
            atoms.append("dict")
        elif t in (bool, int, float, str):
            atoms.append(t.__name__)
        elif isinstance(t, type) and issubclass(t, enum.Enum):
            atoms.append("str")
        else:
            atoms.append("any")

    walk(tp)
    return _compose(atoms, optional), (choices or None)


def normalize_annotation(node: ast.expr) -> str:
    """A source annotation (``Optional[Union[dict, str]]``...) → compact type string."""
    atoms: list[str] = []
    optional = False

    def name_of(n: ast.expr) -> str:
        if isinstance(n, ast.Name):
            return n.id
        if isinstance(n, ast.Attribute):
            return n.attr
        if isinstance(n, ast.Constant) and n.value is None:
            return "None"
        return ""

    def walk(n: ast.expr) -> None:
        nonlocal optional
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            walk(n.left)
            walk(n.right)
            return
        if isinstance(n, ast.Subscript):
            head = name_of(n.value)
            inner = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            if head == "Optional":
                optional = True
                walk(inner[0])
            elif head == "Union":
                for item in inner:
                    walk(item)
            elif head in ("list", "List", "tuple", "Tuple"):
                atoms.append("list")
            elif head in ("dict", "Dict"):
                atoms.append("dict")
            elif head == "Literal":
                atoms.append("str")
            else:
                atoms.append("any")
            return
        name = name_of(n)
        if name == "None":
            optional = True
        elif name in ("bool", "int", "float", "str"):
            atoms.append(name)
        elif name in ("list", "List", "tuple"):
            atoms.append("list")
        elif name in ("dict", "Dict"):
            atoms.append("dict")
        elif name.endswith(("Strategy", "Type", "Names", "Option", "Mode")):
            # transformers' ExplicitEnum classes: the parser accepts their string values.
            atoms.append("str")
        else:
            atoms.append("any")

    walk(node)
    return _compose(atoms, optional)


def _entry(type_str: str, choices: Iterable[Any] | None) -> str | dict[str, Any]:
    # Only all-string choice lists are kept: a few metadata entries hold placeholders (False).
    kept = list(choices or ())
    if kept and all(isinstance(c, str) for c in kept):
        return {"type": type_str, "choices": kept}
    return type_str


# ----------------------------------------------------------------- trainer "trl" (live)
def _trl_classes(mode: str) -> list[type]:
    from trl import DatasetMixtureConfig, GRPOConfig, ModelConfig, ScriptArguments, SFTConfig
    from trl.scripts.grpo import GRPOScriptArguments

    if mode == "grpo":
        return [GRPOScriptArguments, GRPOConfig, ModelConfig, DatasetMixtureConfig]
    return [ScriptArguments, SFTConfig, ModelConfig, DatasetMixtureConfig]


def build_trl(mode: str) -> dict[str, Any]:
    """The whitelist of the installed TRL for ``mode`` (the classes of trl/scripts/<mode>.py)."""
    import transformers
    import trl

    if trl.__version__ != TRL_PIN:
        raise RuntimeError(f"installed trl is {trl.__version__}; the whitelist is for {TRL_PIN}")
    hints: dict[str, Any] = {}
    for cls in _trl_classes(mode):
        resolved = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.init and f.name not in hints:
                hints[f.name] = (resolved.get(f.name, f.type), f.metadata.get("choices"))
    keys: dict[str, Any] = {}
    for name, (tp, meta_choices) in sorted(hints.items()):
        type_str, literal_choices = normalize_type(tp)
        keys[name] = _entry(_TYPE_OVERRIDES.get(name, type_str), meta_choices or literal_choices)
    classes = [c.__name__ for c in _trl_classes(mode)]
    return {
        "_source": (
            f"Generated by `python tools/schema_gen.py --regenerate` from the installed "
            f"trl=={trl.__version__} / transformers=={transformers.__version__}: "
            f"dataclasses.fields() of {', '.join(classes)} (what trl/scripts/{mode}.py parses)."
        ),
        "trainer": "trl",
        "mode": mode,
        "keys": keys,
    }


# ----------------------------------------------------------------- trainer "openr1" (wheels)
_OPENR1_SOURCES = {
    # (wheel, file, class) in MRO order: a subclass's field wins over its parent's.
    "grpo": [
        ("trl", "trl/scripts/utils.py", "ScriptArguments"),
        ("trl", "trl/trainer/grpo_config.py", "GRPOConfig"),
        ("transformers", "transformers/training_args.py", "TrainingArguments"),
        ("trl", "trl/trainer/model_config.py", "ModelConfig"),
    ],
    "sft": [
        ("trl", "trl/scripts/utils.py", "ScriptArguments"),
        ("trl", "trl/trainer/sft_config.py", "SFTConfig"),
        ("transformers", "transformers/training_args.py", "TrainingArguments"),
        ("trl", "trl/trainer/model_config.py", "ModelConfig"),
    ],
}


def _class_fields(source: str, class_name: str) -> dict[str, str | dict[str, Any]]:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            break
    else:
        raise RuntimeError(f"class {class_name} not found")
    fields: dict[str, str | dict[str, Any]] = {}
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        name = stmt.target.id
        choices = None
        if isinstance(stmt.value, ast.Call):
            kwargs = {k.arg: k.value for k in stmt.value.keywords}
            init = kwargs.get("init")
            if isinstance(init, ast.Constant) and init.value is False:
                continue
            meta = kwargs.get("metadata")
            if isinstance(meta, ast.Dict):
                for k, v in zip(meta.keys, meta.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value == "choices":
                        try:
                            choices = ast.literal_eval(v)
                        except ValueError:  # computed choices (e.g. from an enum): not checked
                            choices = None
        if name.startswith("_"):
            continue
        fields[name] = _entry(normalize_annotation(stmt.annotation), choices)
    return fields


def build_openr1(
    mode: str, trl_wheel: Path, transformers_wheel: Path, own_args: dict[str, Any]
) -> dict[str, Any]:
    """The Open R1 whitelist: TRL 0.18 + transformers 4.52.3 (read from wheels) + Open R1's own."""
    wheels = {
        "trl": zipfile.ZipFile(trl_wheel),
        "transformers": zipfile.ZipFile(transformers_wheel),
    }
    keys: dict[str, Any] = {}
    for wheel, path, cls in _OPENR1_SOURCES[mode]:
        for name, entry in _class_fields(wheels[wheel].read(path).decode(), cls).items():
            keys.setdefault(name, entry)
    for group in own_args[mode]:
        keys.update(own_args["classes"][group])
    for name, override in _TYPE_OVERRIDES.items():
        if name in keys:
            keys[name] = override
    return {
        "_source": (
            "Generated by `python tools/schema_gen.py --regenerate-openr1` from the "
            f"wheels "
            f"trl=={OPENR1_STACK['trl']} and transformers=={OPENR1_STACK['transformers']} "
            f"(dataclass fields read with ast) plus recipes/schema/openr1_own_args.json "
            f"(huggingface/open-r1 @ {OPENR1_REF}, src/open_r1/configs.py)."
        ),
        "trainer": "openr1",
        "mode": mode,
        "keys": dict(sorted(keys.items())),
    }


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def write_all(
    schema_dir: Path,
    *,
    trl: bool = True,
    trl_wheel: Path | None = None,
    transformers_wheel: Path | None = None,
) -> list[Path]:
    """Rewrite the whitelist files that the given sources allow; returns the paths written."""
    written: list[Path] = []
    if trl:
        for mode in ("grpo", "sft"):
            path = schema_dir / f"trl_{mode}.json"
            path.write_text(dump(build_trl(mode)))
            written.append(path)
    if trl_wheel and transformers_wheel:
        own = json.loads((schema_dir / "openr1_own_args.json").read_text())
        for mode in ("grpo", "sft"):
            path = schema_dir / f"openr1_{mode}.json"
            path.write_text(dump(build_openr1(mode, trl_wheel, transformers_wheel, own)))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/schema_gen.py",
        description="Rewrite the recipe-key whitelists under recipes/schema/.",
    )
    parser.add_argument(
        "--regenerate",
        action="store_true",
        help="rewrite trl_{grpo,sft}.json from the installed TRL",
    )
    parser.add_argument(
        "--regenerate-openr1",
        action="store_true",
        help="rewrite openr1_{grpo,sft}.json from TRL 0.18 / transformers 4.52.3 wheels",
    )
    parser.add_argument("--trl-wheel", type=Path, help="path of trl-0.18.0-py3-none-any.whl")
    parser.add_argument(
        "--transformers-wheel", type=Path, help="path of transformers-4.52.3-py3-none-any.whl"
    )
    args = parser.parse_args(argv)
    if args.regenerate_openr1 and not (args.trl_wheel and args.transformers_wheel):
        parser.error("--regenerate-openr1 needs --trl-wheel and --transformers-wheel")
    if not (args.regenerate or args.regenerate_openr1):
        parser.error("nothing to do: pass --regenerate and/or --regenerate-openr1")
    written = write_all(
        resource_dir("recipes") / "schema",
        trl=args.regenerate,
        trl_wheel=args.trl_wheel if args.regenerate_openr1 else None,
        transformers_wheel=args.transformers_wheel if args.regenerate_openr1 else None,
    )
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
