"""Typed run configuration: one dataclass tree, loaded from YAML, overridden by ``key=value`` strings.

Why typed dataclasses: the original script threaded 148 argparse flags through every function; here a
run is one value that can be validated before any data is read, hashed to group seeds of the same
configuration, flattened to dotted keys for MLflow params and sweep spaces (``sliding.pow``,
``method.beta``), and stored inside checkpoints so a resumed run knows exactly what it was.

The class defaults are the paper's full-method N-Caltech101 run (spec §9.1: VGG-SNN, LIF, QGateGrad,
T = 10, B = 120, β = 0.5 with regularization, TET, V channel, poly sliding, 300 epochs, cosine), not the
original script's stale argparse defaults. Presets (``engine/presets/*.yaml``) hold the other published
runs and the quick built-in-dataset run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError
from engine.neuron_spec import BACKEND_CHOICES, DEFAULT_NEURON, NeuronSpec
from engine.registry import close_matches
from engine.typed import Rule, build
from engine.yamlio import load_yaml_text, read_yaml_file

__all__ = [
    "COMPILE_MODES",
    "ConfigError",
    "RunConfig",
    "all_keys",
    "flatten",
    "list_presets",
    "parse_assignments",
    "unflatten",
]


@dataclass
class ModelConfig:
    name: str = "transfer_vgg_snn"
    """Registry name (``engine.list_models()``)."""
    width: float = 1.0
    """Channel multiplier; 1.0 is the published network, smaller values make tests and smoke runs fast."""
    neuron: str = DEFAULT_NEURON.kind
    surrogate: str = DEFAULT_NEURON.surrogate
    tau: float = DEFAULT_NEURON.tau
    v_th: float = DEFAULT_NEURON.v_th
    step_mode: str = "auto"
    """How the network runs its T steps; all three give the same numbers, only the speed differs
    (``engine.models.resolve_step_mode`` documents the measurements): ``m`` layer by layer over all
    steps with fused neurons, ``s`` step by step (the original order, the reference), ``auto`` the one
    measured fastest on the run's device type. Not part of ``config_hash``."""
    recompute: bool = False
    """Recompute BatchNorm outputs and membrane potentials in the backward pass instead of saving them:
    about a third less activation memory for a few percent more time (multi-step mode), so more trials
    pack onto one GPU. Same numbers; not part of ``config_hash``."""
    neuron_backend: str = "fused"
    """How multi-step neurons run their T steps (``engine.neurons``): ``fused`` (one autograd node over
    the T steps, torch kernels), ``triton`` (the same node as one Triton kernel forward and one backward;
    CUDA with ``triton`` installed), ``autograd`` (plain torch, the reference; the one ``train.compile``
    can fuse into its own kernels) or ``auto`` (``triton`` where it can run, else ``fused``). Same
    spikes and potentials; not part of ``config_hash``."""
    lean_spikes: bool = False
    """Convolutions fed by spikes keep them for the backward pass as 1 byte per element instead of the
    compute dtype's 2–4 (``engine.models.lean_conv``): the same numbers, less activation memory, one
    narrowing copy per such convolution. Spiking neurons only; not part of ``config_hash``."""

    def neuron_spec(self) -> NeuronSpec:
        """The neuron every layer of the model gets (the surrogate's α keeps its default)."""
        return NeuronSpec(kind=self.neuron, tau=self.tau, v_th=self.v_th, surrogate=self.surrogate)


