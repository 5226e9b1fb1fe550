"""The gallery: entries that list, show without computing, and cannot go stale silently."""

import json
from dataclasses import replace

import pytest

from vitrep.figures import FIGURES, figure_cells, get_figure
from vitrep.figures import gallery as G

ENTRIES = G.entries()


def _fake_entry(root, number=13, optimizer="gd", untrained_only=False):
    """An entry of figure ``number`` whose stored panels are what today's catalogue runs (nothing computed)."""
    fig = get_figure(number)
    budget, steps = G.PLAN[fig.figure]
    cells = figure_cells(fig, budget, optimizer=optimizer, steps=steps, untrained_only=untrained_only)
    path = root / G.entry_name(fig, optimizer)
    path.mkdir(parents=True)
    rows = [{"label": c.labels["panel"], "optimizer": c.labels["optimizer"], "kind": "reconstruct",
             "steps": c.config.steps, "config": c.config.to_dict(), "file": "x.png"} for c in cells]
    summary = {"preset": fig.name, "figure": fig.figure, "budget": budget, "steps": steps, "optimizers": [optimizer],
               "images": {"rocket": "rocket"}, "panels": rows,
               "verdicts": [{"claim": 1, "optimizer": optimizer, "verdict": "HELD", "words": "HELD by distance (L2)",
                             "by_metric": {"L2": "HELD"}, "line": "HELD by distance (L2) (plain GD), figure 13 ..."}],
               "claims": 1, "disagreements": [], "untrained_only": untrained_only}
    (path / "distances.json").write_text(json.dumps(summary))
    (path / "provenance.json").write_text(json.dumps({"cpu": "test CPU", "seconds": 600, "vitrep_commit": "abc",
                                                      "torch": "2.14.1", "device": "cpu", "date": "2026-12-07"}))
    (path / "contact_sheet.png").write_bytes(b"png")
    return G.entries(root)[0]


def test_an_entry_made_from_todays_catalogue_is_not_stale(tmp_path):
    e = _fake_entry(tmp_path)
    assert G.stale(e) == [] and G.stale_sentence(e) == ""
    assert e.line().startswith("figure 13  rocket       gd       full (10,000 steps a panel)  1 HELD")
    assert "computed on cpu (test CPU) in 10 min" in e.line()


def test_a_changed_catalogue_makes_an_entry_stale_with_a_sentence(tmp_path, monkeypatch):
    e = _fake_entry(tmp_path)
    fig = FIGURES["attention-non-invertible"]
    monkeypatch.setitem(FIGURES, fig.name, replace(fig, panels=tuple(replace(p, steps=5_000) for p in fig.panels)))
    what = G.stale(e)
    assert what and "steps 10000 -> 5000" in what[0], what
    s = G.stale_sentence(e)
    assert s.startswith(f"The gallery entry {e.path.name} was made by an older vitrep (abc)")
    assert s.endswith("rebuild it with `python -m vitrep gallery build --figures 13 --optimizer gd`.")
    assert "python" not in G.stale_sentence(e, command=False)  # the page names no command


def test_show_copies_the_files_and_computes_nothing(tmp_path):
    e = _fake_entry(tmp_path / "g")
    written = G.show(e, tmp_path / "out")
    assert sorted(p.name for p in written) == ["contact_sheet.png", "distances.json", "provenance.json"]


def test_a_live_run_that_differs_from_the_gallery_says_why():
    stored = {"panels": [{"kind": "reconstruct", "steps": 1500}],
              "verdicts": [{"claim": 1, "optimizer": "gd", "verdict": "HELD", "words": "HELD by structure (SSIM)",
                            "by_metric": {"SSIM": "HELD"}}]}
    idle = {"panels": [{"kind": "reconstruct", "steps": 150}],
            "verdicts": [{"claim": 1, "optimizer": "gd", "verdict": "NOT CHECKED", "words": "NOT CHECKED",
                          "by_metric": {}, "reason": "panels did not move (1 of 4): x"}]}
    (line,) = G.differences(idle, stored)
    assert line.startswith("Claim 1 (plain GD): 150 steps a panel: too short to judge (panels did not move")
    assert line.endswith("at the write-up's budget (1,500 steps a panel) it is HELD by structure (SSIM).")
    other = {**idle, "verdicts": [{"claim": 1, "optimizer": "gd", "verdict": "NOT HELD",
                                   "words": "NOT HELD by structure (SSIM)", "by_metric": {"SSIM": "NOT HELD"}}]}
    (line,) = G.differences(other, stored)
    assert "150 steps a panel give NOT HELD by structure (SSIM); the write-up's budget (1,500 steps a panel)" in line
    assert G.differences(stored, stored) == []


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.path.name for e in ENTRIES])
def test_every_shipped_entry_matches_todays_catalogue(entry):
    """A catalogue or default change that changes what a gallery figure runs fails here, naming the entry."""
    assert not G.stale(entry), G.stale_sentence(entry)
    assert (entry.path / "contact_sheet.png").stat().st_size > 10_000
    for r in entry.summary["panels"]:
        assert (entry.path / r["file"]).is_file()
        if r["kind"] == "reconstruct":
            assert {"input_distance", "ssim"} <= set(r["final"]), r["label"]
    p = entry.provenance
    assert {"vitrep_commit", "torch", "device", "cpu", "date", "seconds"} <= set(p)


