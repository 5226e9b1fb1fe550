"""Every dashboard page under Streamlit's AppTest: it renders, a tiny run completes, bad input gets its sentence."""

import io

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from vitrep.models.weights import build_model
from vitrep.models.registry import make_ref

from .conftest import ROOT

APP = str(ROOT / "app.py")
PAGES = ["app_pages/home.py", "app_pages/ensemble.py", "app_pages/reconstruct.py", "app_pages/sweep.py", "app_pages/ablation.py", "app_pages/figures.py",
         "app_pages/classes.py", "app_pages/conditioning.py", "app_pages/filters.py", "app_pages/layernorm.py",
         "app_pages/units.py"]


@pytest.fixture(autouse=True)
def _fresh_resources():
    st.cache_resource.clear()  # the memo is a cache_resource; each test gets its own directory
    st.cache_data.clear()


def page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page(path)
    at.run()
    assert not at.exception, at.exception
    return at


def types(node) -> list[str]:
    out = []
    for c in getattr(node, "children", {}).values():
        out.append(c.type)
        out += types(c)
    return out


def submit(at: AppTest, form: str, label: str) -> AppTest:
    at.button(key=f"FormSubmitter:{form}-{label}").click()
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(path):
    at = page(path)
    assert at.title


def test_entry_point_sidebar_and_landing():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    side = " ".join(m.value for m in at.sidebar.markdown)
    assert "Device" in side and "CPU" in side and "Memo" in side and "Trained weights here" in side
    assert at.sidebar.button(key="clear_memo")
    assert any("An example" in m.value for m in at.markdown)  # the landing page with its example result


def test_reconstruct_tiny_run_shows_image_curve_and_verdict():
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    at.number_input(key="rc_steps").set_value(6)
    submit(at, "rc_form", "Reconstruct")
    verdict = [m.value for m in at.markdown if "after 6 steps" in m.value]
    assert verdict and "m_r" in verdict[0]
    t = types(at.main)
    assert t.count("image") >= 3 and "plotly_chart" in t and t.count("download_button") == 4
    # the same run again is a memo hit, shown at once
    submit(at, "rc_form", "Reconstruct")
    assert any("from the memo" in m.value for m in at.markdown)


def reconstruct_tiny(at: AppTest, steps: int) -> None:
    """Set a tiny step count, press Reconstruct, and see its verdict."""
    at.number_input(key="rc_steps").set_value(steps)
    submit(at, "rc_form", "Reconstruct")
    assert any(f"after {steps} steps" in m.value for m in at.markdown)


def _upload(at, key, name, data, mime="image/png"):
    at.radio(key=f"{key}_src").set_value("Upload")
    at.run()
    at.file_uploader(key=f"{key}_upload").set_value((name, data, mime))
    at.run()
    assert not at.exception, at.exception


def test_bad_upload_shows_its_sentence():
    at = page("app_pages/reconstruct.py")
    _upload(at, "rc", "notes.png", b"this is text, not a picture")
    assert any("not an image file vitrep can read" in e.value for e in at.error)


@pytest.mark.parametrize("prefix, path", [("sw", "app_pages/sweep.py"), ("ab", "app_pages/ablation.py")])
def test_bad_upload_on_other_pages(prefix, path):
    at = page(path)
    _upload(at, prefix, "cut.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert any("vitrep can read" in e.value or "damaged" in e.value for e in at.error)


def test_bad_checkpoint_upload_is_one_sentence():
    at = page("app_pages/classes.py")
    at.radio(key="cl_weights").set_value("checkpoint file")
    at.run()
    at.file_uploader(key="cl_ckpt").set_value(("weights.pt", b"not a checkpoint", "application/octet-stream"))
    at.run()
    at.number_input(key="cl_steps").set_value(2)
    submit(at, "cl_form", "Generate")
    assert any("is not a readable checkpoint" in e.value for e in at.error)


def test_good_upload_reconstructs():
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((50, 70, 4)) * 255).astype(np.uint8), "RGBA").save(buf, "PNG")
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    _upload(at, "rc", "mine.png", buf.getvalue())
    reconstruct_tiny(at, 3)


