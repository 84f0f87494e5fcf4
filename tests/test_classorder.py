"""The class-order check: a suspect that numbers the classes otherwise is read in the victim's order."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from uapfp.cards import load_model_from_card
from uapfp.classorder import CLASSES_KEY, class_queries, confirms, find_order, per_class
from uapfp.errors import ConfigError
from uapfp.querylog import recheck_query_log
from uapfp.suspects.local import TorchSuspect
from uapfp.suspects.spec import card_suspect
from uapfp.training import predict_logits
from uapfp.verify import CLASS_ORDER_NOT_CHECKED, CLASS_ORDER_UNANSWERED, INCONCLUSIVE, NOT_SHOWN, PIRACY, verify

ORDER = (3, 0, 1, 2, 9, 5, 6, 8, 7, 4)  # output j answers class ORDER[j]: two classes stay, eight move


def _one_hot(labels: list[int], k: int = 10) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), k).float()


def test_find_order_on_hand_made_answers():
    y = torch.arange(10).repeat_interleave(5)  # five images of each class
    right = find_order(_one_hot(y.tolist()), y)
    assert right.order is None and right.right == right.right_reordered == 50 and right.images == 50
    # a suspect whose output j answers class ORDER[j]: on an image of class c it says the j with ORDER[j] == c
    said = [ORDER.index(c) for c in y.tolist()]
    found = find_order(_one_hot(said), y)
    assert found.order == ORDER and found.right == 10 and found.right_reordered == 50
    assert torch.equal(found.apply(_one_hot(said)), _one_hot(y.tolist()))  # back in the victim's order
    # two classes swapped: 10 of 50 images move, a gain of exactly MIN_GAIN
    swapped = [{0: 1, 1: 0}.get(c, c) for c in y.tolist()]
    assert find_order(_one_hot(swapped), y).order == (1, 0, *range(2, 10))
    # one of the swapped classes' images right after all: the gain falls below MIN_GAIN, so the answers stay as given
    swapped[0] = 0
    assert find_order(_one_hot(swapped), y).order is None
    # a weak model: right on 20 of 50 in the victim's order, 30 in another (each output one class on): too few
    weak = [c if i % 5 < 2 else (c + 1) % 10 for i, c in enumerate(y.tolist())]
    weak_found = find_order(_one_hot(weak), y)
    assert weak_found.order is None and weak_found.right == 20 and weak_found.right_reordered == 30
    assert "may not classify the victim's classes" in weak_found.describe()
    # 0.8 of 49 images is 40, not 39: seven classes of 7, classes 0 and 1 swapped, ten more images called 6
    y7 = torch.arange(7).repeat_interleave(7)
    near = [6 if i in range(14, 24) else {0: 1, 1: 0}.get(c, c) for i, c in enumerate(y7.tolist())]
    found7 = find_order(_one_hot(near, 7), y7)
    assert (found7.right, found7.right_reordered) == (25, 39) and found7.order is None  # 39 < 40: not taken
    near[14] = 2  # one more right in both orders: 40 of 49, taken
    assert find_order(_one_hot(near, 7), y7).order == (1, 0, 2, 3, 4, 5, 6)
    # a class with no image: classes 8 and 9 have none, 0 and 1 are swapped; the victim's order is kept where the
    # images say nothing (a solver that did not prefer it could claim that output 8 answers class 9)
    y8 = torch.arange(8).repeat_interleave(5)
    found8 = find_order(_one_hot([{0: 1, 1: 0}.get(c, c) for c in y8.tolist()]), y8)
    assert found8.order == (1, 0, *range(2, 10))
    # one class for every image: every order labels 5 right, the victim's is kept (ties go to it)
    assert find_order(_one_hot([4] * 50), y).order is None
    # probabilities and top-k rows are read by their largest entry
    soft = torch.softmax(torch.randn(50, 10) + 8 * _one_hot(said), -1)
    assert find_order(soft, y).order == ORDER
    with pytest.raises(ValueError):
        find_order(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))


def test_class_queries_are_the_victims_most_confident_right_images(tiny_zoo):
    data = tiny_zoo.load_dataset()
    victim = load_model_from_card(tiny_zoo.victim)
    x, y = data.x_test[:600], data.y_test[:600]
    images, labels = class_queries(victim, x, y, num_classes=10)
    k = per_class(10)
    assert k == 5 and images.shape == (1, 50, *x.shape[1:]) and labels.shape == (1, 50)
    assert labels[0, :10].unique().numel() > 2  # a seeded order, not class by class
    assert torch.equal(class_queries(victim, x, y, num_classes=10)[0], images)  # the same order every time
    probs = predict_logits(victim, x).softmax(-1)
    where = {x[i].numpy().tobytes(): i for i in range(len(x))}
    for c in range(10):  # a slow reference: class c's right images, most confident first
        ranked = sorted((i for i in range(len(x)) if int(y[i]) == c and int(probs[i].argmax()) == c),
                        key=lambda i: -float(probs[i].max()))  # fmt: skip
        got = sorted(where[img.numpy().tobytes()] for img in images[0][labels[0] == c])
        assert got == sorted(ranked[:k]), c


def test_class_queries_take_what_a_class_has(tiny_zoo, caplog):
    """A class the victim labels too few held-out images of right gets those, with a warning."""
    data = tiny_zoo.load_dataset()
    victim = load_model_from_card(tiny_zoo.victim)
    label = predict_logits(victim, data.x_test[:300]).argmax(-1)
    keep = (data.y_test[:300] != 3) | (label != 3)  # class 3: no right image left
    images, labels = class_queries(victim, data.x_test[:300][keep], data.y_test[:300][keep], num_classes=10)
    assert (labels != 3).all() and images.shape[1] == 45
    assert "fewer than 5 held-out images right for the classes 3 (0)" in caplog.text


class _Permuted(nn.Module):
    """A model whose output j answers class ``order[j]``."""

    def __init__(self, inner: nn.Module, order: tuple[int, ...]) -> None:
        super().__init__()
        self.inner, self.order = inner, list(order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[:, self.order]


def _permuted(card: dict, order: tuple[int, ...]) -> TorchSuspect:
    """The model of ``card``, serving its outputs in ``order``."""
    return TorchSuspect(_Permuted(load_model_from_card(card), order), input_shape=(1, 28, 28), num_classes=10,
                        name=f"{card['id']}-permuted")  # fmt: skip


def test_a_copy_that_permutes_its_outputs_gets_the_verdict_of_the_copy(tiny_zoo, tiny_kit, tmp_path):
    """The thief's cheapest disguise: the same copy, its outputs in another order. Read back in the victim's order, it
    gets the plain copy's verdict, similarity for similarity; its query log rechecks to the same."""
    ref = tiny_kit.references[CLASSES_KEY]
    assert ref.queries.shape[:2] == (1, 50) and ref.null.shape[:3] == (len(tiny_kit.info["models"]["calibration"]), 1, 50)
    copy = next(c for c in tiny_zoo.cards if c["id"] in tiny_kit.info["models"]["heldout"] and c["role"] == "piracy")
    plain = verify(tiny_kit, card_suspect(copy))
    assert plain.class_order["order"] is None and plain.class_order["right"] >= 40
    assert plain.queries == 50 + 2 * 30 * 8
    disguised = _permuted(copy, ORDER)
    raw = disguised(tiny_kit.probe_images[0, :5])
    assert not torch.equal(raw, card_suspect(copy)(tiny_kit.probe_images[0, :5]))  # it does answer otherwise
    v = verify(tiny_kit, _permuted(copy, ORDER), query_log=tmp_path / "q.jsonl")
    assert v.class_order["order"] == list(ORDER) and v.class_order["right_reordered"] >= 40
    assert v.verdict == plain.verdict == PIRACY
    assert v.similarity == pytest.approx(plain.similarity, abs=1e-6) and v.p_value == pytest.approx(plain.p_value)
    assert "REORDERED" in v.render() and "its output 0 answers class 3 (Dress)" in v.render()
    again = recheck_query_log(tiny_kit, tmp_path / "q.jsonl")
    assert again.class_order == v.class_order and again.similarity == pytest.approx(v.similarity, abs=1e-6)
    assert again.queries == v.queries == plain.queries
    # read as given, without the check (a kit without the class-order images), the default method (siblings) sees no
    # copy in it; with it, the copy's own similarity
    bare = replace(tiny_kit, references={k: r for k, r in tiny_kit.references.items() if k != CLASSES_KEY})
    unchecked = verify(bare, _permuted(copy, ORDER), method="siblings")
    assert unchecked.class_order == {} and CLASS_ORDER_NOT_CHECKED in unchecked.render()
    checked = verify(tiny_kit, _permuted(copy, ORDER), method="siblings")
    assert checked.similarity == pytest.approx(verify(tiny_kit, card_suspect(copy), method="siblings").similarity, abs=1e-6)
    assert (unchecked.verdict, checked.verdict) == (NOT_SHOWN, PIRACY)
    assert unchecked.similarity < checked.similarity - 0.2, (unchecked.similarity, checked.similarity)


