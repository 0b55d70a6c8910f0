"""The hyperparameters of the two GLUE modes, and reading them from a config or a command line.

They have their own module because the sweep config, the single-run command line, fine-tuning and
probing all need them, and none of those should have to import another just to get them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from glue_painters.errors import UserError


@dataclass(frozen=True)
class FinetuneHParams:
    """The paper's fine-tuning settings by default (max length 128, batch 32, 3 epochs, lr 2e-5)."""

    learning_rate: float = 2e-5
    batch_size: int = 32
    epochs: float = 3.0
    max_length: int = 128
    weight_decay: float = 0.0
    warmup_steps: float = 0.0
    eval_batch_size: int = 128
    bf16: bool = False
    fp16: bool = False
    # any other transformers.TrainingArguments field given (gradient_accumulation_steps,
    # lr_scheduler_type, eval_strategy, ...), as ``glue_eval.trainer_args.read`` reads it
    trainer: dict = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "finetune") -> "FinetuneHParams":
        """Our settings by their names (or TrainingArguments' names for them:
        ``num_train_epochs`` is ``epochs``); any other TrainingArguments field goes to ``trainer``."""
        from . import trainer_args

        if d is not None and not isinstance(d, dict):
            raise UserError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
        own = {f.name for f in fields(cls)} - {"trainer"}
        mine, rest = {}, {}
        for k, v in (d or {}).items():
            name = trainer_args.OWN.get(k, k)
            if name in mine:
                raise UserError(f"{where}: {name} is given twice (as {k} too)")
            (mine if name in own else rest)[name] = v
        unknown = sorted(k for k in rest if k == "trainer" or k not in trainer_args.field_names())
        if unknown:
            raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(own))} "
                            "and the fields of transformers' TrainingArguments")
        hp = hparams_from_dict(cls, mine, where)
        return cls(**{**hp.settings(), "trainer": trainer_args.read(rest, where)}) if rest else hp

    def settings(self) -> dict:
        """Every setting as given (the TrainingArguments ones under ``trainer``, when there are any)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "trainer"}
        return out | ({"trainer": dict(self.trainer)} if self.trainer else {})

    def key_dict(self, processes: int = 1) -> dict:
        """What goes into a record's key: our settings as records always had them, plus the
        TrainingArguments fields that change a result and are not at their default (see
        ``glue_eval.trainer_args``), so runs without such fields keep their old keys.

        Two additions appear only where a run differs from what an older key meant: ``processes``
        when data-parallel over several (the batch per step is that many times
        ``batch_size``), and ``loss: mean`` with gradient accumulation (runs before summed the
        accumulated losses: ``finetune.PlanTrainer``), so such records are never reused."""
        from . import trainer_args

        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "trainer"}
        keyed = trainer_args.keyed(self.trainer) if self.trainer else {}
        if keyed.get("gradient_accumulation_steps", 1) > 1:
            keyed = keyed | {"loss": "mean"}
        return out | ({"trainer": keyed} if keyed else {}) | ({"processes": processes} if processes > 1 else {})


@dataclass(frozen=True)
class ProbeHParams:
    """Paper settings for the probe (max length 128, batch 32, 3 epochs, lr 3e-2)."""

    learning_rate: float = 3e-2
    batch_size: int = 32
    epochs: int = 3
    max_length: int = 128
    weight_decay: float = 0.0
    extract_batch_size: int = 128
    pooling: str = "auto"

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "probe") -> "ProbeHParams":
        return hparams_from_dict(cls, d, where)

    def settings(self) -> dict:
        return asdict(self)

    def key_dict(self) -> dict:
        return asdict(self)


def _coerce(value, typ, name, where):
    """``value`` as ``typ`` (bool, int or float), or a UserError naming the setting."""
    bad = UserError(f"{where}: {name} must be {'true or false' if typ is bool else 'a number'}"
                    f"{' (whole)' if typ is int else ''}, got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if typ is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: {name} must be a string, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad
    try:
        x = float(value)
    except ValueError:
        raise bad from None
    if typ is int:
        if not x.is_integer():
            raise bad
        return int(x)
    return x


def hparams_from_dict(cls, d, where):
    if d is not None and not isinstance(d, dict):
        raise UserError(f"{where}: expected a mapping of settings, got {type(d).__name__}")
    d = dict(d or {})
    defaults = cls()
    known = [f.name for f in fields(cls) if f.name != "trainer"]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out = {k: _coerce(v, type(getattr(defaults, k)), k, where) for k, v in d.items()}
    hp = cls(**out)
    for k in known:
        v = getattr(hp, k)
        if isinstance(v, (bool, str)):
            continue
        if v < 0 or (v == 0 and k in ("batch_size", "max_length", "epochs", "learning_rate", "eval_batch_size")):
            raise UserError(f"{where}: {k} must be {'positive' if v == 0 else 'not negative'}, got {v!r}")
    return hp


def add_hparam_options(parser, cls, prefix=""):
    """One ``--name`` option per hyperparameter of ``cls`` (default: the class default)."""
    defaults = cls()
    for f in fields(cls):
        typ = type(getattr(defaults, f.name))
        if typ not in (bool, int, float, str):
            continue  # FinetuneHParams.trainer: TrainingArguments' own options (glue_eval.trainer_args)
        conv = (lambda s: {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[s.lower()]) \
            if typ is bool else typ
        parser.add_argument(f"--{prefix}{f.name.replace('_', '-')}", dest=f.name, type=conv, default=None,
                            metavar=typ.__name__.upper(), help=f"(default: {getattr(defaults, f.name)})")