def test_the_cli_lists_and_shows_entries_without_computing(tmp_path, monkeypatch):
    from vitrep.running import runs

    from .conftest import run_cli

    e = _fake_entry(tmp_path / "g")
    monkeypatch.setattr(G, "GALLERY", tmp_path / "g")
    monkeypatch.setattr(runs, "run_batch", lambda *a, **k: pytest.fail("the gallery computed something"))
    p = run_cli("gallery")
    assert p.returncode == 0 and p.stdout.splitlines()[0] == e.line() and "1 entries in" in p.stdout
    q = run_cli("gallery", "show", "13", "--out", tmp_path / "shown")
    assert q.returncode == 0, q.stderr
    assert "HELD by distance (L2) (plain GD), figure 13" in q.stdout and (tmp_path / "shown" / "distances.json").is_file()
    r = run_cli("gallery", "show", "2")
    assert r.returncode == 2 and r.stderr.strip() == ("vitrep: The gallery has no entry for figure 2; `python -m vitrep "
                                                      "gallery` lists what it has.")


def test_a_public_server_does_not_call_an_entry_stale_for_its_step_cap(tmp_path, monkeypatch):
    """Figure 13's 10,000 steps are over a public server's cap: comparing them is not running them."""
    e = _fake_entry(tmp_path)
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    assert G.stale(e) == []
    from vitrep import limits

    assert limits.public_mode()  # and the cap still holds outside the comparison


def test_the_gallery_holds_every_untrained_figure_under_both_optimizers():
    """What the gallery ships (docs/gallery.md): figures 2, 3, 10 (its untrained variant), 12 (its untrained half),
    13 and 16, each under plain GD and Adam, at the write-up's budget."""
    have = {(e.figure, o) for e in ENTRIES for o in e.optimizers}
    for figure in (2, 3, 10, 12, 13, 16):
        for optimizer in ("gd", "adam"):
            assert (figure, optimizer) in have, f"no gallery entry for figure {figure} under {optimizer}"
    for e in ENTRIES:
        steps = {r["steps"] for r in e.summary["panels"] if r["kind"] == "reconstruct"}
        assert steps == {{13: 10_000, 10: 1_000, 12: 20_000}.get(e.figure, 1_500)}, (e.path.name, steps)
        assert e.summary.get("untrained_only", False) == (e.figure == 12), e.path.name
    assert [e.optimizers for e in G.find(2)] == [("gd",), ("adam",)]  # the write-up's method first, on the page too


def test_figure_12_without_its_trained_weights_is_built_as_its_untrained_half(tmp_path, monkeypatch):
    """Figure 12 reads a trained and an untrained panel; without the trained weights the gallery builds the
    untrained one alone, its claim NOT CHECKED for the weights, and the entry stays fresh where they appear."""
    from vitrep.figures import panels as R
    from vitrep.figures import run_figure

    fig = get_figure(12)
    monkeypatch.setattr(R, "trained_missing", lambda panels: "vit_l_16-852ce7e3.pth is not on this machine")
    assert G.untrained_only(fig, "full") and not G.untrained_only(get_figure(2), "full")
    assert not G.untrained_only(get_figure(7), "full")  # every panel needs them: nothing to build without them
    s = run_figure(fig, tmp_path / "f12", "full", steps=3, untrained_only=True)
    assert [r["label"] for r in s["panels"]] == ["untrained attention only"] and s["untrained_only"]
    assert s["variant"] == "its untrained half: trained attention only needs trained weights"
    (v,) = s["verdicts"]
    assert v["verdict"] == "NOT CHECKED" and v["reason"].startswith("trained weights missing: trained attention only")
    monkeypatch.setattr(R, "trained_missing", lambda panels: "")  # a machine with the weights
    assert not G.untrained_only(fig, "full")
    e = _fake_entry(tmp_path / "g", 12, untrained_only=True)
    assert G.stale(e) == [] and [r["steps"] for r in e.summary["panels"]] == [20_000]
    whole = _fake_entry(tmp_path / "h", 12)
    assert [r["label"] for r in whole.summary["panels"]] == ["untrained attention only", "trained attention only"]


def test_the_list_counts_a_split_verdict_as_split(tmp_path):
    """A claim HELD by one metric and NOT HELD by the other is neither: `vitrep gallery` says 'split'."""
    e = _fake_entry(tmp_path)
    summary = json.loads((e.path / "distances.json").read_text())
    summary["verdicts"][0]["by_metric"] = {"L2": "HELD", "SSIM": "NOT HELD"}
    (e.path / "distances.json").write_text(json.dumps(summary))
    (split,) = G.entries(tmp_path)
    assert "  1 split  [" in split.line() and "HELD  [" not in split.line()


def test_a_paused_or_resumed_run_says_what_its_minutes_mean():
    """Figure 16 under Adam was resumed from an earlier start's batches: its 24 minutes say so."""
    (e,) = G.find(16, optimizer="adam")
    assert e.time_note().startswith("About the 24 min: the wall time of the run that finished it")
    (g,) = G.find(16, optimizer="gd")
    assert g.time_note() == ""