def test_recheck_refuses_a_log_without_the_class_order_queries(tiny_zoo, tiny_kit, tmp_path):
    copy = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    log = tmp_path / "q.jsonl"
    verify(tiny_kit, _permuted(copy, ORDER), query_log=log)
    lines = log.read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if json.loads(line)["queries"] != CLASSES_KEY]
    assert len(kept) == len(lines) - 50
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join(kept) + "\n")
    with pytest.raises(ConfigError, match="sends its 'classes' queries first"):
        recheck_query_log(tiny_kit, edited)


def test_the_evidence_page_says_the_class_order(tiny_zoo, tiny_kit):
    import html

    from uapfp.report import verdict_report

    copy = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    page = html.unescape(verdict_report(verify(tiny_kit, _permuted(copy, ORDER)).to_dict()))
    assert "the suspect's class order" in page and "REORDERED" in page
    assert "The suspect numbers the classes otherwise than the victim" in page
    old = {**verify(tiny_kit, card_suspect(copy)).to_dict(), "class_order": {}}  # a verdict of before the check
    assert "not checked (the kit holds no class-order images)" in html.unescape(verdict_report(old))


def test_a_scan_row_says_when_the_classes_were_reordered(tiny_zoo, tiny_kit, tmp_path):
    from uapfp.scan import Target, _row

    copy = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    target = Target(spec="onnx:suspect.onnx", name="suspect")
    permuted = verify(tiny_kit, _permuted(copy, ORDER)).to_dict()
    plain = verify(tiny_kit, card_suspect(copy)).to_dict()
    assert _row(target, permuted, tmp_path / "a.json").classes_reordered
    turned = {**plain, "class_order": {"order": None, "contradicted": True, "note": "..."}}
    assert _row(target, turned, tmp_path / "d.json").class_order_contradicted
    assert not _row(target, permuted, tmp_path / "a.json").class_order_contradicted
    assert not _row(target, plain, tmp_path / "b.json").classes_reordered
    assert not _row(target, {**plain, "class_order": {}}, tmp_path / "c.json").classes_reordered  # not checked


