"""Tests of the distillation losses against an independent NumPy transcription of the formulas."""

import numpy as np
import pytest
import torch

from telme_hf.training.losses import (
    feature_distillation_loss,
    pearson_correlation,
    response_distillation_loss,
    student_distillation_loss,
)


# ---------------------------------------------------------------------------------------------------------------
# Reference implementation (float64 NumPy, written from the formulas, not from the code under test)
# ---------------------------------------------------------------------------------------------------------------


def np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def np_pearson_rows(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Correlation of a[i, :] with b[i, :] for each row i."""
    out = []
    for u, v in zip(a, b):
        u = u - u.mean()
        v = v - v.mean()
        out.append(float(np.dot(u, v)) / (np.sqrt(np.dot(u, u)) * np.sqrt(np.dot(v, v)) + eps))
    return np.array(out)


def np_dist_loss(zs: np.ndarray, zt: np.ndarray, tau: float, w_inter: float = 1.0, w_intra: float = 1.0) -> float:
    ys = np_softmax(zs / tau, axis=1)
    yt = np_softmax(zt / tau, axis=1)
    inter = 1.0 - np_pearson_rows(ys, yt).mean()
    intra = 1.0 - np_pearson_rows(ys.T, yt.T).mean()
    return tau**2 * (w_inter * inter + w_intra * intra)


def np_feature_loss(student: np.ndarray, teacher: np.ndarray, t: float = 1.0) -> float:
    def l2n(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    tn, sn = l2n(teacher), l2n(student)
    log_p = np_log_softmax(tn @ tn.T / t, axis=1)
    log_q = np_log_softmax(tn @ sn.T / t, axis=1)
    return float((np.exp(log_p) * (log_p - log_q)).sum() / student.shape[0])


def np_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(-np_log_softmax(logits, axis=1)[np.arange(len(labels)), labels].mean())


def assert_close(actual: torch.Tensor, expected: float) -> None:
    np.testing.assert_allclose(actual.detach().double().numpy(), expected, rtol=1e-5, atol=1e-5)


def random_logits(generator: torch.Generator, batch_size: int, num_classes: int = 7) -> torch.Tensor:
    return 3.0 * torch.randn(batch_size, num_classes, generator=generator)


# ---------------------------------------------------------------------------------------------------------------
# pearson_correlation
# ---------------------------------------------------------------------------------------------------------------


def test_pearson_matches_numpy_corrcoef():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 9, generator=generator), torch.randn(5, 9, generator=generator)
    expected = [np.corrcoef(u, v)[0, 1] for u, v in zip(a.double().numpy(), b.double().numpy())]
    assert_close(pearson_correlation(a, b, dim=1), expected)
    # `dim=0` correlates columns.
    expected_columns = [np.corrcoef(u, v)[0, 1] for u, v in zip(a.T.double().numpy(), b.T.double().numpy())]
    assert_close(pearson_correlation(a, b, dim=0), expected_columns)


def test_pearson_of_constant_vector_is_zero_with_finite_gradient():
    a = torch.ones(2, 4, requires_grad=True)
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    rho = pearson_correlation(a, b)
    assert torch.equal(rho, torch.zeros(2))
    rho.sum().backward()
    assert torch.isfinite(a.grad).all()


# ---------------------------------------------------------------------------------------------------------------
# response_distillation_loss (DIST)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_response_loss_matches_reference(temperature, batch_size):
    generator = torch.Generator().manual_seed(batch_size * 10 + int(temperature))
    zs, zt = random_logits(generator, batch_size), random_logits(generator, batch_size)
    expected = np_dist_loss(zs.double().numpy(), zt.double().numpy(), temperature)
    assert_close(response_distillation_loss(zs, zt, temperature), expected)


@pytest.mark.parametrize("batch_size", [2, 5])
def test_response_loss_float64_matches_reference_tightly(batch_size):
    # In float64 the comparison can be tight enough to pin where `eps` enters the correlation: with identical
    # logits, tau = 4 and a small batch, the eps term alone makes the loss visibly non-zero.
    logits = random_logits(torch.Generator().manual_seed(20 + batch_size), batch_size).double()
    loss = response_distillation_loss(logits, logits.clone(), 4.0)
    assert loss.dtype == torch.float64
    np.testing.assert_allclose(loss.item(), np_dist_loss(logits.numpy(), logits.numpy(), 4.0), rtol=1e-10, atol=1e-12)
    other = random_logits(torch.Generator().manual_seed(30 + batch_size), batch_size).double()
    np.testing.assert_allclose(
        response_distillation_loss(other, logits, 4.0).item(),
        np_dist_loss(other.numpy(), logits.numpy(), 4.0),
        rtol=1e-10,
    )


def test_response_loss_weights():
    generator = torch.Generator().manual_seed(1)
    zs, zt = random_logits(generator, 6), random_logits(generator, 6)
    expected = np_dist_loss(zs.double().numpy(), zt.double().numpy(), 2.0, w_inter=0.3, w_intra=1.7)
    assert_close(response_distillation_loss(zs, zt, 2.0, inter_weight=0.3, intra_weight=1.7), expected)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_response_loss_is_zero_for_identical_logits(temperature):
    logits = random_logits(torch.Generator().manual_seed(2), 8)
    assert response_distillation_loss(logits, logits.clone(), temperature).abs().item() < 1e-5


def test_response_loss_batch_of_one_has_constant_intra_term():
    # With one sample every class column is a single value: its correlation is defined as 0, so L_intra = 1.
    logits = random_logits(torch.Generator().manual_seed(3), 1)
    assert_close(response_distillation_loss(logits, logits.clone(), 4.0), 16.0)


def test_response_loss_is_computed_in_float32_under_autocast():
    generator = torch.Generator().manual_seed(4)
    zs = random_logits(generator, 8).bfloat16()
    zt = random_logits(generator, 8).bfloat16()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = response_distillation_loss(zs, zt, 2.0)
    assert loss.dtype == torch.float32
    assert_close(loss, np_dist_loss(zs.double().numpy(), zt.double().numpy(), 2.0))


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_response_loss_rejects_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        response_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), temperature)


def test_response_loss_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        response_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)


# ---------------------------------------------------------------------------------------------------------------
# feature_distillation_loss
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_feature_loss_matches_reference(temperature, batch_size):
    generator = torch.Generator().manual_seed(100 + batch_size)
    student = torch.randn(batch_size, 16, generator=generator)
    teacher = torch.randn(batch_size, 16, generator=generator)
    expected = np_feature_loss(student.double().numpy(), teacher.double().numpy(), temperature)
    assert_close(feature_distillation_loss(student, teacher, temperature), expected)


def test_feature_loss_float64_and_mixed_dtypes():
    generator = torch.Generator().manual_seed(21)
    student = torch.randn(5, 16, generator=generator, dtype=torch.float64)
    teacher = torch.randn(5, 16, generator=generator)  # float32 teacher, float64 student: promoted to float64
    loss = feature_distillation_loss(student, teacher, 0.5)
    assert loss.dtype == torch.float64
    expected = np_feature_loss(student.numpy(), teacher.double().numpy(), 0.5)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-10)


def test_feature_loss_is_not_symmetric():
    # The target distribution comes from the teacher alone, so swapping the arguments changes the value; the
    # reference test above therefore pins which argument is the teacher.
    generator = torch.Generator().manual_seed(5)
    a, b = torch.randn(6, 16, generator=generator), torch.randn(6, 16, generator=generator)
    assert abs(feature_distillation_loss(a, b).item() - feature_distillation_loss(b, a).item()) > 1e-3


def test_feature_loss_is_zero_when_student_equals_teacher():
    teacher = torch.randn(8, 16, generator=torch.Generator().manual_seed(6))
    assert feature_distillation_loss(teacher.clone(), teacher).abs().item() < 1e-6
    # Only directions matter: a rescaled student gives P == Q too.
    assert feature_distillation_loss(5.0 * teacher, teacher).abs().item() < 1e-6


def test_feature_loss_is_computed_in_float32_under_autocast():
    generator = torch.Generator().manual_seed(7)
    student = torch.randn(8, 16, generator=generator).bfloat16()
    teacher = torch.randn(8, 16, generator=generator).bfloat16()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = feature_distillation_loss(student, teacher)
    assert loss.dtype == torch.float32
    assert_close(loss, np_feature_loss(student.double().numpy(), teacher.double().numpy()))


def test_feature_loss_rejects_width_mismatch():
    with pytest.raises(ValueError, match="Project the student features"):
        feature_distillation_loss(torch.zeros(2, 8), torch.zeros(2, 16))


# ---------------------------------------------------------------------------------------------------------------
# student_distillation_loss
# ---------------------------------------------------------------------------------------------------------------


def test_student_loss_combines_parts():
    generator = torch.Generator().manual_seed(8)
    zs, zt = random_logits(generator, 5), random_logits(generator, 5)
    fs, ft = torch.randn(5, 16, generator=generator), torch.randn(5, 16, generator=generator)
    labels = torch.tensor([0, 6, 3, 3, 1])
    out = student_distillation_loss(zs, zt, fs, ft, labels, alpha=0.1, beta=0.7, temperature=2.0)
    assert set(out) == {"loss", "ce", "response", "feature"}

    ce = np_cross_entropy(zs.double().numpy(), labels.numpy())
    response = np_dist_loss(zs.double().numpy(), zt.double().numpy(), 2.0)
    feature = np_feature_loss(fs.double().numpy(), ft.double().numpy())
    assert_close(out["ce"], ce)
    assert_close(out["response"], response)
    assert_close(out["feature"], feature)
    assert_close(out["loss"], ce + 0.1 * response + 0.7 * feature)


def test_student_loss_ignores_label_minus_100_in_cross_entropy():
    generator = torch.Generator().manual_seed(9)
    zs, zt = random_logits(generator, 4), random_logits(generator, 4)
    fs, ft = torch.randn(4, 8, generator=generator), torch.randn(4, 8, generator=generator)
    out = student_distillation_loss(
        zs, zt, fs, ft, torch.tensor([2, -100, 5, -100]), alpha=1.0, beta=1.0, temperature=4.0
    )
    assert_close(out["ce"], np_cross_entropy(zs[[0, 2]].double().numpy(), np.array([2, 5])))


# ---------------------------------------------------------------------------------------------------------------
# Degenerate inputs: finite values and finite gradients, gradients to the student only
# ---------------------------------------------------------------------------------------------------------------


def _degenerate_cases():
    generator = torch.Generator().manual_seed(10)

    def logits(batch_size):
        return random_logits(generator, batch_size)

    def features(batch_size, scale=1.0):
        return scale * torch.randn(batch_size, 16, generator=generator)

    big = torch.tensor([[1e4, -1e4, 0.0, 1e4, -1e4, 0.0, 1e4], [-1e4, 1e4, 1e4, 0.0, -1e4, 1e4, 0.0]])
    zeros = torch.zeros(4, 16)
    # (student_logits, teacher_logits, student_features, teacher_features)
    return {
        "batch_size_1": (logits(1), logits(1), features(1), features(1)),
        "constant_student_logits": (torch.zeros(4, 7), logits(4), features(4), features(4)),
        "constant_logits_both": (torch.full((4, 7), 3.0), torch.full((4, 7), -2.0), features(4), features(4)),
        "zero_student_features": (logits(4), logits(4), zeros, features(4)),
        "zero_features_both": (logits(4), logits(4), zeros, zeros),
        "huge_logits": (big, -big.flip(0), features(2, scale=1e4), features(2)),
    }


@pytest.mark.parametrize("case", sorted(_degenerate_cases()))
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_losses_and_gradients_are_finite(case, temperature):
    zs, zt, fs, ft = (x.clone().requires_grad_(True) for x in _degenerate_cases()[case])
    labels = torch.zeros(zs.shape[0], dtype=torch.long)
    out = student_distillation_loss(zs, zt, fs, ft, labels, alpha=1.0, beta=1.0, temperature=temperature)
    for name, value in out.items():
        assert torch.isfinite(value), f"{name} = {value}"
    out["loss"].backward()
    assert torch.isfinite(zs.grad).all() and torch.isfinite(fs.grad).all()
    # The teacher is a constant of the student objective, even with requires_grad=True.
    assert zt.grad is None and ft.grad is None


def test_gradient_reaches_student_only():
    generator = torch.Generator().manual_seed(11)
    # A teacher whose parameters were not frozen: the loss must still not back-propagate into it.
    teacher_encoder, teacher_head = torch.nn.Linear(16, 16), torch.nn.Linear(16, 7)
    teacher_features = teacher_encoder(torch.randn(6, 16, generator=generator))
    teacher_logits = teacher_head(teacher_features)
    student_logits = random_logits(generator, 6).requires_grad_(True)
    student_features = torch.randn(6, 16, generator=generator).requires_grad_(True)
    out = student_distillation_loss(
        student_logits,
        teacher_logits,
        student_features,
        teacher_features,
        torch.arange(6) % 7,
        alpha=1.0,
        beta=1.0,
        temperature=4.0,
    )
    out["loss"].backward()
    teacher_parameters = [*teacher_encoder.parameters(), *teacher_head.parameters()]
    assert all(p.grad is None for p in teacher_parameters)
    assert student_logits.grad.abs().sum() > 0 and student_features.grad.abs().sum() > 0