def test_trained_weights_offline_is_one_sentence(monkeypatch):
    monkeypatch.setenv("VITREP_OFFLINE", "1")
    at = page("app_pages/reconstruct.py")
    at.radio(key="rc_weights").set_value("trained")
    at.run()
    at.number_input(key="rc_steps").set_value(2)
    submit(at, "rc_form", "Reconstruct")
    # one sentence in the dashboard's own words: the file, where it goes, and the widget to use instead
    assert any("vit_b_32-d86f8d99.pth" in e.value and "'checkpoint file'" in e.value for e in at.error)
    assert not any("--" in e.value for e in at.error)  # no command-line flag inside the dashboard


def test_sweep_tiny():
    at = page("app_pages/sweep.py")
    at.multiselect(key="sw_models").set_value(["vit_custom"])
    at.run()
    at.number_input(key="sw_steps").set_value(3)
    submit(at, "sw_form", "Run the sweep")
    t = types(at.main)
    assert t.count("image") >= 4 and "plotly_chart" in t  # four encoders of vit_custom
    assert t.count("download_button") == 2


def test_ablation_tiny():
    at = page("app_pages/ablation.py")
    at.selectbox(key="ab_model").set_value("vit_custom")
    at.run()
    at.number_input(key="ab_steps").set_value(3)
    at.multiselect(key="ab_comps").set_value(["attention", "mlp"])
    submit(at, "ab_form", "Run the survey")
    t = types(at.main)
    assert t.count("image") >= 4 and "plotly_chart" in t  # target, intact, two removals


def _page_with_uploaded_checkpoint(path: str, prefix: str, seed: int, head_std: float = 0.0) -> AppTest:
    """``path`` with vit_custom chosen and a checkpoint of another seed uploaded as a user would."""
    m, _ = build_model(make_ref("vit_custom", seed=seed))
    if head_std:
        torch.manual_seed(0)
        torch.nn.init.normal_(m.heads.head.weight, std=head_std)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    at = page(path)
    at.selectbox(key=f"{prefix}_model").set_value("vit_custom")
    at.run()
    at.radio(key=f"{prefix}_weights").set_value("checkpoint file")
    at.run()
    at.file_uploader(key=f"{prefix}_ckpt").set_value(("standin.pt", buf.getvalue(), "application/octet-stream"))
    at.run()
    return at


def test_class_images_with_uploaded_checkpoint(tmp_path):
    at = _page_with_uploaded_checkpoint("app_pages/classes.py", "cl", seed=3, head_std=0.1)
    at.number_input(key="cl_steps").set_value(4)
    at.number_input(key="cl_jstart").set_value(2)
    submit(at, "cl_form", "Generate")
    assert not at.error and "image" in types(at.main)
    assert any("Top-5" in m.value for m in at.markdown)


def test_checkpoint_by_path_and_a_missing_path(tmp_path):
    m, _ = build_model(make_ref("vit_custom", seed=4))
    f = tmp_path / "local.pt"
    torch.save(m.state_dict(), f)
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    at.radio(key="rc_weights").set_value("checkpoint file")
    at.run()
    at.text_input(key="rc_ckpt_path").set_value(str(tmp_path / "nope.pt"))
    at.run()
    assert any("is no file" in e.value for e in at.error)
    at.text_input(key="rc_ckpt_path").set_value(str(f))
    at.run()
    reconstruct_tiny(at, 3)


def test_class_images_offline_sentence(monkeypatch):
    monkeypatch.setenv("VITREP_OFFLINE", "1")
    at = page("app_pages/classes.py")
    # offline, the page opens on what works (untrained) and says how to get trained weights: no error
    assert not at.error and at.radio(key="cl_weights").value == "untrained"
    assert any("vit_b_32-d86f8d99.pth" in i.value and "'checkpoint file'" in i.value for i in at.info)
    at.radio(key="cl_weights").set_value("trained")
    at.run()
    at.number_input(key="cl_steps").set_value(2)
    submit(at, "cl_form", "Generate")
    assert any("vit_b_32-d86f8d99.pth" in e.value and "--" not in e.value for e in at.error)


def test_filters_page_grid():
    at = page("app_pages/filters.py")
    at.selectbox(key="fi_model").set_value("vit_custom")
    at.run()
    at.radio(key="fi_weights").set_value("untrained")
    at.run()
    assert not at.error and types(at.main).count("image") >= 2


def test_layernorm_page_numbers_and_bad_vector():
    at = page("app_pages/layernorm.py")
    assert any("[-1.2247, 0.0, 1.2247]" in str(t.value) for t in at.table)
    at.text_area(key="ln_text").set_value("1, two, 3")
    at.run()
    assert any("not a list of numbers" in e.value for e in at.error)