@dataclass
class DataConfig:
    pair: str = "ncaltech101"
    """Static/event dataset pair: ``nshapes`` (built in), ``ncaltech101``, ``cepdvs``, ``nomniglot``."""
    root: str | None = None
    """Dataset root. ``None`` is allowed only for ``nshapes``, which is generated under ``cache_root``."""
    event_size: int = 48
    """Side of the square event frame; static images are resized to it too (spec §11 item 15)."""
    train_portion: float = 0.9
    """Fraction of each class used for training (CEP-DVS publishes 0.5)."""
    traindata_ratio: float = 1.0
    """Fraction of the event train split kept; the test split never moves."""
    rgbdata_ratio: float = 1.0
    """Fraction of each class's static pool kept."""
    dvs_da: bool = False
    """The original ``--DVS-DA``: horizontal flip and rotation ±15° after the crop."""
    crop_padding: int = 4
    snr: float = 0.0
    """The original ``--snr`` (dB): when > 0 (and without ``dvs_da``), training frames get additive
    Gaussian noise at this per-sample SNR *instead of* the random crop (spec §7.1); 0 = off."""
    frame_mode: str = "auto"
    """Event-frame values: ``counts`` (events per pixel, polarity and bin), ``frequency`` (counts ÷ slice
    duration, each frame and polarity divided by its own max → [0, 1], the original N-Omniglot frames),
    or ``auto`` = the pair's original (frequency for ``nomniglot``, counts for the others)."""
    cache_root: str | None = None
    """Frame-cache root; ``None`` means ``$SPIKESWEEP_CACHE`` or ``~/.cache/spikesweep``."""
    num_workers: int = 0
    pin_memory: bool = False
    nshapes_classes: int = 10
    nshapes_per_class: int = 40
    nshapes_seed: int = 0
    legacy_static_pool_off_by_one: bool = False
    """Spec §11 item 5: each class's static pool holds one image beyond its training range."""
    legacy_cepdvs_position_pairing: bool = False
    """Spec §11 item 8: CEP-DVS static images indexed by train-list positions (pairs are not by class)."""
    legacy_cepdvs_moving_test_split: bool = False
    """Spec §11 item 11: the CEP-DVS test block starts right after the (shrunken) train block."""
    legacy_omniglot_no_invert: bool = False
    """Spec §11 item 14: Omniglot images as stored (dark strokes on white) instead of inverted so that
    strokes are bright like the N-Omniglot event frames."""
    legacy_sampler_class_size_weights: bool = False
    """Spec §7.1/§11 item 19: class-balanced sampling weighs a recording by 1/(all recordings of its
    class), as the original, instead of 1/(kept training recordings of its class); with
    ``traindata_ratio`` < 1 that skews classes (N-Caltech101 at r = 0.1: 0.76–1.10 × the mean)."""


@dataclass
class MethodConfig:
    domain_loss: bool = True
    """Add β·L_dom (the CKA knowledge-transfer loss) to the objective."""
    beta: float = 0.5
    regularization: bool = True
    """Weight step t's alignment term by α_t = σ(c_t) and its event TET terms by 1 − α_t."""
    fixed_coef: float | None = None
    """The original ``--tsregular r``: a fixed weight r in (0, 1] instead of σ(c_t)."""
    tet: bool = True
    tet_lambda: float = 1e-3
    tet_phi: float | None = None
    """TET MSE target; ``None`` ties it to ``model.v_th`` as the original does."""
    smoothing: float = 0.0
    static_channel: str = "v"
    """``v`` (HSV value), ``blue`` (the original "no HSV" arm) or ``gray``."""
    mixup_source_weight: float = 0.0
    """Weight of the time-step mixup's per-frame source head (static or event frame? binary
    cross-entropy on each step's transfer feature); 0 = no head."""
    mixup_ratio_weight: float = 0.0
    """Weight of the mixup's per-sequence mix-ratio head (squared error of the predicted fraction of
    event frames); 0 = no head."""
    static_bn_stats: bool = True
    """The static pass updates BatchNorm running statistics, as the original (spec §11 item 23), so the
    event-only evaluation normalises with statistics partly estimated on static images; ``false`` keeps
    the running statistics of the event pass alone (the static pass still uses its batch statistics)."""
    legacy_nosliding_drops_domain: bool = False
    """Spec §11 item 1: the ``step`` schedule (``--no-sliding-training``) silently drops the domain loss."""
    legacy_tsregular_mse_sigmoid: bool = False
    """Spec §11 item 2: with ``fixed_coef`` the event MSE term still uses 1 − σ(c_t)."""


MIXUP_MODES = ("none", "timestep")
MIXUP_BASES = ("constant", "poly", "linear", "cosine")
"""Time-step mixup (:mod:`engine.mixup`): its modes, and how its mix ratio may grow over training."""


@dataclass
class SlidingConfig:
    schedule: str = "poly"
    """``poly``, ``linear``, ``cosine``, ``step``, ``none`` or ``event_only``."""
    pow: float = 3.0
    end_frac: float = 1.0
    """Fraction of training at which the replacement probability reaches 1 (old code: 0.5)."""
    mixup: str = "none"
    """Time-step mixup (TMKT, :mod:`engine.mixup`): ``timestep`` switches each static sequence to its
    paired event frames at a random step, after any whole-sample replacement; ``none`` is the paper."""
    mixup_ratio: float = 0.5
    """Target expected fraction r of event frames per static sequence (its final value when
    ``mixup_base`` grows it)."""
    mixup_base: str = "constant"
    """How r follows training: ``constant``, or r × the ``poly``/``linear``/``cosine`` schedule (with
    this section's ``pow`` and ``end_frac``)."""