class _FirstCallPermuted(nn.Module):
    """A model that answers its first batch (the class-order check's images) in ``order``, the rest as it is: a
    thief who turns the check against the owner."""

    def __init__(self, inner: nn.Module, order: tuple[int, ...]) -> None:
        super().__init__()
        self.inner, self.order, self.calls = inner, list(order), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(x)
        return out[:, self.order] if self.calls == 1 else out


def test_an_order_shown_only_on_the_check_images_is_not_taken(tiny_zoo, tiny_kit, tmp_path):
    """Answering the check's images in another order, and the rest as given, gets the copy's own verdict, and the
    verdict says the check's images were answered otherwise than the rest."""
    copy = next(c for c in tiny_zoo.cards if c["id"] in tiny_kit.info["models"]["heldout"] and c["role"] == "piracy")
    plain = verify(tiny_kit, card_suspect(copy), method="siblings")
    model = _FirstCallPermuted(load_model_from_card(copy), ORDER)
    suspect = TorchSuspect(model, input_shape=(1, 28, 28), num_classes=10, name="turned", batch_size=1000)
    v = verify(tiny_kit, suspect, method="siblings", query_log=tmp_path / "q.jsonl")
    assert model.calls > 1 and v.class_order["contradicted"] and v.class_order["order"] is None
    assert v.verdict == plain.verdict == PIRACY and v.similarity == pytest.approx(plain.similarity, abs=1e-6)
    assert "answer those images otherwise than the rest" in v.render()
    import html

    from uapfp.report import verdict_report

    assert "it may answer those images otherwise on purpose" in html.unescape(verdict_report(v.to_dict()))
    again = recheck_query_log(tiny_kit, tmp_path / "q.jsonl")
    assert again.class_order == v.class_order and again.similarity == pytest.approx(v.similarity, abs=1e-6)


def test_confirms_compares_the_other_answers_in_both_orders():
    y = torch.arange(10).repeat_interleave(5)
    order = find_order(_one_hot([ORDER.index(c) for c in y.tolist()]), y)
    victim = torch.arange(10).repeat(3)  # the victim's labels on 30 other queries
    as_given = _one_hot(victim.tolist())
    permuted = as_given[:, list(ORDER)]  # output j answers class ORDER[j]
    assert confirms(order, [permuted], [victim]) and not confirms(order, [as_given], [victim])
    assert confirms(order, [permuted.unsqueeze(0)], [_one_hot(victim.tolist()).unsqueeze(0)])  # (S, n, K) answers
    assert not confirms(find_order(_one_hot(y.tolist()), y), [permuted], [victim])  # no other order: nothing to take


