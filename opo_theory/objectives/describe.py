"""What `opo-theory objectives [NAME]` prints, read from the registry: each objective's summary (its
formula), its loss function's docstring, and its config dataclass (fields, defaults, per-field help from
``field(metadata={"help": ...})`` where a field has one, the class docstring otherwise)."""

from __future__ import annotations

import dataclasses
import inspect

from opo_theory.objectives.registry import available, get
from opo_theory.settings import show_value


def _field_type(f: dataclasses.Field) -> str:
    """The annotation as written ('Any' for alpha/mu: a float, or a [B] tensor in vectorized grids)."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return "float" if t == "Any" else t


def field_help(cls: type, key: str) -> str:
    """The help of field ``key`` of config class ``cls``: its own, or (a subclass that only changes the default,
    e.g. DAPO's eps_high) the nearest base class's."""
    for base in cls.__mro__:
        f = getattr(base, "__dataclass_fields__", {}).get(key)
        if f is not None and f.metadata.get("help"):
            return f.metadata["help"]
    return ""


def hyperparameter_rows(name: str) -> list[tuple[str, object, str, str]]:
    """(key, default, type, one-line help) for each field of objective ``name``'s config."""
    spec = get(name)
    defaults = spec.make_config()
    return [(f.name, getattr(defaults, f.name), _field_type(f), field_help(spec.config_cls, f.name))
            for f in dataclasses.fields(spec.config_cls)]


def overview() -> str:
    """One line per registered objective: name, kind, summary (with its formula), hyperparameter names."""
    names = available()
    width = max(map(len, names))
    lines = [f"{'objective':{width}}  {'kind':10}  summary (formula); hyperparameters: opo-theory objectives NAME"]
    for name in names:
        spec = get(name)
        lines.append(f"{name:{width}}  {spec.kind:10}  {spec.summary}")
    lines.append("\nset a hyperparameter with --set objective.KEY=VALUE (train, compare) or "
                 "--set objective.NAME.KEY=VALUE (bandit dynamics)")
    return "\n".join(lines)


def describe(name: str) -> str:
    """Objective ``name`` in full: summary, loss docstring, config docstring, and a table of its fields."""
    spec = get(name)
    lines = [f"{name} ({spec.kind}): {spec.summary}"]
    loss_doc = inspect.getdoc(spec.fn)
    if loss_doc:
        lines += ["", "loss: " + loss_doc]
    cls_doc = inspect.getdoc(spec.config_cls)
    if cls_doc and not cls_doc.startswith(spec.config_cls.__name__ + "("):     # not dataclass's generated doc
        lines += ["", f"config ({spec.config_cls.__name__}): " + cls_doc]
    rows = [(k, show_value(v), t, h) for k, v, t, h in hyperparameter_rows(name)]
    kw, vw, tw = (max(len(r[i]) for r in [("key", "default", "type"), *rows]) for i in range(3))
    lines += ["", f"{'key':{kw}}  {'default':{vw}}  {'type':{tw}}  meaning", *(
        f"{k:{kw}}  {v:{vw}}  {t:{tw}}  {h}".rstrip() for k, v, t, h in rows)]
    lines.append(f"\nset with --set objective.KEY=VALUE (train, compare) or --set objective.{name}.KEY=VALUE (bandit)")
    return "\n".join(lines)
