# Copyright 2026 The telme_hf Authors. Licensed under the Apache License, Version 2.0.
"""Knowledge-distillation losses of TelME (stage 2: text teacher -> audio / video students).

The student objective of TelME is

    L_student = L_cls + alpha * L_response + beta * L_feature

where ``L_response`` is the DIST loss of Huang et al. (2022, "Knowledge Distillation from A Stronger Teacher")
applied to temperature-softened class probabilities, and ``L_feature`` matches the batch-level similarity structure
of the student's features to the teacher's.

Every loss here is a pure function of tensors (no state, no ``nn.Module``) so it can be unit-tested against a
reference implementation and called from any training loop, e.g. a ``Trainer.compute_loss`` override. All of them:

* compute in float32 (float64 inputs stay float64) with autocast disabled, whatever the dtype of the inputs (the
  losses contain softmaxes, norms and divisions that are not safe in float16/bfloat16);
* treat the teacher tensors as constants (``detach``), so no gradient ever reaches the teacher even if its
  parameters still have ``requires_grad=True``;
* stay finite, including their gradients, for batch size 1, constant logits, all-zero feature vectors and very
  large logits.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


__all__ = [
    "pearson_correlation",
    "response_distillation_loss",
    "feature_distillation_loss",
    "student_distillation_loss",
]


def _autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """Context manager that turns autocast off for ``device`` so the loss is computed in the dtype we cast to.

    Upcasting inputs alone is not enough: under ``torch.autocast`` a float32 ``matmul`` is still run in half
    precision.
    """
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # device type without autocast support (e.g. "meta"): nothing to disable
        return contextlib.nullcontext()


def _upcast(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cast the tensors to their common dtype, at least float32 (half precision is upcast, float64 kept)."""
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return tuple(tensor.to(dtype) for tensor in tensors)


