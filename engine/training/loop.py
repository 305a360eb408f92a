"""One training epoch: the per-iteration algorithm of spec §12, with no host synchronisation inside.

Per iteration, for a transfer model:

1. move the event batch ``(x_e, y)`` to the device and augment it (crop, optional DVS-DA);
2. draw one static image of class ``y_b`` per sample from the static pool and repeat it over T steps
   on both polarity channels (a view);
3. replace each static sample by its event sample with probability ``P(i)`` of the sliding schedule at
   the global iteration ``i`` (computed on the host: a float, not a tensor);
4. run the two passes (the model resets its neurons before each) and compute the objective;
5. take one optimiser step.

An event-only baseline (``model.is_transfer`` false) skips 2–3 and trains on events alone.

Every random draw comes from the epoch's generators (:mod:`engine.training.rng`). Loss parts, accuracy
and a non-finite flag are summed into one device tensor; the host reads it once, after the epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import RunConfig
from engine.data import DataBundle
from engine.losses import LossSettings, LossTerms, compute_loss, domain_term_enabled
from engine.mixup import mix_ratio, switch_probability, timestep_mix
from engine.sliding import ScheduleContext, replace_static, replacement_probability
from engine.static_channel import static_stream
from engine.training.rng import EpochGenerators
from engine.training.runtime import autocast

__all__ = ["EpochTrainStats", "TrainLoop", "batch_sums"]

# Order of the summed quantities in the device accumulator.
_SUM_KEYS = ("train_loss", "train_loss_static", "train_loss_event", "train_loss_domain", "train_cka_distance")


@dataclass
class EpochTrainStats:
    """What one epoch of training produced, read back from the device once."""

    metrics: dict[str, float]
    """``train_loss`` and its parts, ``train_cka_distance``, ``train_top1`` (percent), ``sliding_p``."""
    iterations: int
    samples: int
    seconds: float
    finite: bool
    """False when any iteration's loss was NaN or infinite."""


