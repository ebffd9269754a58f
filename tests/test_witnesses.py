import json

import pytest

from restoration.arena.witnesses import agreement, ranks, read_evaluation, spearman, witness_scores

EVALUATION = {"degradations": {
    "lesson": {"results": {
        "bicubic": {"psnr_pooled": 21.1, "ssim": 0.69, "fidelity": 0.27, "fidelity_top1": 0.12},
        "a": {"psnr_pooled": 22.5, "ssim": 0.78, "fidelity": 0.49},
        "b": {"psnr_pooled": 22.2, "ssim": 0.76, "fidelity": 0.75},
        "c": {"psnr_pooled": 22.3, "ssim": 0.76, "fidelity": 0.74},
        "original": {"fidelity_top1": 0.44, "fidelity": 1.0}}},
    "jpeg75": {"results": {"a": {"psnr_pooled": 21.0, "ssim": 0.66, "fidelity": 0.3}}}}}


def test_scores_per_degradation_and_the_originals_left_out():
    scores = witness_scores(EVALUATION, "lesson")
    assert set(scores) == {"bicubic", "a", "b", "c"}
    assert scores["b"] == {"psnr_pooled": 22.2, "ssim": 0.76, "fidelity": 0.75}
    assert witness_scores(EVALUATION, "jpeg75")["a"]["psnr_pooled"] == 21.0
    assert witness_scores(EVALUATION, "bicubic") == {} and witness_scores(None) == {}


def test_ranks_share_ties():
    assert ranks({"a": 3.0, "b": 1.0, "c": 3.0, "d": 2.0}) == {"a": 1, "c": 1, "d": 3, "b": 4}


def test_spearman():
    assert spearman({"a": 1, "b": 2, "c": 3}, {"a": 10, "b": 20, "c": 30}) == pytest.approx(1.0)
    assert spearman({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1}) == pytest.approx(-1.0)
    assert spearman({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None  # too few
    assert spearman({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 3}) is None  # no spread


def test_agreement_sentence_names_the_witness_people_side_with():
    scores = witness_scores(EVALUATION)
    likes_detail = {"bicubic": 900, "a": 1000, "b": 1100, "c": 1090}  # people prefer what keeps the picture
    assert "side more with semantic fidelity" in agreement(likes_detail, scores, enough=True)
    likes_psnr = {"bicubic": 900, "a": 1100, "b": 1000, "c": 1050}
    assert "side more with PSNR" in agreement(likes_psnr, scores, enough=True)
    assert "Too few votes" in agreement(likes_psnr, scores, enough=False)


def test_read_evaluation(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps(EVALUATION))
    assert read_evaluation(tmp_path / "e.json") == EVALUATION
    (tmp_path / "old.json").write_text(json.dumps({"results": {}}))  # the format before degradations
    assert read_evaluation(tmp_path / "old.json") is None and read_evaluation(tmp_path / "nope.json") is None