def test_preset_opens_a_panel_in_reconstruct():
    at = page("app_pages/figures.py")
    at.selectbox(key="pr_name").set_value("single-encoders")
    at.run()
    at.button(key="pr_open").click()
    at.run()
    assert not at.exception
    assert at.selectbox(key="rc_layer").value == "only-encoder-1"
    assert at.selectbox(key="rc_sample").value == "cat"
    assert at.toggle(key="rc_pos").value is False


def test_preset_runs_quick_grid():
    at = page("app_pages/figures.py")
    at.selectbox(key="pr_name").set_value("single-encoders")
    at.run()
    at.radio(key="pr_budget").set_value("quick")
    at.button(key="pr_run").click()
    at.run()
    assert not at.exception and not at.error
    assert "image" in types(at.main) and "download_button" in types(at.main)
    assert any("states no finding" in c.value for c in at.caption)  # figure 3: panels without a verdict
    import tempfile
    from pathlib import Path

    before = {p.name for p in Path(tempfile.gettempdir()).glob("vitrep-*")}
    at.button(key="pr_run").click()
    at.run()  # the same figure again: its files are replaced in the session's folder, no new folder anywhere
    assert not at.exception and {p.name for p in Path(tempfile.gettempdir()).glob("vitrep-*")} == before


def test_figures_default_to_the_papers_method_and_show_both_side_by_side():
    """The optimizer is a choice on the page (plain GD by default); with both, one verdict per optimizer."""
    at = page("app_pages/figures.py")
    assert at.radio(key="pr_opt").value == "gd" and at.radio(key="pr_opt").options[0] == "plain GD: the paper's method"
    at.selectbox(key="pr_name").set_value("attention-non-invertible")
    at.run()
    assert any("Claim 1." in m.value and "heads towards the origin" in m.value for m in at.markdown)
    at.radio(key="pr_opt").set_value("both")
    at.radio(key="pr_budget").set_value("quick")
    at.run()
    at.button(key="pr_run").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    lines = [m.value for m in at.info if m.value.startswith(("HELD", "NOT HELD", "NOT CHECKED"))]
    assert [line.split(",")[0] for line in lines] == ["NOT CHECKED (plain GD)", "NOT CHECKED (Adam)"]
    assert all("the quick budget is a pipeline check" in line for line in lines)
    from vitrep.figures.gallery import find  # figure 13's gallery entries are on the page too, HELD

    gallery_held = [v["line"] for e in find(13) for v in e.verdicts if v["verdict"] == "HELD"]
    assert sorted(m.value for m in at.success) == sorted(gallery_held)  # nothing HELD on a run that did not move


def test_figure_12_opens_on_its_untrained_half_from_the_gallery():
    """Without the trained weights the gallery holds figure 12's untrained half: the page says so and how to add
    the whole figure, and its claim is NOT CHECKED for the weights, in the dashboard's words (no CLI flag)."""
    at = page("app_pages/figures.py")
    at.selectbox(key="pr_name").set_value("single-attention")
    at.run()
    assert not at.exception
    assert "At the write-up's budget, from the gallery" in [h.value for h in at.subheader]
    said = [c.value for c in at.caption if c.value.startswith("Its untrained half")]
    assert said and said[0] == ("Its untrained half: trained attention only needs trained weights. On a machine "
                                "with the trained weights the whole figure can be added to the gallery "
                                "(docs/gallery.md in the repository says how).")
    lines = [m.value for m in at.info if m.value.startswith("NOT CHECKED")]
    assert any(line.startswith("NOT CHECKED (plain GD), figure 12 claim 1: trained weights missing: trained "
                               "attention only not run") for line in lines), lines
    shown = " ".join(said + lines)
    assert not any(flag in shown for flag in ("--optimizer", "--budget", "--weights"))


def test_a_timm_model_by_name_in_the_model_picker():
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("timm model by name…")
    at.run()
    at.text_input(key="rc_timm_q").set_value("resmlp_12")
    at.run()
    assert "resmlp_12_224.fb_in1k" in at.selectbox(key="rc_timm").options  # shown without the prefix
    at.selectbox(key="rc_timm").set_value("timm:resmlp_12_224.fb_in1k")
    at.run()
    assert not at.exception and not at.error
    assert "token_mixing" in at.multiselect(key="rc_remove").options
    reconstruct_tiny(at, 2)