def _check_temperature(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")


def pearson_correlation(a: torch.Tensor, b: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    r"""Pearson correlation between ``a`` and ``b`` along ``dim``, as the cosine similarity of centred vectors.

    Formula (for each slice along ``dim``)::

        a_c = a - mean(a),   b_c = b - mean(b)
        rho(a, b) = sum(a_c * b_c) / (||a_c||_2 * ||b_c||_2 + eps)

    ``eps`` sits in the denominator exactly as in the original TelME / DIST code. Consequence: when one of the two
    centred vectors is zero (a constant vector, or a single element, e.g. the per-class correlation of a batch of
    size 1) the correlation is defined as **0** instead of NaN. The gradient stays finite there but can be large
    (of order ``||b_c|| / eps``), because the normalisation is undefined at a constant vector.

    Args:
        a (`torch.Tensor`): first input.
        b (`torch.Tensor`): second input, same shape as ``a``.
        dim (`int`, *optional*, defaults to -1): dimension along which the correlation is computed.
        eps (`float`, *optional*, defaults to 1e-8): added to the product of norms.

    Returns:
        `torch.Tensor`: the correlations, with ``dim`` reduced; values in [-1, 1].

    Example:

    ```python
    >>> import torch
    >>> from telme_hf.training.losses import pearson_correlation
    >>> a = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> b = torch.tensor([[2.0, 4.0, 6.0], [3.0, 2.0, 1.0]])
    >>> pearson_correlation(a, b).round(decimals=4)
    tensor([1., 0.])

    ```
    """
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    # `vector_norm` has a zero subgradient at the origin, so a constant slice gives a finite gradient.
    denominator = torch.linalg.vector_norm(a, dim=dim) * torch.linalg.vector_norm(b, dim=dim) + eps
    return (a * b).sum(dim=dim) / denominator


def response_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
) -> torch.Tensor:
    r"""DIST response-distillation loss (``L_response`` of TelME): relation of softened class probabilities.

    Formula, for logits of shape (B, C)::

        Y^s = softmax(Z^s / tau, dim=classes),   Y^t = softmax(Z^t / tau, dim=classes)
        L_inter = 1 - (1/B) * sum_i rho(Y^s[i, :], Y^t[i, :])      # per sample, across classes
        L_intra = 1 - (1/C) * sum_j rho(Y^s[:, j], Y^t[:, j])      # per class, across the batch
        L = tau^2 * (inter_weight * L_inter + intra_weight * L_intra)

    with ``rho`` the :func:`pearson_correlation`. ``L`` lies in ``[0, 2 * tau^2 * (inter_weight + intra_weight)]``
    and is 0 when the two sets of logits are identical (and each row / column is non-constant).

    Degenerate cases follow the ``eps`` convention of :func:`pearson_correlation` (correlation 0):

    * batch size 1: every class column is a single value, so ``L_intra = 1`` (a constant ``tau^2 * intra_weight``
      with no gradient), as in the original code;
    * constant student (or teacher) logits for a sample: the uniform distribution has no "shape", so that sample
      contributes correlation 0 to ``L_inter``.

    The teacher logits are detached.

    Args:
        student_logits (`torch.Tensor` of shape `(batch_size, num_classes)`): student logits ``Z^s``.
        teacher_logits (`torch.Tensor` of shape `(batch_size, num_classes)`): teacher logits ``Z^t``.
        temperature (`float`): softmax temperature ``tau`` (TelME code: 4 for MELD, 2 for IEMOCAP).
        inter_weight (`float`, *optional*, defaults to 1.0): weight of ``L_inter`` (``beta`` in DIST).
        intra_weight (`float`, *optional*, defaults to 1.0): weight of ``L_intra`` (``gamma`` in DIST).

    Returns:
        `torch.Tensor`: a float32 scalar (float64 for float64 inputs).

    Example:

    ```python
    >>> import torch
    >>> from telme_hf.training.losses import response_distillation_loss
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    >>> round(response_distillation_loss(logits, logits, temperature=1.0).item(), 4)
    0.0

    ```
    """
    _check_temperature("temperature", temperature)
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "`student_logits` and `teacher_logits` must both have shape (batch_size, num_classes), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}."
        )
    with _autocast_disabled(student_logits.device):
        student_logits, teacher_logits = _upcast(student_logits, teacher_logits.detach())
        student_probs = F.softmax(student_logits / temperature, dim=1)
        teacher_probs = F.softmax(teacher_logits / temperature, dim=1)
        inter = 1.0 - pearson_correlation(student_probs, teacher_probs, dim=1).mean()
        intra = 1.0 - pearson_correlation(student_probs, teacher_probs, dim=0).mean()
        return temperature**2 * (inter_weight * inter + intra_weight * intra)