@dataclass
class OptimConfig:
    name: str = "adamw"
    lr: float = 5e-3
    """Base learning rate, before ``lr_scaling``."""
    lr_scaling: str = "batch/1024"
    """``batch/1024`` (effective lr = lr·B/1024, as the original) or ``none``."""
    weight_decay: float = 0.01
    """Applied to ≥2-D weights only; biases, norms and the α coefficients get none."""
    eps: float = 1e-8
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    clip_grad: float | None = None


@dataclass
class ScheduleConfig:
    name: str = "cosine"
    """``cosine`` or ``step``, both with a linear warmup; epoch 0 trains at ``warmup_lr``."""
    warmup_epochs: int = 5
    warmup_lr: float = 1e-6
    min_lr: float = 1e-5
    decay_epochs: int = 30
    decay_rate: float = 0.1


COMPILE_MODES = ("none", "blocks", "step")
"""``train.compile``: nothing, each block of the model, or the whole training step
(``engine.training.compile``)."""


@dataclass
class TrainConfig:
    compile: str = "none"
    """``torch.compile`` (``engine.training.compile``): ``none``; ``blocks`` compiles each block of the
    model (conv → BN → neuron, residual blocks, heads) and leaves the fused/Triton neuron nodes as they
    are; ``step`` compiles the model's whole forward and backward as one graph, with CUDA graphs on a
    GPU. Tested equal to the uncompiled step; not part of ``config_hash``."""


@dataclass
class EnergyConfig:
    """Energy per operation for the inference-energy estimate (``engine.activity``): Horowitz (ISSCC
    2014, 45 nm, 32-bit float) by default; set them for another process or number format."""

    e_ac_pj: float = 0.9
    """pJ per accumulate (a spike arriving at a synapse)."""
    e_mac_pj: float = 4.6
    """pJ per multiply-accumulate (a real-valued input: the first layer, an ANN)."""


@dataclass
class RunConfig:
    T: int = 10
    """Time steps: event bins per recording, and repeats of the static image."""
    epochs: int = 300
    batch_size: int = 120
    seed: int = 42
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    precision: str = "fp32"
    """``fp32`` or ``bf16`` (autocast)."""
    deterministic: bool = True
    """Deterministic kernels (cuDNN deterministic, no autotuning, torch's deterministic algorithms), as
    the original's ``setup_seed``: the same seed gives the same numbers on a GPU too. ``false`` lets
    cuDNN pick faster non-deterministic kernels. Not part of ``config_hash``."""
    progress: bool = True
    """Show a progress bar (turned off inside sweeps)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    sliding: SlidingConfig = field(default_factory=SlidingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----------------------------------------------------------------------------------------------
    # construction
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> RunConfig:
        """Build from a nested mapping; unknown keys and wrong types raise :class:`ConfigError`."""
        return build(cls, data or {}, _ConfigStyle(source))

    @classmethod
    def from_preset(cls, name: str) -> RunConfig:
        """A named preset from ``engine/presets/<name>.yaml`` (``quick``, ``ncaltech101``, ...).

        Presets list only what differs from the class defaults, so a preset reads as the recipe of one
        published run. An unknown name raises :class:`ConfigError` with the valid ones.
        """
        path = PRESET_DIR / f"{name}.yaml"
        if not path.is_file():
            from engine.registry import unknown_name_message  # noqa: PLC0415

            raise ConfigError(unknown_name_message("preset", name, list_presets()))
        return cls.from_yaml(path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        data = read_yaml_file(path, "config file")
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def with_overrides(self, overrides: dict[str, Any] | list[str], source: str = "--set") -> RunConfig:
        """A copy with dotted-key overrides applied: ``{"method.beta": 0.0}`` or ``["method.beta=0"]``.

        String values (from the command line) are parsed as YAML scalars, so ``true``, ``3``, ``1e-3``
        and ``null`` get their natural types before the type check.
        """
        if isinstance(overrides, list):
            overrides = parse_assignments(overrides, source)
        nested = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(nested, key, value, source)
        return RunConfig.from_dict(nested, source=source)

    # ----------------------------------------------------------------------------------------------
    # views
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def flat(self) -> dict[str, Any]:
        """Dotted-key view (``{"model.name": ..., "method.beta": ...}``) for params and tables."""
        return flatten(self.to_dict())

    def config_hash(self, exclude: tuple[str, ...] = ("seed",)) -> str:
        """Short hash of everything that changes results, minus ``exclude``.

        Seeds of one configuration share a hash. Keys that do not change the numbers (device, paths,
        worker counts, progress bars) are left out so the same configuration run on two clusters hashes
        the same. Keys at their class default are left out too, so a knob added in a later release (with
        a default that keeps the old behaviour) does not change the hash of configurations recorded
        before it existed; a resumed or compared sweep still groups its seeds together.
        """
        defaults = _default_flat()
        flat = {
            k: v
            for k, v in self.flat().items()
            if k not in NON_SEMANTIC_KEYS and k not in exclude and (k not in defaults or v != defaults[k])
        }
        blob = json.dumps(flat, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    # ----------------------------------------------------------------------------------------------
    # validation
    def validate(self) -> RunConfig:
        """Check ranges and registry names; raise :class:`ConfigError` listing every problem found."""
        problems = [*_range_problems(self), *_name_problems(self), *_environment_problems(self)]
        if problems:
            raise ConfigError("invalid run configuration:\n  - " + "\n  - ".join(problems))
        return self

    @property
    def tet_phi(self) -> float:
        """The TET MSE target φ, tied to the firing threshold unless set explicitly."""
        return self.model.v_th if self.method.tet_phi is None else self.method.tet_phi


PRESET_DIR = Path(__file__).parent / "presets"


def list_presets() -> list[str]:
    """Names of the presets shipped in ``engine/presets``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


