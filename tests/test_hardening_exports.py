"""Exports render in a bounded pool: beyond it and its wait, a 503 problem with Retry-After, never a pile-up."""

from __future__ import annotations

import concurrent.futures

import requests

from tests.conftest import start_server, stop_server


def test_renders_beyond_the_pool_get_503_with_retry_after(built, data_root):
    # one worker, one render at a time, no queue wait: of 4 concurrent distinct maps, only some are drawn
    process, url = start_server(built, data_root, workers=1,
                                env={"TTP_ATLAS_EXPORT_RENDERS": "1", "TTP_ATLAS_EXPORT_WAIT": "0"})
    try:
        def export(index: int) -> requests.Response:
            return requests.get(f"{url}/export.png?size=A4&dpi=150&title=Pool+{index}", timeout=120)

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(export, range(4)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.headers["Retry-After"] == "5"
        assert busy.headers["Content-Type"].startswith("application/problem+json") and busy.json()["status"] == 503
        assert requests.get(f"{url}/export.png?size=A4&dpi=150&title=Pool+9", timeout=120).status_code == 200
    finally:
        stop_server(process)
