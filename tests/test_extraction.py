"""Extraction attacks see the victim only through queries, and every query is counted."""

from __future__ import annotations

import pytest
import torch

from uapfp.archs import create_model
from uapfp.data import load_dataset
from uapfp.extraction import CloudLeak, _input_gradient_sign, create_attack, list_attacks
from uapfp.suspects.local import TorchSuspect
from uapfp.training import TrainConfig, predict_logits, train_model

SMALL = {
    "knockoff": {"budget": 1500},
    "copycat": {"budget": 1500},
    "jbda": {"seed_size": 400, "rounds": 2, "round_epochs": 1},
    "cloudleak": {"natural": 800, "adversarial": 400, "steps": 2},
}


class QueryOnly:
    """Exposes only what an API client would see; any other attribute is an error."""

    _allowed = {"queries", "num_classes", "input_shape", "output", "name"}

    def __init__(self, suspect):
        object.__setattr__(self, "_suspect", suspect)

    def __call__(self, x):
        return object.__getattribute__(self, "_suspect")(x)

    def __getattr__(self, name):
        if name in QueryOnly._allowed:
            return getattr(object.__getattribute__(self, "_suspect"), name)
        raise AssertionError(f"an attack reached for the oracle's {name!r}")


@pytest.fixture(scope="module")
def permuted_victim():
    """A trained model whose classes are relabelled by a derangement: its answers never
    match the pool's true labels, so a copy that used those labels would show it."""
    ds = load_dataset("fashion-mnist-slice")
    teacher = create_model("C")
    train_model(teacher, ds.x_train[:3000], ds.y_train[:3000], config=TrainConfig(epochs=2, seed=0), progress=False)
    perm = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])
    seen = {"rows": 0}

    def answer(x):
        seen["rows"] += len(x)
        # probs[:, perm[j]] = teacher's probability of class j, i.e. class j is answered as perm[j]
        p = torch.softmax(teacher(x), dim=1)
        return torch.zeros_like(p).index_copy_(1, perm, p)

    return ds, teacher, perm, seen, answer


@pytest.mark.parametrize("name", list_attacks())
def test_attack_uses_only_queries(name, permuted_victim):
    ds, teacher, perm, seen, answer = permuted_victim
    for p in teacher.parameters():
        p.grad = None
    suspect = TorchSuspect(answer, logits=False, input_shape=(1, 28, 28), num_classes=10, name="victim")
    pool = ds.x_train[3000:5000].clone()  # images only: the attack never gets labels
    before = seen["rows"]
    attack = create_attack(name, **SMALL[name])
    result = attack.run(QueryOnly(suspect), pool, make_model=lambda: create_model("C"),
                        train=TrainConfig(epochs=2, seed=1), progress=False)  # fmt: skip
    # every query was counted, and the counter agrees with what the victim actually answered
    assert result.queries == suspect.queries == seen["rows"] - before > 0
    if name in ("knockoff", "copycat"):
        assert result.queries == 1500
    # the victim's weights were never used for gradients
    assert all(p.grad is None for p in teacher.parameters())
    # the copy follows the victim's (permuted) answers, not the pool's true labels
    x_test, y_test = ds.x_test, ds.y_test
    copy_pred = predict_logits(result.model, x_test).argmax(1)
    victim_pred = perm[predict_logits(teacher, x_test).argmax(1)]
    fidelity = float((copy_pred == victim_pred).float().mean())
    true_acc = float((copy_pred == y_test).float().mean())
    assert fidelity > 0.6, fidelity
    assert true_acc < 0.15, true_acc


def test_unknown_attack_and_bad_hyperparameters():
    from uapfp.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown extraction attack"):
        create_attack("nope")
    with pytest.raises(ConfigError, match="bad hyperparameters"):
        create_attack("jbda", nonsense=1)


def test_the_attackers_gradient_steps_in_bfloat16_follow_the_float32_ones(permuted_victim):
    """JBDA's and CloudLeak's steps on their substitute run in the copy's precision; in bfloat16
    (a zoo trained in it) they must still be the float32 steps, up to gradients near zero."""
    ds, teacher, *_ = permuted_victim
    x = ds.x_test[:256]
    target = predict_logits(teacher, x).argmax(1)
    fp32, bf16 = TrainConfig(), TrainConfig(cpu_bf16=True)
    exact = _input_gradient_sign(teacher, x, target, train=fp32)
    fast = _input_gradient_sign(teacher, x, target, train=bf16)
    x_ref = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(teacher(x_ref).gather(1, target[:, None]).sum(), x_ref)[0]
    assert torch.equal(exact, grad.sign())  # the batched helper against one plain autograd call
    clear = grad.abs() > 1e-3 * grad.abs().amax()
    assert clear.float().mean() > 0.3
    assert (fast == exact)[clear].float().mean() > 0.95

    attack = CloudLeak(eps=0.1, steps=3)
    adv32, adv16 = attack._craft(teacher, x, train=fp32), attack._craft(teacher, x, train=bf16)
    for adv in (adv32, adv16):
        assert (adv - x).abs().amax() <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert (adv16 == adv32).float().mean() > 0.8
    assert not torch.equal(fast, exact)  # and bfloat16 it was