NON_SEMANTIC_KEYS = frozenset(
    {
        "device",
        "progress",
        "data.root",
        "data.cache_root",
        "data.num_workers",
        "data.pin_memory",
        "model.step_mode",
        "model.recompute",
        "model.neuron_backend",
        "model.lean_spikes",
        "train.compile",
        "deterministic",
    }
)


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        _set_dotted(nested, key, value, "flat config", check=False)
    return nested


def parse_assignments(items: list[str], source: str = "--set") -> dict[str, Any]:
    """Parse ``["a.b=1", "c=true"]`` into ``{"a.b": 1, "c": True}`` with YAML scalar typing."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{source}: expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = load_yaml_text(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


@functools.cache
def _default_flat() -> dict[str, Any]:
    return RunConfig().flat()


def all_keys() -> list[str]:
    """Every valid dotted key of a run configuration."""
    return sorted(_default_flat())


# --------------------------------------------------------------------------------------------------
# internals


def _set_dotted(nested: dict[str, Any], key: str, value: Any, source: str, check: bool = True) -> None:
    parts = key.split(".")
    node = nested
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and not check:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(_unknown_key(".".join(parts[: i + 1]), source, all_keys()))
        node = child
    if check and parts[-1] not in node:
        raise ConfigError(_unknown_key(key, source, all_keys()))
    node[parts[-1]] = value


def _unknown_key(key: str, source: str, valid: list[str]) -> str:
    close = close_matches(key, valid, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(valid)}"
    return f"{source}: unknown config key {key!r}{hint}"


@dataclasses.dataclass(frozen=True)
class _ConfigStyle:
    """How a run config's problems read: ``<source>: <key> = <value> must be <type>``."""

    source: str

    def not_a_mapping(self, where: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.source}: {where or 'config'} must be a mapping, got {value!r}")

    def unknown_key(self, key: str, valid: list[str]) -> ConfigError:
        return ConfigError(_unknown_key(key, self.source, valid))

    def bad_value(self, key: str, value: Any, kind: Any, rule: Rule | None) -> ConfigError:
        return ConfigError(f"{self.source}: {key} = {value!r} must be {_type_name(kind)}")

    def bad_choice(self, key: str, value: Any, choices: tuple[Any, ...]) -> ConfigError:
        return ConfigError(f"{self.source}: {key} = {value!r} must be one of {list(choices)}")


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    return {
        type(None): "null",
        float: "a number",
        int: "an integer",
        bool: "true/false",
        str: "a string",
        list: "a list",
    }.get(kind, str(kind))


