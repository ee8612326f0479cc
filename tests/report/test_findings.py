"""Findings: verdicts by CI overlap, pooled random draws, the sharpening and length rows."""
import numpy as np
import pandas as pd

from ipg.report.findings import build_findings, headline, matched_accuracy, reference_k, verdict


def test_verdict_by_ci_overlap():
    assert verdict((0.5, 0.4, 0.6), (0.1, 0.0, 0.2), higher_is_better=True) == "IPG better"
    assert verdict((0.5, 0.4, 0.6), (0.1, 0.0, 0.2), higher_is_better=False) == "IPG worse"
    assert verdict((0.5, 0.1, 0.6), (0.1, 0.0, 0.2), higher_is_better=True) == "not distinguishable"
    assert verdict((np.nan,) * 3, (0.1, 0.0, 0.2), higher_is_better=True) == "no data"


def _rows(method, kind, reward, d0, d5, half=0.05, selection="signed"):
    base = dict(model="m", task="t", granularity="neurons", method=method, kind=kind, reward=reward)
    out = [dict(base, selection="none", k=0, gamma=1.0, accuracy=0.5, entropy=2.0, temperature=1.0)]
    for g, d in ((0.0, d0), (5.0, d5)):
        out.append(dict(base, selection=selection, k=4, gamma=g, accuracy=0.5 + d, entropy=2.0 - 0.1 * g,
                        temperature=1.0, d_accuracy=d, d_accuracy_lo=d - half, d_accuracy_hi=d + half,
                        d_length=d * 100, d_length_lo=d * 100 - 1, d_length_hi=d * 100 + 1))
    return out


def test_findings_report_wins_and_losses_plainly():
    rows = (_rows("ipg", "ipg", "accuracy", -0.3, 0.01)          # strong ablation, no gain
            + _rows("act", "act", "accuracy", -0.1, 0.2)          # Act enhances better
            + _rows("random_s0", "random", "accuracy", 0.0, 0.0)
            + _rows("random_s1", "random", "accuracy", -0.02, 0.01))
    frame = pd.DataFrame(rows)
    frame["accuracy_lo"], frame["accuracy_hi"] = frame["accuracy"] - 0.05, frame["accuracy"] + 0.05
    found = build_findings(frame)
    get = lambda q, v: found[(found["question"].str.startswith(q)) & found["versus"].str.startswith(v)]
    assert get("ablation", "act")["verdict"].item() == "IPG better"
    assert get("enhancement", "act")["verdict"].item() == "IPG worse"
    rnd = get("ablation", "random")
    assert rnd["versus"].item() == "random (2 draws)"
    assert rnd["other_lo"].item() == -0.07 and rnd["other_hi"].item() == 0.05  # envelope of draws
    assert get("enhancement", "random")["verdict"].item() == "not distinguishable"
    assert get("sign", "ipg bottom")["verdict"].unique().tolist() == ["no data"]  # not evaluated
    text = headline(found)
    assert "IPG worse in 1" in text and "vs Act" in text


def test_length_rows_and_sharpening():
    rows = _rows("ipg_length", "ipg", "length", -0.2, 0.3) + _rows("ipg", "ipg", "accuracy", -0.1, 0.1)
    rows.append(dict(model="m", task="t", granularity="neurons", method="ipg", kind="ipg",
                     reward="accuracy", selection="temperature", k=0, gamma=1.0, temperature=0.5,
                     accuracy=0.52, entropy=1.0))
    frame = pd.DataFrame(rows)
    frame["accuracy_lo"], frame["accuracy_hi"] = frame["accuracy"] - 0.02, frame["accuracy"] + 0.02
    found = build_findings(frame)
    length = found[found["question"].str.startswith("length")]
    assert length["verdict"].tolist() == ["as predicted", "as predicted"]
    sharp = found[found["question"].str.startswith("sharpening")]
    assert sharp["other"].item() == np.interp(1.5, [1.0, 2.0], [0.52, 0.5])
    assert sharp["verdict"].item() == "beats temperature control"
    assert np.isnan(matched_accuracy(frame, 5.0))  # outside the control's entropy range


def test_reference_k_prefers_the_configured_first_k():
    frame = pd.DataFrame({"selection": ["none", "temperature", "signed", "signed"], "k": [0, 0, 2, 8]})
    assert reference_k(frame) == 2
    assert reference_k(frame, {"steering": {"ks": [8, 2]}}) == 8
    assert reference_k(frame, {"steering": {"ks": [16]}}) == 2


def test_no_ipg_steered_says_so():
    frame = pd.DataFrame(_rows("act", "act", "accuracy", -0.1, 0.1))
    frame["accuracy_lo"] = frame["accuracy_hi"] = frame["accuracy"]
    assert "no claim" in headline(build_findings(frame))


def test_deletion_only_random_draws_count_for_ablation_not_enhancement():
    """random_s1/s2 evaluated only on the deletion curve (gamma 0) join the ablation pool and
    the label counts the draws that have data; the enhancement row uses random_s0 alone."""
    rows = (_rows("ipg", "ipg", "accuracy", -0.3, 0.0) + _rows("random_s0", "random", "accuracy", 0.0, 0.0)
            + [r for r in _rows("random_s1", "random", "accuracy", -0.2, 0.0, selection="deletion")
               if r["gamma"] == 0.0])
    frame = pd.DataFrame(rows)
    frame["accuracy_lo"], frame["accuracy_hi"] = frame["accuracy"] - 0.05, frame["accuracy"] + 0.05
    found = build_findings(frame)
    get = lambda q: found[found["question"].str.startswith(q) & found["versus"].str.startswith("random")]
    assert get("ablation")["versus"].item() == "random (2 draws)"
    assert np.isclose(get("ablation")["other"].item(), -0.1)  # mean of 0.0 and -0.2
    assert get("enhancement")["versus"].item() == "random (1 draw)"


def test_every_steered_k_and_gamma_gets_its_rows():
    """No k or gamma is picked after the fact: 2 ks x (ablation + 2 enhancement gammas)."""
    rows = []
    for k in (4, 16):
        for method, kind in (("ipg", "ipg"), ("act", "act")):
            for g, d in ((0.0, -0.2), (2.0, 0.1), (5.0, -0.3)):
                rows.append(dict(model="m", task="t", granularity="neurons", method=method, kind=kind,
                                 reward="accuracy", selection="signed", k=k, gamma=g, accuracy=0.5 + d,
                                 entropy=2.0, temperature=1.0, d_accuracy=d, d_accuracy_lo=d - 0.05,
                                 d_accuracy_hi=d + 0.05))
    frame = pd.DataFrame(rows)
    frame["accuracy_lo"], frame["accuracy_hi"] = frame["accuracy"] - 0.05, frame["accuracy"] + 0.05
    found = build_findings(frame)
    vs_act = found[found["versus"] == "act"]
    assert sorted(zip(vs_act["k"], vs_act["gamma"])) == [(4, 0.0), (4, 2.0), (4, 5.0),
                                                         (16, 0.0), (16, 2.0), (16, 5.0)]
    sharp = found[found["question"].str.startswith("sharpening")]
    assert sorted(zip(sharp["k"], sharp["gamma"])) == [(4, 2.0), (4, 5.0), (16, 2.0), (16, 5.0)]