def test_a_permuted_copy_answering_labels_only(tiny_zoo, tiny_kit):
    copy = next(c for c in tiny_zoo.cards if c["id"] in tiny_kit.info["models"]["heldout"] and c["role"] == "piracy")
    plain = verify(tiny_kit, card_suspect(copy, output="label"), method="siblings")
    suspect = TorchSuspect(_Permuted(load_model_from_card(copy), ORDER), input_shape=(1, 28, 28), num_classes=10,
                           output="label")  # fmt: skip
    v = verify(tiny_kit, suspect, method="siblings")
    assert v.class_order["order"] == list(ORDER) and v.similarity == pytest.approx(plain.similarity, abs=1e-6)


def test_a_budget_too_small_for_the_check_and_every_set_keeps_the_sets(tiny_zoo, tiny_kit, tmp_path):
    """The check never costs a verdict its sets: a budget that covers every set but not the check's images too
    skips the check (the verdict says so), as a kit without the check would; recheck of its log agrees."""
    copy = next(c for c in tiny_zoo.cards if c["id"] in tiny_kit.info["models"]["heldout"] and c["role"] == "piracy")
    exact = 2 * 30 * 8  # every set of the tiny kit's uap method
    v = verify(tiny_kit, card_suspect(copy, max_queries=exact), query_log=tmp_path / "q.jsonl")
    assert v.verdict == PIRACY and v.queries == exact and v.class_order["note"] == CLASS_ORDER_UNANSWERED
    assert CLASS_ORDER_UNANSWERED in v.render() and CLASS_ORDER_NOT_CHECKED not in v.render()
    assert json.loads((tmp_path / "q.jsonl").read_text().splitlines()[0])["class_order_check"] is False
    again = recheck_query_log(tiny_kit, tmp_path / "q.jsonl")
    assert again.class_order == v.class_order and again.similarity == pytest.approx(v.similarity, abs=1e-6)
    assert verify(tiny_kit, card_suspect(copy, max_queries=exact + 50)).class_order["order"] is None  # checked
    spent = verify(tiny_kit, card_suspect(copy, max_queries=10))  # too few for anything
    assert spent.verdict == INCONCLUSIVE and spent.queries == 0 and spent.class_order["note"] == CLASS_ORDER_UNANSWERED


def test_an_order_with_no_other_answers_to_bear_it_out_is_not_taken_nor_called_contradicted(tiny_kit):
    from uapfp.verify import CLASS_ORDER_STORED, read_in_order

    check = tiny_kit.references[CLASSES_KEY]
    said = _one_hot([ORDER.index(int(c)) for c in check.labels[0]])  # the check's images in another order
    _, found = read_in_order(tiny_kit, {"uap": torch.zeros(0)}, said)
    assert found["unconfirmed"] and not found["contradicted"] and found["order"] is None
    assert "no answer to the other queries was there to bear it out" in found["note"]
    assert read_in_order(tiny_kit, {}, None)[1] == {"note": CLASS_ORDER_STORED}  # scored as stored: not asked
    bare = replace(tiny_kit, references={k: r for k, r in tiny_kit.references.items() if k != CLASSES_KEY})
    assert read_in_order(bare, {}, said)[1] == {}  # a kit without the images: nothing to say


def test_recheck_refuses_a_second_set_of_class_order_queries_and_an_older_log(tiny_zoo, tiny_kit, tmp_path):
    copy = next(c for c in tiny_zoo.cards if c["role"] == "piracy")
    log = tmp_path / "q.jsonl"
    verify(tiny_kit, card_suspect(copy), query_log=log)
    lines = log.read_text().splitlines()
    twice = [lines[0], *lines[1:51], *lines[1:51], *lines[51:]]
    (tmp_path / "twice.jsonl").write_text("\n".join(twice) + "\n")
    with pytest.raises(ConfigError, match="more classes sets than the kit"):
        recheck_query_log(tiny_kit, tmp_path / "twice.jsonl")
    header = {**json.loads(lines[0]), "format": "uapfp-query-log/2"}
    (tmp_path / "old.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(ConfigError, match="verify the suspect again"):
        recheck_query_log(tiny_kit, tmp_path / "old.jsonl")