def test_conditioning_page_measures_and_reads_the_spectra():
    at = page("app_pages/conditioning.py")
    at.selectbox(key="co_model").set_value("vit_custom")
    at.run()
    at.multiselect(key="co_comps").set_value(["attention"])
    at.number_input(key="co_k").set_value(2)
    at.number_input(key="co_iter").set_value(6)
    submit(at, "co_form", "Measure the spectra")
    assert not at.error, [e.value for e in at.error]
    assert any("self-attention layers are extremely poorly conditioned" in m.value for m in at.markdown)
    assert types(at.main).count("plotly_chart") == 2 and len(at.dataframe) == 1
    assert list(at.dataframe[0].value["removed"]) == ["nothing (intact)", "attention"]  # "intact", as the bars say
    at.button(key="co_to_ensemble").click().run()  # the same layer, opened as an ensemble
    assert not at.exception and at.selectbox(key="en_model").value == "vit_custom"


def test_units_page_shows_the_top_units_and_looks_closer_at_one():
    at = page("app_pages/units.py")
    at.selectbox(key="un_model").set_value("vit_custom")
    at.run()
    at.selectbox(key="un_kind").set_value("mlp")
    at.run()
    at.number_input(key="un_block").set_value(2)
    at.slider(key="un_top").set_value(3)
    at.number_input(key="un_steps").set_value(3)
    submit(at, "un_form", "Visualise")
    assert at.markdown[0].value.startswith("top 3 mlp units at 2 on the image")
    assert types(at.main).count("image") >= 3 and "plotly_chart" in types(at.main)
    at.button(key="un_pick_1").click().run()
    assert not at.exception and at.subheader[0].value.startswith("Closer: mlp(2, ")
    at.text_input(key="un_zoom_text").set_value("mlp(2, 0) + 0.5 * head(2, 1)")
    at.number_input(key="un_zoom_steps").set_value(4)
    submit(at, "un_zoom_form", "Run this unit")
    assert any(m.value.startswith("done: 1 unit(s), 4 steps") for m in at.markdown)
    at.text_input(key="un_zoom_text").set_value("head(9, 0)")
    submit(at, "un_zoom_form", "Run this unit")
    assert "blocks 1 to 4" in at.error[0].value  # one sentence, the page goes on


# --- public mode (VITREP_PUBLIC=1): safe for strangers ---------------------------------------------

def test_public_mode_has_no_server_paths_and_no_clear_button(monkeypatch):
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    at = page("app_pages/reconstruct.py")
    assert not [b for b in at.sidebar.button if b.key == "clear_memo"]  # would change what everyone sees
    at.radio(key="rc_weights").set_value("checkpoint file")
    at.run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key and t.key.endswith("_path")]  # no path on the server
    assert at.number_input(key="rc_steps").proto.max <= 1000
    pr = page("app_pages/figures.py")
    assert "full" not in pr.radio(key="pr_budget").options  # no hour-long runs for strangers
    un = page("app_pages/units.py")  # 16 units at the most steps the widget allows fit the public cap
    assert un.number_input(key="un_steps").proto.max * un.slider(key="un_top").proto.max <= 4000


def test_local_mode_keeps_paths_and_the_clear_button():
    at = page("app_pages/reconstruct.py")
    assert at.sidebar.button(key="clear_memo")
    at.radio(key="rc_weights").set_value("checkpoint file")
    at.run()
    assert at.text_input(key="rc_ckpt_path")


def test_public_upload_is_removed_when_its_session_ends(monkeypatch, tmp_path):
    import gc

    from dashboard import server as ui

    monkeypatch.setenv("VITREP_PUBLIC", "1")
    at = _page_with_uploaded_checkpoint("app_pages/reconstruct.py", "rc", seed=4)
    reconstruct_tiny(at, 2)
    folders = [p for p in ui.CHECKPOINT_DIR.glob("session-*") if any(p.iterdir())]
    mine = [p for p in folders if at.session_state["_vitrep_folder"].path == p]
    assert mine and any(f.suffix == ".pt" for f in mine[0].iterdir())
    del at  # the session ends: Streamlit drops its state
    gc.collect()
    assert not mine[0].exists()


# --- issue 19: the dashboard draws the engine's limits and survives a damaged memo -------------------

