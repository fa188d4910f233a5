"""The claims file (``firm_bench/paper/claims.yaml``): its vocabulary, validation and expansion.

:func:`load_claims` reads the file, expands every entry's ``each`` into claims,
validates each (:class:`ClaimsError` names the file, the claim id and the key)
and adds the untrained-encoder checks the claims ask for (``untrained``). The
file's header documents every key; :data:`STATISTICS` what each statistic
measures.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from firm_bench.core.facts import CONFIG_NAMES
from firm_bench.core.facts.datasets import DATASETS
from firm_bench.core.facts.method import uses_k
from firm_bench.paper.labels import default_k

#: the packaged claims file (package data of firm_bench.paper, like reported_results.csv)
CLAIMS_PATH = Path(str(resources.files("firm_bench") / "paper" / "claims.yaml"))

KINDS = ("ordering", "not_greater", "not_less", "collapse", "convergence", "stability", "plateau", "vs_reported",
         "interaction", "table_ordering", "learns")
DIRECTIONS = (">", "<", "<=", ">=")
EFFECTS = ("difference", "relative")
UNITS = ("points", "relative_pct", "epochs")
#: the untrained-encoder baseline (``baseline: untrained``): the summaries' untrained_auroc of the same rows
UNTRAINED = "untrained"
LEARNS_GROUP = "Does each loss learn? Trained vs untrained encoder (our checks)"


class ClaimsError(ValueError):
    """A claims file that does not validate: names the file, the claim id and the key (``problems``: every one)."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.problems = list(problems) or [message]


def problems_error(where: str, problems: Sequence[str]) -> ClaimsError:
    """One error listing every problem of a claims file (each already names its claim and key)."""
    if len(problems) == 1:
        return ClaimsError(problems[0], problems)
    return ClaimsError(f"{where}: {len(problems)} problems (fix them all, or run with --partial to evaluate the "
                       "other claims):\n  - " + "\n  - ".join(problems), problems)


@dataclass(frozen=True)
class StatisticSpec:
    """What a claim compares per unit: its source and unit."""

    name: str
    source: Literal["summary", "curve", "pair"]
    unit: Literal["points", "epochs"]
    doc: str


STATISTICS: Mapping[str, StatisticSpec] = {s.name: s for s in (
    StatisticSpec("auroc", "summary", "points", "the cell's AUROC (summary auroc x 100)"),
    StatisticSpec("aulc", "summary", "points", "the run's area under the learning curve (summary aulc x 100)"),
    StatisticSpec("peak_drop", "curve", "points", "max AUROC - last AUROC of the run's learning curve"),
    StatisticSpec("gain_after", "curve", "points",
                  "last AUROC - AUROC at the evaluated epoch nearest to params.at x the last epoch"),
    StatisticSpec("wiggle", "curve", "points",
                  "(sum |dAUROC| - |last - first|) / (n - 1): movement per evaluation that is not progress"),
    StatisticSpec("epochs_to_target", "pair", "epochs",
                  "first evaluated epoch reaching side b's last AUROC of the same unit "
                  "(never: last epoch + one evaluation interval, censored)"),
)}
_PARAMS = {"gain_after": {"at": 0.2}}

#: what a side selects unless the claims file's ``defaults`` or the side say otherwise (claims.yaml repeats them)
SIDE_DEFAULTS: Mapping[str, Any] = {"cls": "all", "outliers": "rot", "variant": "base", "score": "cos", "k": None,
                                    "evalset": "test"}
_SIDE_KEYS = {"dataset", "cls", "loss", "outliers", "variant", "score", "k", "evalset", "mean_over", "baseline"}
_CONSTANT_KEYS = {"reported", "value", "why"}
_CLAIM_KEYS = {"id", "group", "kind", "quote", "source", "statistic", "params", "effect", "a", "b", "vs",
               "direction", "margin", "paper", "stated", "untrained", "note", "each"}