def feature_distillation_loss(
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    r"""Feature-distillation loss (``L_feature`` of TelME): match the batch similarity structure of the teacher.

    Formula, for features of shape (B, D)::

        T = teacher rows L2-normalised,   S = student rows L2-normalised
        M  = T T^T        (B x B, teacher-teacher cosine similarities: the target)
        M' = T S^T        (B x B, teacher-student cosine similarities)
        P = softmax(M / t, dim=1),   Q = softmax(M' / t, dim=1)
        L = (1/B) * sum_i KL(P_i || Q_i) = (1/B) * sum_ij P_ij * (log P_ij - log Q_ij)

    i.e. ``KLDivLoss(reduction="batchmean")``. ``L >= 0`` and ``L = 0`` when the student features point in the
    same directions as the teacher's (``M' = M``). Both sides are normalised with ``F.normalize`` (``eps=1e-12``, its
    default, as in the original), so an all-zero feature vector is mapped to the zero vector instead of NaN. The
    teacher side is detached; ``log P`` and ``log Q`` come from ``log_softmax`` for stability.

    Args:
        student_features (`torch.Tensor` of shape `(batch_size, hidden_size)`): student features ``F_a`` / ``F_v``
            after projection to the teacher's width.
        teacher_features (`torch.Tensor` of shape `(batch_size, hidden_size)`): teacher feature ``F_T``.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature ``t``.

    Returns:
        `torch.Tensor`: a float32 scalar (float64 for float64 inputs).

    Example:

    ```python
    >>> import torch
    >>> from telme_hf.training.losses import feature_distillation_loss
    >>> teacher = torch.randn(4, 8)
    >>> feature_distillation_loss(3.0 * teacher, teacher).abs().item() < 1e-6  # same directions
    True

    ```
    """
    _check_temperature("temperature", temperature)
    if student_features.dim() != 2 or student_features.shape != teacher_features.shape:
        raise ValueError(
            "`student_features` and `teacher_features` must both have shape (batch_size, hidden_size), got "
            f"{tuple(student_features.shape)} and {tuple(teacher_features.shape)}. Project the student features "
            "to the teacher's width first."
        )
    with _autocast_disabled(student_features.device):
        student_features, teacher_features = _upcast(student_features, teacher_features.detach())
        teacher = F.normalize(teacher_features, p=2, dim=1)
        student = F.normalize(student_features, p=2, dim=1)
        log_p = F.log_softmax(teacher @ teacher.T / temperature, dim=1)
        log_q = F.log_softmax(teacher @ student.T / temperature, dim=1)
        # kl_div(input=log Q, target=log P, log_target=True) = sum P * (log P - log Q); "batchmean" divides by B.
        return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def student_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    labels: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    temperature: float,
    feature_temperature: float = 1.0,
) -> dict[str, torch.Tensor]:
    r"""Full stage-2 objective of a TelME student (audio or video), with its parts for logging.

    Formula::

        L = CE(Z^s, y) + alpha * L_response(Z^s, Z^t; tau) + beta * L_feature(F^s, F^t; t)

    with ``L_response`` = :func:`response_distillation_loss` (inter and intra weights 1) and ``L_feature`` =
    :func:`feature_distillation_loss`. The original code uses ``alpha=1, tau=4`` on MELD and ``alpha=0.1, tau=2`` on
    IEMOCAP, ``beta=1`` and ``t=1`` on both.

    The cross-entropy uses ``ignore_index=-100`` (the ``transformers`` convention); the distillation terms use every
    row of the batch, since they need no label.

    Args:
        student_logits (`torch.Tensor` of shape `(batch_size, num_classes)`): student logits.
        teacher_logits (`torch.Tensor` of shape `(batch_size, num_classes)`): teacher logits (detached).
        student_features (`torch.Tensor` of shape `(batch_size, hidden_size)`): projected student features.
        teacher_features (`torch.Tensor` of shape `(batch_size, hidden_size)`): teacher features (detached).
        labels (`torch.LongTensor` of shape `(batch_size,)`): gold class indices.
        alpha (`float`): weight of the response loss.
        beta (`float`): weight of the feature loss.
        temperature (`float`): temperature ``tau`` of the response loss.
        feature_temperature (`float`, *optional*, defaults to 1.0): temperature ``t`` of the feature loss.

    Returns:
        `dict[str, torch.Tensor]`: float32 scalars ``"loss"`` (the total, to back-propagate), ``"ce"``,
        ``"response"`` and ``"feature"`` (the unweighted parts).

    Example:

    ```python
    >>> import torch
    >>> from telme_hf.training.losses import student_distillation_loss
    >>> out = student_distillation_loss(
    ...     torch.randn(4, 7, requires_grad=True), torch.randn(4, 7), torch.randn(4, 16), torch.randn(4, 16),
    ...     torch.tensor([0, 3, 6, 4]), alpha=1.0, beta=1.0, temperature=4.0,
    ... )
    >>> sorted(out)
    ['ce', 'feature', 'loss', 'response']
    >>> out["loss"].backward()

    ```
    """
    with _autocast_disabled(student_logits.device):
        (logits,) = _upcast(student_logits)
        ce = F.cross_entropy(logits, labels.long(), ignore_index=-100)
    response = response_distillation_loss(student_logits, teacher_logits, temperature)
    feature = feature_distillation_loss(student_features, teacher_features, feature_temperature)
    loss = ce + alpha * response + beta * feature
    return {"loss": loss, "ce": ce, "response": response, "feature": feature}