def test_public_widgets_are_drawn_from_the_engines_limits(monkeypatch):
    """Steps, and every architecture box of a configurable model, stop where the engine's validation does."""
    from vitrep import limits
    from vitrep.models.registry import get_spec

    monkeypatch.setenv("VITREP_PUBLIC", "1")
    at = page("app_pages/reconstruct.py")
    assert at.number_input(key="rc_steps").proto.max == limits.PUBLIC_MAX_STEPS
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    assert not at.exception
    bounds = limits.arch_bounds(dict(get_spec("vit_custom").arch_defaults))
    for k, (lo, hi) in bounds.items():
        box = at.number_input(key=f"rc_{k}")
        assert (box.proto.min, box.proto.max) == (lo, hi), k
    assert bounds["width"] == (1, 96) and bounds["patch"] == (4, 1024)
    cl = page("app_pages/classes.py")
    assert cl.number_input(key="cl_steps").proto.max == limits.PUBLIC_MAX_STEPS


def test_a_malicious_checkpoint_upload_is_refused_in_public_mode(monkeypatch, tmp_path):
    """A pickle that would run code, uploaded to a public server: one sentence, and the code never ran."""
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buf = io.BytesIO()
    torch.save({"w": Evil()}, buf)
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    at.radio(key="rc_weights").set_value("checkpoint file")
    at.run()
    at.file_uploader(key="rc_ckpt").set_value(("evil.pt", buf.getvalue(), "application/octet-stream"))
    at.run()
    at.number_input(key="rc_steps").set_value(2)
    submit(at, "rc_form", "Reconstruct")
    assert any("is not a readable checkpoint" in e.value for e in at.error), [e.value for e in at.error]
    assert not marker.exists()


@pytest.mark.parametrize("how", ["overwritten", "page zeroed"])
def test_the_dashboard_recovers_from_a_damaged_memo(how, tmp_path, monkeypatch):
    """Before: the home page (so every page) raised sqlite3.DatabaseError.  Now: the damaged memo is moved aside,
    a fresh one opened, and a run is remembered in it."""
    import os

    from vitrep.running.memo import Memo

    from .test_memo_recovery import ASIDE, _fill, damage

    memo_dir = tmp_path / "memo"
    assert os.environ["VITREP_CACHE_DIR"] == str(memo_dir)
    _fill(memo_dir)
    damage(memo_dir, how)
    home = page("app_pages/home.py")
    assert any("**Memo**: 0 runs" in m.value for m in home.sidebar.markdown)
    assert [p for p in tmp_path.iterdir() if ASIDE.match(p.name)]
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    reconstruct_tiny(at, 2)
    assert len(Memo(memo_dir)) == 1


