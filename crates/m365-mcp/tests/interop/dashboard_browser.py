"""Opens the cache dashboard in headless Chromium the way a person would:
the login form first (a wrong token, then the right one), then the page.

usage: dashboard_browser.py BASE_URL TOKEN SCREENSHOT.png
Prints one JSON object with what the page shows.
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("M365_MCP_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def main(base, token, screenshot):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        first = page.goto(base + "/dashboard")
        login_status = first.status
        page.fill("#token", "not-the-token-" + "x" * 40)
        page.click("#sign-in")
        page.wait_for_selector("#login-error")
        wrong = page.inner_text("#login-error")
        page.fill("#token", token)
        page.click("#sign-in")
        page.wait_for_selector("#hits")
        value = lambda sel: page.get_attribute(sel, "data-value")
        rows = {}
        for row in page.query_selector_all("#per-resource tr[data-key]"):
            rows[row.get_attribute("data-key")] = {
                "entries": int(row.query_selector(".entries").inner_text()),
                "hits": int(row.query_selector(".hits").inner_text()),
                "misses": int(row.query_selector(".misses").inner_text()),
            }
        report = {
            "login_status": login_status,
            "wrong_token_message": wrong,
            "url": page.url,
            "hits": int(value("#hits")),
            "stale_hits": int(value("#stale-hits")),
            "misses": int(value("#misses")),
            "entries": int(value("#entries")),
            "stored_bytes": int(value("#stored-bytes")),
            "hit_rate_text": page.inner_text("#hit-rate"),
            "backend": page.inner_text("#backend"),
            "per_resource": rows,
            "has_chart": page.query_selector("#hit-rate-chart") is not None,
            "warming_percent": float(page.get_attribute("#warming", "data-percent")),
            "task_counts": {
                td.get_attribute("data-status"): int(td.inner_text())
                for td in page.query_selector_all("#task-counts td[data-status]")
            },
            "page_text": page.inner_text("body"),
        }
        page.screenshot(path=screenshot, full_page=True)
        browser.close()
        print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
