"""One config path: the dataclass is the single source of options; a config is validated once, keyed once."""

from dataclasses import replace

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from vitrep import config as config_module
from vitrep.running import runs
from vitrep.cli import build_parser, config_from_args
from vitrep.config import ReconstructConfig, default_of, make_config, options, validate
from vitrep.errors import ConfigError

from .conftest import ROOT

WIDGETS = {"loss": "loss", "loss_scale": "scale", "seed": "seed", "blur_start": "blur", "blur_end": "blurend",
           "report_every": "every", "pos_embed": "pos", "normalize": "norm", "clamp": "clamp", "backoff": "backoff",
           "precision": "precision"}


@pytest.fixture(autouse=True)
def _fresh_resources():
    st.cache_resource.clear()
    st.cache_data.clear()


def test_the_command_line_flags_come_from_the_fields():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["reconstruct"]
    by_dest = {}
    for action in sub._actions:
        by_dest.setdefault(action.dest, []).append(action)
    for f in options():
        assert f.name in by_dest, f.name
        helps = " ".join(a.help or "" for a in by_dest[f.name])
        if f.name != "device":  # --device is a model flag, written for every command
            assert f.metadata["help"] in helps, f.name
        if f.metadata["choices"]:
            assert tuple(by_dest[f.name][0].choices) == tuple(f.metadata["choices"])
    # no flags: every option takes its field's default (the step sizes then resolve to the calibration)
    cfg = config_from_args(sub.parse_args(["--model", "vit_custom"]))
    for f in options():
        if f.name not in ("optimizer", "lr_start", "lr_end"):
            assert getattr(cfg, f.name) == f.default, f.name
    assert cfg.optimizer in ("adam", "gd") and cfg.lr_start > 0
    flagged = config_from_args(sub.parse_args(["--model", "vit_custom", "--no-backoff", "--clamp", "--loss", "l2",
                                               "--blur", "1.5", "--remove", "attention,mlp", "--blocks", "1-2"]))
    assert (flagged.backoff, flagged.clamp, flagged.loss, flagged.blur_start) == (False, True, "l2", 1.5)
    assert flagged.surgery.remove == ("attention", "mlp") and flagged.surgery.blocks == (1, 2)


def test_the_dashboard_widgets_show_the_fields_defaults_and_help():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("app_pages/reconstruct.py")
    at.run()
    assert not at.exception, at.exception
    for name, suffix in WIDGETS.items():
        key = f"rc_{suffix}"
        widget = next(w for kind in ("number_input", "toggle", "selectbox")
                      for w in getattr(at, kind) if w.key == key)
        assert widget.value == default_of(name), name
        assert widget.help == options()[[f.name for f in options()].index(name)].metadata["help"], name


def test_a_validated_config_is_not_checked_again_but_a_changed_one_is():
    c = make_config("vit_custom", 2, steps=5)
    assert validate(c) is c
    with pytest.raises(ConfigError, match="Steps must be at least 1"):
        validate(replace(c, steps=0))
    with pytest.raises(ConfigError, match="Loss 'l3'"):
        validate(ReconstructConfig(model=c.model, loss="l3"))


def test_the_reconstruct_form_validates_once_and_keys_once(monkeypatch):
    """From the Reconstruct form to the loop: one validation, one memo key, then the hit needs neither again."""
    checks, keys = [], []
    real_check, real_key = config_module._check, runs.make_key
    monkeypatch.setattr(config_module, "_check", lambda c: checks.append(c) or real_check(c))
    monkeypatch.setattr(runs, "make_key", lambda kind, **kw: keys.append(kind) or real_key(kind, **kw))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.switch_page("app_pages/reconstruct.py")
    at.run()
    at.selectbox(key="rc_model").set_value("vit_custom")
    at.run()
    assert not checks and not keys  # drawing the form computes nothing
    at.number_input(key="rc_steps").set_value(4)
    at.button(key="FormSubmitter:rc_form-Reconstruct").click()
    at.run()
    assert not at.exception, at.exception
    assert any("after 4 steps" in m.value for m in at.markdown)
    assert len(checks) == 1 and keys == ["reconstruct"]