class TrainLoop:
    """Runs training epochs of ``model`` on ``bundle`` as ``config`` prescribes.

    Args:
        progress: called once per iteration (advances a progress bar); must not synchronise.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        bundle: DataBundle,
        config: RunConfig,
        device: torch.device,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.bundle = bundle
        self.config = config
        self.device = device
        self.transfer = bool(getattr(model, "is_transfer", False))
        self.settings = LossSettings.from_config(config)
        self.add_domain = domain_term_enabled(config)
        self.static_pool = bundle.static_pool.to(device) if self.transfer else None
        self.iters_per_epoch = len(bundle.train_loader)
        self.clip_params = [p for p in model.parameters() if p.requires_grad]
        self.mixup = self.transfer and config.sliding.mixup == "timestep"
        self.mixup_stats: Tensor | None = None
        """The last step's ``[event-frame fraction, source loss, ratio loss]`` (device), with mixup on."""
        self.objective = self._objective
        """The step's forward and loss; ``train.compile: step`` compiles it (``engine.training.compile``)."""
        if config.train.compile == "step":
            from engine.training.compile import compile_function  # noqa: PLC0415

            self.objective = compile_function(self._objective)

    def _objective(
        self, static: Tensor | None, frames: Tensor, labels: Tensor
    ) -> tuple[LossTerms, Tensor, Tensor]:
        """Forward pass(es) and loss → ``(terms, event logits [T, B, K], static transfer feature or the
        event logits for an event-only model)``."""
        model, config = self.model, self.config
        if static is not None:
            with autocast(self.device, config.precision):
                output = model(static, frames)
            alpha = model.alpha() if self.settings.regularization else None
            terms = compute_loss(output, labels, alpha, settings=self.settings, add_domain=self.add_domain)
            return terms, output.logits_event, output.feat_static
        with autocast(self.device, config.precision):
            logits_event = model.forward_event(frames)
        return compute_loss(logits_event, labels, settings=self.settings), logits_event, logits_event

    def mixup_schedule(self, iteration: int) -> tuple[float, float]:
        """``(r, p)``: the target mix ratio at ``iteration`` and the switch probability that gives it."""
        s = self.config.sliding
        context = ScheduleContext(iteration, self.iters_per_epoch, self.config.epochs, s.pow, s.end_frac)
        ratio = min(1.0, max(0.0, mix_ratio(s.mixup_base, s.mixup_ratio, context)))
        return ratio, switch_probability(self.config.T, ratio)

    def replacement_p(self, iteration: int) -> float:
        s = self.config.sliding
        return replacement_probability(
            s.schedule, iteration, self.iters_per_epoch, self.config.epochs, pow=s.pow, end_frac=s.end_frac
        )

    def step(
        self, frames: Tensor, labels: Tensor, iteration: int, gens: EpochGenerators
    ) -> tuple[LossTerms, Tensor]:
        """One optimiser step on one event batch; returns the loss terms and event logits ``[T, B, K]``."""
        frames = self.bundle.augment(frames, gens.augmentation)
        config = self.config
        if self.transfer:
            assert self.static_pool is not None
            static = static_stream(self.static_pool.sample(labels, gens.static_pairing), config.T)
            static, _ = replace_static(static, frames, self.replacement_p(iteration), gens.replacement)
            mask = None
            if self.mixup:
                static, mask = timestep_mix(static, frames, self.mixup_schedule(iteration)[1], gens.mixup)
            terms, logits_event, feat_static = self.objective(static, frames, labels)
            if mask is not None:
                terms = self._add_mixup_heads(terms, feat_static, mask)
        else:
            terms, logits_event, _ = self.objective(None, frames, labels)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if config.optim.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(self.clip_params, config.optim.clip_grad)
        self.optimizer.step()
        return terms, logits_event

    def _add_mixup_heads(self, terms: LossTerms, feat_static: Tensor, mask: Tensor) -> LossTerms:
        """Add the weighted auxiliary losses of the mixup heads (:mod:`engine.mixup`) to the objective."""
        m = self.config.method
        features = feat_static.float().flatten(2)  # [T, B, D]
        target = mask.t().float()  # [T, B]: 1 where the static pass saw an event frame
        zero = terms.total.new_zeros(())
        source = ratio = zero
        if m.mixup_source_weight > 0:
            logits = self.model.mixup_source_head(features).squeeze(-1)
            source = F.binary_cross_entropy_with_logits(logits, target)
        if m.mixup_ratio_weight > 0:
            predicted = torch.sigmoid(self.model.mixup_ratio_head(features.mean(dim=0)).squeeze(-1))
            ratio = F.mse_loss(predicted, target.mean(dim=0))
        self.mixup_stats = torch.stack([target.mean(), source.detach(), ratio.detach()]).double()
        total = terms.total + m.mixup_source_weight * source + m.mixup_ratio_weight * ratio
        return dataclasses.replace(terms, total=total)

    def train_epoch(
        self,
        epoch: int,
        global_iteration: int,
        gens: EpochGenerators,
        progress: Callable[[], None] | None = None,
    ) -> EpochTrainStats:
        """Train one epoch starting at ``global_iteration`` (= epoch · iterations per epoch)."""
        self.model.train()
        self.bundle.set_epoch(epoch)
        sums = torch.zeros(len(_SUM_KEYS) + 1, dtype=torch.float64, device=self.device)  # + correct
        samples = iterations = 0
        p_sum = 0.0
        mix_sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # fraction, source, ratio
        ratio_sum = mix_p_sum = 0.0
        start = time.perf_counter()
        for frames, labels in self.bundle.train_loader:
            frames = frames.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            iteration = global_iteration + iterations
            terms, logits_event = self.step(frames, labels, iteration, gens)
            batch = labels.shape[0]
            sums += batch_sums(terms, logits_event, labels, batch)
            if self.transfer:
                p_sum += self.replacement_p(iteration)
            if self.mixup:
                ratio, mix_p = self.mixup_schedule(iteration)
                ratio_sum, mix_p_sum = ratio_sum + ratio, mix_p_sum + mix_p
                mix_sums += self.mixup_stats * batch
            samples += batch
            iterations += 1
            if progress is not None:
                progress()
        values = torch.cat([sums, mix_sums]).tolist()  # the epoch's one device→host transfer
        mix_values = values[len(_SUM_KEYS) + 1 :]
        seconds = time.perf_counter() - start
        if iterations == 0:
            raise ValueError("the train loader yielded no batches")
        metrics = {key: values[i] / samples for i, key in enumerate(_SUM_KEYS)}
        metrics["train_top1"] = 100.0 * values[len(_SUM_KEYS)] / samples
        metrics["sliding_p"] = p_sum / iterations if self.transfer else float("nan")
        if not self.transfer:
            metrics["train_loss_domain"] = metrics["train_cka_distance"] = float("nan")
        # Without mixup (or without a head) these are 0: no frame was mixed, no head added to the loss.
        metrics["mixup_ratio"] = ratio_sum / iterations
        metrics["mixup_p"] = mix_p_sum / iterations
        metrics["mixup_event_fraction"] = mix_values[0] / samples
        metrics["train_loss_mixup_source"] = mix_values[1] / samples
        metrics["train_loss_mixup_ratio"] = mix_values[2] / samples
        finite = all(map(math.isfinite, values[: len(_SUM_KEYS) - 2]))  # total, static, event
        return EpochTrainStats(metrics, iterations, samples, seconds, finite)


def batch_sums(terms: LossTerms, logits_event: Tensor, labels: Tensor, batch: int) -> Tensor:
    """Batch-size-weighted loss parts and the top-1 hit count of the time-averaged event logits."""
    distance = terms.cka_distance.mean() if terms.cka_distance.numel() else terms.total.new_zeros(())
    parts = torch.stack([terms.total, terms.static, terms.event, terms.domain, distance]).detach().double()
    correct = (logits_event.detach().mean(dim=0).argmax(dim=-1) == labels).sum().double()
    return torch.cat([parts * batch, correct.reshape(1)])
