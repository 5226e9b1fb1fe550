"""A classroom on one server: 8 browser sessions ask at once for a mix of identical and different runs.

Loopback only and bounded: one `streamlit run app.py` on 127.0.0.1 in public mode, one headless
chromium with 8 pages, each run small (a 64-pixel ViT), the whole test under a fixed deadline.
Every session must get its result or a clear place in the queue, identical runs must be computed
once, the server's peak memory must stay within the budget, and no finished result may be lost.
"""

import re
import time

import pytest

from .test_browser import CHROMIUM, browser, server_process  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

SESSIONS, DISTINCT, STEPS = 8, 4, 300
BUDGET_MB = 2000


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    with server_process(tmp_path_factory, VITREP_PUBLIC="1", VITREP_MEMORY_MB=str(BUDGET_MB)) as srv:
        yield srv


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_eight_sessions_at_once(classroom, browser):  # noqa: F811
    url, lines, proc = classroom
    pages = []
    # one browser context, eight tabs: eight Streamlit sessions (one websocket each) that share the downloaded
    # front-end, as the server cannot tell them from eight browsers (a page loads in 1.5 s instead of 2.5 s)
    tabs = browser.new_context(viewport={"width": 1300, "height": 1000})
    for i in range(SESSIONS):
        page = tabs.new_page()
        page.goto(f"{url}/reconstruct", wait_until="networkidle")
        page.get_by_role("button", name="Reconstruct", exact=True).wait_for(timeout=90_000)
        page.locator('[data-testid="stSelectbox"]').first.click()
        page.get_by_role("option", name=re.compile(r"^vit_custom")).click()
        page.get_by_label("Steps", exact=True).wait_for(timeout=30_000)
        box = page.get_by_label("Steps", exact=True)
        box.fill(str(STEPS))
        box.press("Tab")
        page.get_by_text("Loss, blur, seed and switches").click()
        seed = page.get_by_label("Seed", exact=True)
        seed.fill(str(i % DISTINCT))  # sessions i and i+4 ask for the very same run
        seed.press("Tab")
        pages.append(page)
    before = sum("computing" in line for line in lines)
    t0 = time.perf_counter()
    for page in pages:  # the class clicks together
        page.get_by_role("button", name="Reconstruct", exact=True).click()
    done, waited_in_queue, waited_for_twin = set(), set(), set()
    deadline = t0 + 110
    while len(done) < SESSIONS and time.perf_counter() < deadline:
        for i, page in enumerate(pages):
            if i in done:
                continue
            text = page.inner_text("body")
            if re.search(r"Queued: \d+ runs? ahead of yours", text):
                waited_in_queue.add(i)
            if "Another session is computing this very run" in text:
                waited_for_twin.add(i)
            if f"after {STEPS} steps" in text:
                done.add(i)
        time.sleep(0.2)
    took = time.perf_counter() - t0
    computed = sum("computing" in line for line in lines) - before
    peak = _peak_rss_mb(proc.pid)
    print(f"\nsessions {SESSIONS}, distinct runs {DISTINCT}, results shown {len(done)} in {took:.1f} s, "
          f"runs computed {computed}, sessions shown a queue place {len(waited_in_queue)}, "
          f"sessions waiting for an identical run {len(waited_for_twin)}, server peak RSS {peak:.0f} MB "
          f"(budget {BUDGET_MB} MB)")
    assert done == set(range(SESSIONS)), f"sessions without a result: {set(range(SESSIONS)) - done}"
    assert computed == DISTINCT  # identical runs computed once
    assert waited_in_queue  # the later sessions were told their place
    assert peak <= BUDGET_MB * 1.25
    assert not any("Traceback" in line for line in lines)
    # no finished result is lost: a second round is all memo hits, at once
    for page in pages[:DISTINCT]:
        page.get_by_role("button", name="Reconstruct", exact=True).click()
    for page in pages[:DISTINCT]:
        page.get_by_text(re.compile(r"from the memo")).wait_for(timeout=20_000)
    assert sum("computing" in line for line in lines) - before == DISTINCT
    tabs.close()