def _range_problems(c: RunConfig) -> list[str]:
    # NaN or ±inf anywhere (``.nan`` / ``.inf`` in YAML, ``--set optim.lr=nan``) would otherwise pass a
    # range check such as ``lr > 0`` (inf) or fail it with a confusing message (nan).
    non_finite = [
        f"{key} = {value} must be a finite number"
        for key, value in c.flat().items()
        if isinstance(value, float) and not math.isfinite(value)
    ]
    if non_finite:
        return non_finite
    checks: list[tuple[bool, str]] = [
        (c.T >= 1, f"T = {c.T} must be ≥ 1"),
        (c.epochs >= 1, f"epochs = {c.epochs} must be ≥ 1"),
        (c.batch_size >= 1, f"batch_size = {c.batch_size} must be ≥ 1"),
        (c.seed >= 0, f"seed = {c.seed} must be ≥ 0"),
        (c.precision in ("fp32", "bf16"), f"precision = {c.precision!r} must be fp32 or bf16"),
        (
            c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:"),
            f"device = {c.device!r} must be auto, cpu, cuda or cuda:N",
        ),
        (c.model.width > 0, f"model.width = {c.model.width} must be > 0"),
        (c.model.tau > 1.0, f"model.tau = {c.model.tau} must be > 1 (the leak is 1/tau)"),
        (c.model.v_th > 0, f"model.v_th = {c.model.v_th} must be > 0"),
        (c.energy.e_ac_pj > 0, f"energy.e_ac_pj = {c.energy.e_ac_pj} must be > 0 (pJ per accumulate)"),
        (c.energy.e_mac_pj > 0, f"energy.e_mac_pj = {c.energy.e_mac_pj} must be > 0 (pJ per MAC)"),
        (
            c.model.step_mode in ("auto", "m", "s"),
            f"model.step_mode = {c.model.step_mode!r} must be auto, m (layer by layer) or s (step by step)",
        ),
        (
            c.model.neuron_backend in BACKEND_CHOICES,
            f"model.neuron_backend = {c.model.neuron_backend!r} must be one of {', '.join(BACKEND_CHOICES)}",
        ),
        (
            not (c.model.recompute and c.model.neuron_backend == "autograd"),
            "model.recompute = true needs model.neuron_backend fused, triton or auto: the autograd backend"
            " keeps a graph per step, which has nothing to recompute from",
        ),
        (
            not (c.model.lean_spikes and c.model.neuron == "relu"),
            "model.lean_spikes = true needs spiking neurons: model.neuron = relu feeds its convolutions"
            " real numbers, which 1 byte cannot hold",
        ),
        (
            c.train.compile in COMPILE_MODES,
            f"train.compile = {c.train.compile!r} must be one of {', '.join(COMPILE_MODES)}",
        ),
        (c.data.event_size >= 8, f"data.event_size = {c.data.event_size} must be ≥ 8"),
        (c.data.crop_padding >= 0, f"data.crop_padding = {c.data.crop_padding} must be ≥ 0"),
        (c.data.snr >= 0, f"data.snr = {c.data.snr} must be ≥ 0 (dB; 0 turns the noise off)"),
        (
            not (c.data.snr > 0 and c.data.dvs_da),
            f"data.snr = {c.data.snr} needs data.dvs_da = false (the original ignores --snr with --DVS-DA)",
        ),
        (
            c.data.frame_mode in ("auto", "counts", "frequency"),
            f"data.frame_mode = {c.data.frame_mode!r} must be auto, counts or frequency",
        ),
        (c.data.num_workers >= 0, f"data.num_workers = {c.data.num_workers} must be ≥ 0"),
        (c.data.nshapes_classes >= 2, f"data.nshapes_classes = {c.data.nshapes_classes} must be ≥ 2"),
        (c.data.nshapes_per_class >= 2, f"data.nshapes_per_class = {c.data.nshapes_per_class} must be ≥ 2"),
        (c.method.beta >= 0, f"method.beta = {c.method.beta} must be ≥ 0"),
        (0 <= c.method.tet_lambda <= 1, f"method.tet_lambda = {c.method.tet_lambda} must be in [0, 1]"),
        (0 <= c.method.smoothing < 1, f"method.smoothing = {c.method.smoothing} must be in [0, 1)"),
        (c.sliding.pow > 0, f"sliding.pow = {c.sliding.pow} must be > 0"),
        (0 < c.sliding.end_frac <= 1, f"sliding.end_frac = {c.sliding.end_frac} must be in (0, 1]"),
        (
            c.sliding.mixup in MIXUP_MODES,
            f"sliding.mixup = {c.sliding.mixup!r}; allowed: {', '.join(MIXUP_MODES)}",
        ),
        (0 <= c.sliding.mixup_ratio <= 1, f"sliding.mixup_ratio = {c.sliding.mixup_ratio} must be in [0, 1]"),
        (
            c.sliding.mixup_base in MIXUP_BASES,
            f"sliding.mixup_base = {c.sliding.mixup_base!r}; allowed: {', '.join(MIXUP_BASES)}",
        ),
        (
            c.method.mixup_source_weight >= 0,
            f"method.mixup_source_weight = {c.method.mixup_source_weight} must be ≥ 0",
        ),
        (
            c.method.mixup_ratio_weight >= 0,
            f"method.mixup_ratio_weight = {c.method.mixup_ratio_weight} must be ≥ 0",
        ),
        (
            c.sliding.mixup == "timestep"
            or (c.method.mixup_source_weight <= 0 and c.method.mixup_ratio_weight <= 0),
            "method.mixup_source_weight / mixup_ratio_weight > 0 need sliding.mixup = timestep",
        ),
        (c.optim.lr > 0, f"optim.lr = {c.optim.lr} must be > 0"),
        (c.optim.weight_decay >= 0, f"optim.weight_decay = {c.optim.weight_decay} must be ≥ 0"),
        (
            c.optim.lr_scaling in ("batch/1024", "none"),
            f"optim.lr_scaling = {c.optim.lr_scaling!r} must be batch/1024 or none",
        ),
        (len(c.optim.betas) == 2, f"optim.betas = {c.optim.betas} must have two values"),
        (c.schedule.warmup_epochs >= 0, f"schedule.warmup_epochs = {c.schedule.warmup_epochs} must be ≥ 0"),
        (c.schedule.warmup_lr > 0, f"schedule.warmup_lr = {c.schedule.warmup_lr} must be > 0"),
        (c.schedule.min_lr >= 0, f"schedule.min_lr = {c.schedule.min_lr} must be ≥ 0"),
        (c.schedule.decay_epochs >= 1, f"schedule.decay_epochs = {c.schedule.decay_epochs} must be ≥ 1"),
        (0 < c.schedule.decay_rate <= 1, f"schedule.decay_rate = {c.schedule.decay_rate} must be in (0, 1]"),
    ]
    for key in ("train_portion", "traindata_ratio", "rgbdata_ratio"):
        value = getattr(c.data, key)
        checks.append((0 < value <= 1, f"data.{key} = {value} must be in (0, 1]"))
    if c.method.fixed_coef is not None:
        checks.append(
            (0 < c.method.fixed_coef <= 1, f"method.fixed_coef = {c.method.fixed_coef} must be in (0, 1]")
        )
    if c.optim.clip_grad is not None:
        checks.append((c.optim.clip_grad > 0, f"optim.clip_grad = {c.optim.clip_grad} must be > 0"))
    if c.method.tet_phi is not None:
        checks.append((math.isfinite(c.method.tet_phi), "method.tet_phi must be finite"))
    return [message for ok, message in checks if not ok]


def _environment_problems(c: RunConfig) -> list[str]:
    """What this machine cannot run: ``model.neuron_backend: triton`` without Triton or without CUDA
    (its interpreter, ``TRITON_INTERPRET=1``, counts as a device). Imports torch, so only once the
    cheap checks have passed."""
    if c.model.neuron_backend != "triton":
        return []
    from engine.triton_neurons import unavailable_reason  # noqa: PLC0415 — torch, only when asked

    reason = unavailable_reason(c.device)
    if reason is None:
        return []
    others = ", ".join(b for b in BACKEND_CHOICES if b != "triton")
    return [f"model.neuron_backend = 'triton' cannot run here: {reason}; choose one of {others}"]


def _name_problems(c: RunConfig) -> list[str]:
    """Registry names; imported lazily so that reading a config does not build any model code."""
    from engine import registries  # noqa: PLC0415 — keeps `import engine.config` light

    problems = []
    for key, value, registry in registries.config_name_checks(c):
        if value not in registry:
            from engine.registry import unknown_name_message  # noqa: PLC0415

            problems.append(f"{key}: " + unknown_name_message(registry.kind, value, registry.names()))
    return problems