_REQUIRED = ("id", "group", "kind", "quote", "source", "statistic", "effect", "a", "b", "direction")
_PAPER_SIDE_KEYS = {"table", "score", "cls", "outliers", "method"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Side:
    """One side of a claim: a selector of our cells, or a constant (``reported`` / ``value``).

    ``cls`` is ``"all"`` (every class of the dataset) or class ids (strings, the
    summaries' ``cls``); ``outliers`` and ``evalset`` are tuples (any of them).
    ``k`` is resolved (the run schema's ``eval.k`` for k-NN scores, None for
    the others). ``reported`` is the cell of reported_results.csv as sorted
    (key, value) pairs.
    """

    dataset: str | None = None
    cls: str | tuple[str, ...] = "all"
    loss: str | None = None
    outliers: tuple[str, ...] = ("rot",)
    variant: str = "base"
    score: str = "cos"
    k: int | None = None
    evalset: tuple[str, ...] = ("test",)
    mean_over: str | None = None
    baseline: str | None = None
    reported: tuple[tuple[str, Any], ...] | None = None
    value: float | None = None
    why: str | None = None

    @property
    def constant(self) -> bool:
        return self.reported is not None or self.value is not None

    def describe(self, score: bool = True) -> str:
        """The side in words: 'cifar10 firm (rot) cos k=5 class 3' (``score``: name the score; AUROC claims)."""
        if self.value is not None:
            return f"{self.value:g} ({self.why})" if self.why else f"{self.value:g}"
        if self.reported is not None:
            r = dict(self.reported)
            return f"reported {r.get('method') or r.get('loss')} (Table {r.get('table')})"
        parts = [str(self.dataset), str(self.loss), f"({'/'.join(self.outliers)})"]
        if score:
            parts.append(self.score + (f" k={self.k}" if self.k is not None else ""))
        if self.baseline:
            parts.append(f"[{self.baseline} encoder]")
        if self.variant != "base":
            parts.append(f"variant {self.variant}")
        if self.evalset != ("test",):
            parts.append("vs " + "/".join(self.evalset))
        elif self.cls != "all":
            parts.append("class " + "/".join(self.cls))
        if self.mean_over:
            parts.append(f"mean over {self.mean_over}")
        return " ".join(parts)


@dataclass(frozen=True)
class Claim:
    """One testable claim (an expanded entry of the claims file)."""

    id: str
    group: str
    kind: str
    quote: str
    source: str
    statistic: str
    effect: str
    a: Side
    b: Side
    direction: str
    margin: float | None = None
    vs: tuple[Side, Side] | None = None
    params: tuple[tuple[str, Any], ...] = ()
    paper: tuple[tuple[str, Any], ...] | None = None
    stated: tuple[tuple[str, Any], ...] | None = None
    untrained: tuple[str, ...] = ()
    note: str = ""
    derived_from: tuple[str, ...] = ()

    @property
    def alternative(self) -> Literal["greater", "less"]:
        """The claimed side of the boundary: a - b greater (">", ">=") or less ("<", "<=")."""
        return "greater" if self.direction in (">", ">=") else "less"

    @property
    def boundary(self) -> float:
        """theta0 of the tests: 0, +margin ("<=": a not more than margin above b), -margin (">=")."""
        if self.direction == "<=":
            return float(self.margin)
        if self.direction == ">=":
            return -float(self.margin)
        return 0.0

    @property
    def unit(self) -> str:
        return "relative_pct" if self.effect == "relative" else STATISTICS[self.statistic].unit

    def param(self, name: str) -> Any:
        return dict(self.params).get(name, _PARAMS.get(self.statistic, {}).get(name))

    def describe(self, role: str) -> str:
        """Side ``role`` (a, b) in words, naming the score only where the statistic is a score's AUROC."""
        return getattr(self, role).describe(score=self.statistic == "auroc")

    def sides(self) -> dict[str, Side]:
        """The selector sides by role: a, b (unless constant), vs_a, vs_b."""
        out = {"a": self.a}
        if not self.b.constant:
            out["b"] = self.b
        if self.vs:
            out["vs_a"], out["vs_b"] = self.vs
        return out


def _fail(where: str, cid: str | None, key: str | None, msg: str) -> ClaimsError:
    who = f"claim {cid!r}" if cid else "entry"
    return ClaimsError(f"{where}: {who}" + (f": key {key!r}" if key else "") + f": {msg}")


def _default_k() -> int:
    """k of the k-NN scores where a claim names none: ``eval.k`` of the run schema (the tables' k)."""
    return default_k()


def _check_name(kind: str, key: str, value: Any, where: str, cid: str, ckey: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, cid, ckey, f"{kind} must be a name, got {value!r}")
    valid = CONFIG_NAMES[key]
    if value not in valid:
        raise _fail(where, cid, ckey, f"unknown {kind} {value!r}; valid: {', '.join(valid)}")
    return value


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _parse_side(raw: Any, defaults: Mapping, role: str, *, statistic: str, where: str, cid: str,
                allow_constant: bool, k_default: int) -> Side:
    if not isinstance(raw, Mapping):
        raise _fail(where, cid, role, f"a side is a mapping of selector keys, got {raw!r}")
    keys = set(raw)
    if keys & _CONSTANT_KEYS:
        if not allow_constant:
            raise _fail(where, cid, role, "only side b may be a constant (reported / value)")
        unknown = keys - _CONSTANT_KEYS
        if unknown:
            raise _fail(where, cid, role, f"a constant side takes only {sorted(_CONSTANT_KEYS)}, not {sorted(unknown)}")
        if ("reported" in raw) == ("value" in raw):
            raise _fail(where, cid, role, "a constant side has exactly one of reported / value")
        if "value" in raw:
            if not isinstance(raw["value"], (int, float)) or isinstance(raw["value"], bool):
                raise _fail(where, cid, f"{role}.value", f"must be a number, got {raw['value']!r}")
            if not isinstance(raw.get("why"), str) or not raw["why"].strip():
                raise _fail(where, cid, f"{role}.why", "a constant value needs its reason (why)")
            return Side(value=float(raw["value"]), why=raw["why"])
        cell = raw["reported"]
        if not isinstance(cell, Mapping) or not {"table", "method"} <= set(cell):
            raise _fail(where, cid, f"{role}.reported", "needs table and method (the literature row's printed name)")
        bad = set(cell) - {"table", "method", "cls", "ood"}
        if bad:
            raise _fail(where, cid, f"{role}.reported", f"unknown key(s) {sorted(bad)}; valid: table, method, cls, ood")
        return Side(reported=tuple(sorted((str(k), str(v)) for k, v in cell.items())))
    unknown = keys - _SIDE_KEYS
    if unknown:
        raise _fail(where, cid, role, f"unknown selector key(s) {sorted(unknown)}; valid: {sorted(_SIDE_KEYS)}")
    s = {**defaults, **raw}
    if s.get("dataset") is None:
        raise _fail(where, cid, f"{role}.dataset", "every side names its dataset")
    dataset = _check_name("dataset", "dataset.name", s["dataset"], where, cid, f"{role}.dataset")
    entry = DATASETS[dataset]
    if entry.role != "one_class":
        raise _fail(where, cid, f"{role}.dataset", f"{dataset!r} is a {entry.role} set, not a training dataset")
    loss = _check_name("loss", "loss.name", s.get("loss"), where, cid, f"{role}.loss")
    outliers = _as_tuple(s.get("outliers"))
    for o in outliers:
        _check_name("outlier source", "outliers.name", o, where, cid, f"{role}.outliers")
    evalset = _as_tuple(s.get("evalset", "test"))
    for e in evalset:
        if e != "test":
            _check_name("OOD set", "dataset.name", e, where, cid, f"{role}.evalset")
    score = _check_name("score", "scores.names", s.get("score"), where, cid, f"{role}.score")
    mean_over = s.get("mean_over")
    if mean_over not in (None, "cls", "evalset"):
        raise _fail(where, cid, f"{role}.mean_over", f"must be cls or evalset, got {mean_over!r}")
    if len(evalset) > 1 and mean_over != "evalset":
        raise _fail(where, cid, f"{role}.evalset", "several OOD sets need mean_over: evalset")
    if mean_over == "evalset" and evalset == ("test",):
        raise _fail(where, cid, f"{role}.mean_over", "mean_over: evalset needs OOD sets (evalset: [...])")
    cls = s.get("cls", "all")
    if evalset != ("test",):
        if cls != "all":
            raise _fail(where, cid, f"{role}.cls", "OOD sets are scored on the unlabeled multiclass runs (cls all)")
    elif cls != "all":
        if not isinstance(cls, list) or not cls:
            raise _fail(where, cid, f"{role}.cls", f"all or a list of classes, got {cls!r}")
        try:
            cls = tuple(str(entry.class_id(c)) for c in cls)
        except ValueError as exc:
            raise _fail(where, cid, f"{role}.cls", str(exc)) from None
    baseline = s.get("baseline")
    if baseline not in (None, UNTRAINED):
        raise _fail(where, cid, f"{role}.baseline", f"only {UNTRAINED!r}, got {baseline!r}")
    if baseline and statistic != "auroc":
        raise _fail(where, cid, f"{role}.baseline", "the untrained encoder has an AUROC only (statistic: auroc)")
    spec = STATISTICS[statistic]
    if spec.source != "summary" and (evalset != ("test",) or mean_over):
        raise _fail(where, cid, role, f"learning-curve statistic {statistic!r} takes no OOD set and no mean_over")
    if spec.source == "pair" and mean_over:
        raise _fail(where, cid, role, f"{statistic!r} is a per-pair statistic: no mean_over")
    k = s.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise _fail(where, cid, f"{role}.k", f"a positive integer or null, got {k!r}")
    k = (k or k_default) if uses_k(score) else None
    variant = s.get("variant", "base")
    if not isinstance(variant, str) or not re.fullmatch(r"[A-Za-z0-9_.]+", variant):
        raise _fail(where, cid, f"{role}.variant", f"a workflow variant name (or base), got {variant!r}")
    return Side(dataset=dataset, cls=cls, loss=loss, outliers=outliers, variant=variant, score=score, k=k,
                evalset=evalset, mean_over=mean_over, baseline=baseline)


def _substitute(value: Any, inst: Mapping[str, Any]) -> Any:
    """``{name}`` of the instance in every string (a string that is exactly ``{name}`` takes the raw value)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in inst:
            return inst[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(inst[m.group(1)]) if m.group(1) in inst else m.group(0), value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, inst) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, inst) for v in value]
    return value


def _expand(entry: Mapping, where: str) -> list[dict]:
    """The instances of an entry with ``each`` (a mapping of lists: every combination; a list of mappings)."""
    each = entry.get("each")
    cid = str(entry.get("id"))
    body = {k: v for k, v in entry.items() if k != "each"}
    if each is None:
        return [body]
    if isinstance(each, Mapping):
        if not all(isinstance(v, list) and v for v in each.values()):
            raise _fail(where, cid, "each", "a mapping of non-empty lists, or a list of mappings")
        names = list(each)
        instances = [dict(zip(names, combo)) for combo in itertools.product(*(each[n] for n in names))]
    elif isinstance(each, list) and each and all(isinstance(i, Mapping) for i in each):
        instances = [dict(i) for i in each]
    else:
        raise _fail(where, cid, "each", "a mapping of non-empty lists, or a list of mappings")
    return [_substitute(body, inst) for inst in instances]


def _frozen(mapping: Mapping | None) -> tuple[tuple[str, Any], ...] | None:
    if mapping is None:
        return None
    return tuple(sorted((str(k), _freeze_value(v)) for k, v in mapping.items()))


def _freeze_value(v: Any) -> Any:
    if isinstance(v, Mapping):
        return _frozen(v)
    if isinstance(v, list):
        return tuple(_freeze_value(x) for x in v)
    return v


def _thaw(items: Any) -> Any:
    """A frozen mapping (sorted pairs) back to a dict, recursively."""
    if isinstance(items, tuple) and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in items):
        return {k: _thaw(v) for k, v in items}
    return items


def _matched(claim_sides: Mapping[str, Side], statistic: str) -> dict[str, bool]:
    """For each identity field: whether every selector side selects it alike (then units are matched on it)."""
    sides = list(claim_sides.values())
    curve = STATISTICS[statistic].source != "summary"
    fields = {
        "dataset": lambda s: s.dataset, "loss": lambda s: s.loss, "outliers": lambda s: s.outliers,
        "recipe": lambda s: s.variant, "cls": lambda s: s.cls, "evalset": lambda s: s.evalset,
        "score": lambda s: s.score, "k": lambda s: s.k,
    }
    out = {f: len({get(s) for s in sides}) == 1 for f, get in fields.items()}
    if curve or statistic == "aulc":  # one value per run: no score, no k
        out["score"] = out["k"] = False
    return out


def _parse_claim(raw: Mapping, defaults: Mapping, where: str, k_default: int) -> Claim:
    cid = raw.get("id")
    if not isinstance(cid, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]+", cid):
        raise _fail(where, None, "id", f"an id of letters, digits and _.:- (placeholders all replaced), got {cid!r}")
    unknown = set(raw) - _CLAIM_KEYS
    if unknown:
        raise _fail(where, cid, None, f"unknown key(s) {sorted(unknown)}; valid: {sorted(_CLAIM_KEYS)}")
    for key in _REQUIRED:
        if key not in raw:
            raise _fail(where, cid, key, "missing (required: " + ", ".join(_REQUIRED) + ")")
    for key in ("group", "quote", "source"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise _fail(where, cid, key, "a non-empty string")
    if raw["kind"] not in KINDS:
        raise _fail(where, cid, "kind", f"unknown kind {raw['kind']!r}; valid: {', '.join(KINDS)}")
    statistic = raw["statistic"]
    if statistic not in STATISTICS:
        raise _fail(where, cid, "statistic", f"unknown statistic {statistic!r}; valid: {', '.join(STATISTICS)}")
    effect = raw["effect"]
    if effect not in EFFECTS:
        raise _fail(where, cid, "effect", f"unknown effect {effect!r}; valid: {', '.join(EFFECTS)}")
    direction = raw["direction"]
    if direction not in DIRECTIONS:
        raise _fail(where, cid, "direction", f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    margin = raw.get("margin")
    if direction in ("<=", ">="):
        if not isinstance(margin, (int, float)) or isinstance(margin, bool) or margin < 0:
            raise _fail(where, cid, "margin", f"direction {direction!r} needs a margin >= 0 (points)")
        if effect == "relative":
            raise _fail(where, cid, "margin", "a margin is in points: use effect: difference")
        margin = float(margin)
    elif margin is not None:
        raise _fail(where, cid, "margin", f"only for directions <= and >=, not {direction!r}")
    params = raw.get("params") or {}
    allowed = _PARAMS.get(statistic, {})
    if not isinstance(params, Mapping) or set(params) - set(allowed):
        raise _fail(where, cid, "params", f"statistic {statistic!r} takes {sorted(allowed) or 'no parameters'}")
    if "at" in params and not (isinstance(params["at"], (int, float)) and 0 < params["at"] < 1):
        raise _fail(where, cid, "params.at", f"a fraction of training in (0, 1), got {params['at']!r}")
    kw = dict(statistic=statistic, where=where, cid=cid, k_default=k_default)
    a = _parse_side(raw["a"], defaults, "a", allow_constant=False, **kw)
    b = _parse_side(raw["b"], defaults, "b", allow_constant=True, **kw)
    vs = None
    if raw.get("vs") is not None:
        v = raw["vs"]
        if not isinstance(v, Mapping) or set(v) != {"a", "b"}:
            raise _fail(where, cid, "vs", "a mapping with sides a and b")
        if effect == "relative" or b.constant:
            raise _fail(where, cid, "vs", "a difference of differences needs effect: difference and a selector b")
        vs = (_parse_side(v["a"], defaults, "vs.a", allow_constant=False, **kw),
              _parse_side(v["b"], defaults, "vs.b", allow_constant=False, **kw))
    spec = STATISTICS[statistic]
    if spec.source == "pair" and (b.constant or vs):
        raise _fail(where, cid, "b", f"{statistic!r} compares two selector sides (no constant, no vs)")
    selectors = {"a": a, **({"b": b} if not b.constant else {}), **({"vs_a": vs[0], "vs_b": vs[1]} if vs else {})}
    if len({s.mean_over for s in selectors.values()}) > 1:
        raise _fail(where, cid, "mean_over", "every selector side of a claim takes the same mean_over")
    matched = _matched(selectors, statistic)
    for fld in ("cls", "evalset"):
        if not matched[fld] and a.mean_over != fld:
            raise _fail(where, cid, fld, f"the sides select different {fld} values: compare means per seed "
                                         f"(mean_over: {fld} on every side) or select the same ones")
    if b.reported is not None and not (a.mean_over or a.cls != "all" or a.evalset != ("test",)):
        raise _fail(where, cid, "a.mean_over", "a reported (class-mean) number is compared with our per-seed "
                                               "means: give side a mean_over: cls")
    paper = raw.get("paper")
    if paper is not None:
        if not isinstance(paper, Mapping) or "table" not in paper:
            raise _fail(where, cid, "paper", "a mapping with the table id ({table: '5'}) and optional side overrides")
        for role in set(paper) - {"table"}:
            if role not in ("a", "b", "vs_a", "vs_b"):
                raise _fail(where, cid, f"paper.{role}", "overrides are per side: a, b, vs_a, vs_b")
            if not isinstance(paper[role], Mapping) or set(paper[role]) - _PAPER_SIDE_KEYS:
                raise _fail(where, cid, f"paper.{role}", f"overrides take {sorted(_PAPER_SIDE_KEYS)}")
        paper = {k: (str(v) if k == "table" else v) for k, v in paper.items()}
    stated = raw.get("stated")
    if stated is not None:
        if not isinstance(stated, Mapping) or ("value" in stated) == ("reported" in stated):
            raise _fail(where, cid, "stated", "a mapping with exactly one of value / reported, and unit")
        if stated.get("unit") not in UNITS:
            raise _fail(where, cid, "stated.unit", f"one of {', '.join(UNITS)}, got {stated.get('unit')!r}")
        unit = "relative_pct" if effect == "relative" else spec.unit
        if stated["unit"] != unit:
            raise _fail(where, cid, "stated.unit", f"{stated['unit']!r} is not the claim's effect unit {unit!r}")
        if "value" in stated and (not isinstance(stated["value"], (int, float)) or isinstance(stated["value"], bool)):
            raise _fail(where, cid, "stated.value", f"a number, got {stated['value']!r}")
        if "reported" in stated and not (isinstance(stated["reported"], Mapping)
                                         and {"table", "metric"} <= set(stated["reported"])):
            raise _fail(where, cid, "stated.reported", "a cell of reported_results.csv with at least table and metric")
    untrained = tuple(raw.get("untrained") or ())
    for role in untrained:
        if role not in ("a", "b"):
            raise _fail(where, cid, "untrained", f"a list of sides (a, b), got {role!r}")
        if role == "b" and b.constant:
            raise _fail(where, cid, "untrained", "side b is a constant: nothing to train")
    note = raw.get("note") or ""
    if not isinstance(note, str):
        raise _fail(where, cid, "note", "a string")
    return Claim(id=cid, group=raw["group"], kind=raw["kind"], quote=raw["quote"].strip(), source=raw["source"],
                 statistic=statistic, effect=effect, a=a, b=b, direction=direction, margin=margin, vs=vs,
                 params=_frozen(params) or (), paper=_frozen(paper), stated=_frozen(stated), untrained=untrained,
                 note=note.strip())


def _learns_id(side: Side) -> str:
    parts = ["learns", str(side.loss), str(side.dataset)]
    if side.outliers != ("rot",):
        parts.append("+".join(side.outliers))
    if side.score != "cos":
        parts.append(side.score)
    if side.variant != "base":
        parts.append(side.variant)
    if side.evalset != ("test",):
        parts.append("+".join(side.evalset) if not side.mean_over else "ood_mean")
    elif side.cls != "all":
        parts.append("cls" + "+".join(side.cls))
    if side.mean_over == "cls":
        parts.append("mean")
    return ".".join(parts)


def _learns_claims(claims: Sequence[Claim]) -> list[Claim]:
    """The untrained-encoder checks the claims ask for (``untrained``), one per distinct side."""
    by_side: dict[Side, list[str]] = {}
    for c in claims:
        for role in c.untrained:
            side = getattr(c, role)
            if c.statistic != "auroc":  # AULC / curve claims: the side's cos AUROC of the same runs
                side = dataclasses.replace(side, score="cos", k=side.k if side.k is not None else _default_k())
            if side.mean_over == "cls":  # learning is checked per class and seed, whatever the claim averages
                side = dataclasses.replace(side, mean_over=None)
            by_side.setdefault(side, []).append(c.id)
    out = []
    for side, parents in by_side.items():
        out.append(Claim(
            id=_learns_id(side), group=LEARNS_GROUP, kind="learns",
            quote=f"[our check, part of {', '.join(parents)}] the loss learns: its AUROC is above the untrained "
                  "encoder's on the same runs",
            source="issue: the untrained baseline in the claims",
            statistic="auroc", effect="difference", a=side, b=dataclasses.replace(side, baseline=UNTRAINED),
            direction=">", note="The untrained encoder is each run's own initialisation (its seed's weights), "
                                "scored the same way (features.untrained).",
            derived_from=tuple(parents)))
    return out


def parse_claims(doc: Mapping, where: str = "claims.yaml", *, with_untrained: bool = True,
                 problems: list[str] | None = None) -> list[Claim]:
    """Validate a claims document (the parsed YAML) and expand it into claims (plus the untrained checks).

    Every entry is validated; the problems of all of them (each naming
    ``where``, the claim id and the key) are raised together as one
    :class:`ClaimsError`, or, when a ``problems`` list is given, appended to
    it and the bad entries left out (``--partial``: a bad claim never blocks
    the others).
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("claims"), list):
        raise ClaimsError(f"{where}: a mapping with a 'claims' list (and optional 'defaults')")
    unknown = set(doc) - {"claims", "defaults"}
    if unknown:
        raise ClaimsError(f"{where}: unknown top-level key(s) {sorted(unknown)}; valid: claims, defaults")
    defaults = {**SIDE_DEFAULTS, **(doc.get("defaults") or {})}
    bad = set(defaults) - _SIDE_KEYS
    if bad:
        raise ClaimsError(f"{where}: defaults: unknown selector key(s) {sorted(bad)}; valid: {sorted(_SIDE_KEYS)}")
    k_default = _default_k()
    claims: list[Claim] = []
    seen: set[str] = set()
    found: list[str] = []
    for i, entry in enumerate(doc["claims"]):
        if not isinstance(entry, Mapping):
            found.append(f"{where}: claims[{i}] is not a mapping")
            continue
        try:
            instances = _expand(entry, where)
        except ClaimsError as exc:
            found.append(str(exc))
            continue
        for raw in instances:
            try:
                left = _PLACEHOLDER.findall(str(raw.get("id")))
                if left:
                    raise _fail(where, str(raw.get("id")), "id", f"placeholder(s) {left} not given by each")
                claim = _parse_claim(raw, defaults, where, k_default)
                if claim.id in seen:
                    raise _fail(where, claim.id, "id", "duplicate id (after expansion)")
            except ClaimsError as exc:
                found.append(str(exc))
                continue
            seen.add(claim.id)
            claims.append(claim)
    if with_untrained:
        for c in _learns_claims(claims):
            if c.id in seen:
                found.append(str(_fail(where, c.id, "id", "an untrained-encoder check has this id: rename the claim")))
                continue
            claims.append(c)
    if found:
        if problems is None:
            raise problems_error(where, found)
        problems.extend(found)
    return claims


def load_claims(path: str | Path | None = None, *, with_untrained: bool = True,
                problems: list[str] | None = None) -> list[Claim]:
    """The claims of ``path`` (default: the packaged ``firm_bench/paper/claims.yaml``), validated and expanded.

    ``problems``: collect the bad entries' problems there and leave them out (see :func:`parse_claims`).
    """
    import yaml

    path = Path(path) if path is not None else CLAIMS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"claims file {path} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ClaimsError(f"{path}: not valid YAML: {exc}") from None
    return parse_claims(doc, str(path), with_untrained=with_untrained, problems=problems)