def test_a_session_output_folder_is_reused_and_removed_with_the_session():
    """dashboard.session_output_folder: one folder per name and session, emptied when asked again, gone when the
    session ends (instead of a mkdtemp folder per figure run, left behind)."""
    import gc

    def script():
        import streamlit as st

        import dashboard as ui

        out = ui.session_output_folder("attention-non-invertible")
        n = st.session_state.get("n", 0) + 1
        st.session_state["n"] = n
        (out / f"run{n}.png").write_bytes(b"x")
        st.session_state["out"] = str(out)

    from pathlib import Path

    at = AppTest.from_function(script, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    out = Path(at.session_state["out"])
    at.run()
    assert Path(at.session_state["out"]) == out and [p.name for p in out.iterdir()] == ["run2.png"]
    root = out.parent
    assert root.parent.name == "vitrep-outputs" and root.name.startswith("session-")
    del at
    gc.collect()
    assert not root.exists()



def test_the_ensemble_page_shows_what_a_layer_leaves_open():
    """Many inputs, one output: three starts on the tiny ViT; its sentences, strip, spread map and curves."""
    at = page("app_pages/ensemble.py")
    at.selectbox(key="en_model").set_value("vit_custom")
    at.run()
    at.slider(key="en_seeds").set_value(3)
    at.number_input(key="en_steps").set_value(20)
    submit(at, "en_form", "Run the ensemble")
    assert not at.exception and not at.error
    said = " ".join(m.value for m in at.markdown)
    assert "3 reconstructions from 3 starts end" in said and "undetermined" in said
    t = types(at.main)
    assert t.count("image") >= 4 and "plotly_chart" in t


def test_a_public_ensemble_is_capped_at_the_servers_steps(monkeypatch):
    monkeypatch.setenv("VITREP_PUBLIC", "1")
    at = page("app_pages/ensemble.py")
    assert at.slider(key="en_seeds").value * at.number_input(key="en_steps").value <= 1000  # the default runs
    at.selectbox(key="en_model").set_value("vit_custom")
    at.run()
    at.slider(key="en_seeds").set_value(16)
    at.number_input(key="en_steps").set_value(200)
    submit(at, "en_form", "Run the ensemble")
    assert any("at most 1,000 steps in all (seeds x steps)" in e.value for e in at.error), [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "en_stop"]  # no run widgets left behind


def test_an_upload_that_is_not_square_says_how_it_is_fitted():
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(3).random((200, 300, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    _upload(at, "rc", "wide.png", buf.getvalue())
    fit = at.radio(key="rc_fit")
    assert fit.label == "This image is 300×200, the model takes 64×64: fit it by" and fit.value == "crop"
    assert any("The centre 200×200 is kept" in c.value for c in at.caption)
    fit.set_value("pad").run()
    assert any("top and bottom are filled with its mean colour" in c.value for c in at.caption)
    reconstruct_tiny(at, 2)


def test_the_greyed_step_sizes_are_the_ones_the_run_uses():
    """The calibrated step sizes shown are those of the optimizer and layer the run takes (after a submit, the
    form's choices)."""
    from vitrep.calibration import default_schedule
    from vitrep.models.registry import make_ref

    ref = make_ref("vit_custom")
    at = page("app_pages/reconstruct.py")
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    for opt in ("adam", "gd"):
        at.selectbox(key="rc_opt").set_value(opt)
        reconstruct_tiny(at, 2)
        shown = [n for n in at.number_input if n.label.startswith("lr at the")]
        _, lr0, lr1 = default_schedule(ref, at.selectbox(key="rc_layer").value, opt)
        assert [n.value for n in shown] == [lr0, lr1] and all(n.disabled for n in shown), (opt, shown)
        assert shown[0].label.startswith(f"lr at the start (calibrated: {opt}, ")
        said = next(m.value for m in at.markdown if "after 2 steps" in m.value)
        assert f"{opt}, lr {lr0:.3g} → {lr1:.3g}" in said


def test_the_memo_count_is_updated_when_a_run_ends_and_said_in_good_english():
    at = page("app_pages/reconstruct.py")
    assert any("**Memo**: 0 runs," in m.value for m in at.sidebar.markdown)
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    reconstruct_tiny(at, 2)
    side = [m.value for m in at.sidebar.markdown]
    assert any("**Memo**: 1 run," in m for m in side), side  # in the run that computed it, not the next
    assert any("Computed by this server: 1 run ·" in c.value for c in at.sidebar.caption)


def test_the_conditioning_page_opens_its_layer_as_an_ensemble():
    from dashboard import keys

    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[keys.EN_PREFILL] = {"model": "vit_custom", "weights": "untrained", "arch": (),
                                         "layer": "encoder-2", "remove": "attention", "pos_embed": False}
    at.switch_page("app_pages/ensemble.py")
    at.run()
    assert not at.exception
    assert at.selectbox(key="en_model").value == "vit_custom" and at.selectbox(key="en_layer").value == "encoder-2"
    assert at.multiselect(key="en_remove").value == ["attention"]
    assert any("The layer the conditioning page measured: vit_custom, encoder-2, without attention" in i.value
               for i in at.info)


def test_live_curves_name_the_panel_and_the_bar_the_whole_run():
    """A grid's progress rows are named by their cell (Progress.index), not 'batch 2 row 1'; the bar counts the
    whole run (half of batch 2 of 2: 75%)."""
    at = AppTest.from_string("""
import numpy as np
import streamlit as st
from dashboard.live import Live
from vitrep.result import Progress
live = Live(["ViT encoder 1", "ViT encoder 7", "ResNet layer1"], 10, show_image=False, batches=2)
row = {"step": 5, "loss": 1.0, "embedding_distance": 2.0, "input_distance": 3.0, "psnr": 10.0, "ssim": 0.5}
live(Progress(5, 10, 1.0, [row], [np.zeros((8, 8, 3), np.uint8)], [1.0], batch=1, index=(2,)))
st.session_state["names"] = [s.name for s in live.figure().data if s.name and not s.name.endswith("m_r")]
""", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["names"] == ["ResNet layer1"]
    (bar,) = at.get("progress")
    assert bar.value == 75 and bar.proto.text.startswith("75% of the run · batch 2/2 · step 5/10")
