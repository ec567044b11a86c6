"""Browser tests of /console, /shop and /widget.js: a real headless Chromium (Debian's package)
driven by Playwright for Python, against a real aisle server with real models.

Usage: pages.py URL OUT_DIR (keys in AISLE_ADMIN_KEY, AISLE_APP_KEY, AISLE_READ_KEY; the widget's
host page in WIDGET_PAGE_URL, optional; a second catalog's server in SECOND_URL, optional).
Prints one PASS/FAIL line per check, measurements as `MEASURED ...` lines, and writes screenshots
to OUT_DIR. Exits 1 if any check failed.
"""

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import sync_playwright

URL = sys.argv[1].rstrip("/")
OUT = sys.argv[2]
ADMIN, APP, READ = (os.environ[k] for k in ("AISLE_ADMIN_KEY", "AISLE_APP_KEY", "AISLE_READ_KEY"))
WIDGET_PAGE = os.environ.get("WIDGET_PAGE_URL")
SECOND = os.environ.get("SECOND_URL")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DESKTOP, PHONE = {"width": 1280, "height": 860}, {"width": 390, "height": 844}
WAIT = 120_000  # ms: the assistant runs a real chat model on 2 cores

failures = []
outside = []  # requests to any host but the aisle server (and the widget's host page)


def call(method, path, key, body=None):
    req = urllib.request.Request(URL + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode() or "null")


def check(name):
    def wrap(f):
        started = time.time()
        try:
            f()
            print(f"PASS {name} ({time.time() - started:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, the run goes on
            failures.append(name)
            print(f"FAIL {name}: {e}", flush=True)
            traceback.print_exc()
        return f

    return wrap


def new_page(browser, key=None, viewport=DESKTOP, allowed=()):
    """A fresh context (its own session storage) whose requests are all logged."""
    ctx = browser.new_context(viewport=viewport, service_workers="block")
    if key:
        # The key a person would paste at sign-in, put in session storage before the page runs.
        ctx.add_init_script(f"sessionStorage.setItem('aisle.key', {json.dumps(key)})")
    hosts = {urllib.parse.urlsplit(URL).netloc, *allowed}

    def log(req):
        u = urllib.parse.urlsplit(req.url)
        if u.scheme in ("data", "blob", "about"):
            return
        if u.netloc not in hosts:
            outside.append(req.url)

    ctx.on("request", log)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page._aisle_problems = problems  # read by no_errors()
    return ctx, page


def no_errors(page, allow=()):
    bad = [p for p in page._aisle_problems if not any(a in p for a in allow)]
    assert not bad, f"errors in the page: {bad}"


def shot(page, name):
    page.screenshot(path=os.path.join(OUT, f"{name}.png"), full_page=False)


def unlabelled(page):
    """Form controls without an accessible name (a label, aria-label or aria-labelledby)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
             .filter(e => !e.closest('[hidden]'))
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
             .map(e => e.id || e.outerHTML.slice(0, 80))"""
    )


def run(pw):
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

    @check("console: the overview's first load (weight and time to interactive, measured)")
    def first_load():
        ctx, page = new_page(browser, ADMIN)
        page.goto(URL + "/console")
        page.wait_for_selector(".tiles .value")
        page.wait_for_selector("figure svg")
        t = page.evaluate("() => performance.now()")
        sizes = page.evaluate(
            """() => [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
                 .map(e => ({name: e.name, transfer: e.transferSize, body: e.encodedBodySize}))"""
        )
        total = sum(s["transfer"] for s in sizes)
        print(f"MEASURED console overview first load: {total / 1024:.1f} KB transferred in {len(sizes)} requests, "
              f"overview drawn {t:.0f} ms after navigation start", flush=True)
        no_errors(page)
        ctx.close()

    @check("console: sign in with an admin key, every page offered, controls labelled")
    def login():
        ctx, page = new_page(browser)
        page.goto(URL + "/console")
        page.fill("#key", "not-a-key")
        page.click("button:has-text('Sign in')")
        page.wait_for_selector("text=That key was not accepted.")
        page.fill("#key", ADMIN)
        page.click("button:has-text('Sign in')")
        page.wait_for_selector("h1:has-text('Overview')")
        nav = page.inner_text("nav.side")
        for title in ("Catalog", "Customers", "Recommendations", "Assistant", "Audit log", "API keys", "Configuration"):
            assert title in nav, f"{title} missing from the navigation: {nav}"
        page.wait_for_selector(".tiles .value")
        for p in ("overview", "catalog", "customers", "rules", "recommend", "assistant", "reports", "metrics", "audit", "keys", "settings"):
            page.goto(f"{URL}/console#/{p}")
            page.wait_for_selector("main h1")
            page.wait_for_load_state("networkidle")
            assert not unlabelled(page), f"#/{p}: unlabelled controls {unlabelled(page)}"
        config = json.loads(page.inner_text("#config-json"))
        assert config["privacy"]["secret"] == "***", config["privacy"]
        assert os.environ["BROWSER_SECRET"] not in page.content(), "the secret is not in the page"
        assert isinstance(config["chat"]["default_max_tokens"], int), "only secrets are masked"
        no_errors(page, allow=("401",))  # before sign-in, and the wrong key
        ctx.close()

    @check("console: search the catalog and open a product")
    def catalog():
        ctx, page = new_page(browser, ADMIN)
        page.goto(URL + "/console#/catalog")
        page.fill("#cat-q", "wireless headphones")
        page.click("form.panel button[type=submit]")
        page.wait_for_selector("#catalog-results tbody tr a")
        rows = page.locator("#catalog-results tbody tr")
        assert rows.count() > 0
        page.fill("#cat-max", "100")
        page.click("form.panel button[type=submit]")
        page.wait_for_selector("#catalog-results")
        page.wait_for_load_state("networkidle")
        prices = page.locator("#catalog-results tbody td.num:nth-child(4)").all_inner_texts()
        assert prices and all(float(p.replace("$", "").replace(",", "")) <= 100 for p in prices), prices
        shot(page, "console-catalog-desktop")
        first = page.locator("#catalog-results tbody tr a").first
        title = first.inner_text()
        first.click()
        page.wait_for_selector("#product-facts")
        assert page.inner_text("h1") == title
        page.wait_for_selector("#embedded-text")
        assert title.split()[0] in page.inner_text("#embedded-text"), "the embedded text names the product"
        page.wait_for_selector("h2:has-text('Similar') + ol li")
        page.wait_for_selector("#product-json")  # admins may edit
        no_errors(page)
        ctx.close()

    @check("console: the recommendations playground")
    def playground():
        ctx, page = new_page(browser, APP)
        page.goto(URL + "/console#/recommend")
        page.fill("#pick-q", "gaming laptop")
        page.press("#pick-q", "Enter")
        page.locator("#pick-results button").first.click()
        page.wait_for_selector("#picked li button")
        page.click("#pg-run")
        page.wait_for_selector("#pg-out ol li")
        first = page.locator("#pg-out ol li").all_inner_texts()
        assert len(first) >= 3, first
        assert page.locator("#pg-out .badge.source").count() > 0, "items name their sources"
        # Only the session source: every item names it.
        for s in ("content", "co_purchase", "trending", "collab"):
            page.uncheck(f"#on-{s}")
        page.click("#pg-run")
        page.wait_for_function("() => document.querySelector('#pg-out p') && document.querySelector('#pg-out p').textContent.includes('sources session')")
        badges = page.locator("#pg-out ol li").evaluate_all("els => els.map(e => [...e.querySelectorAll('.badge.source')].map(b => b.textContent.split(' ')[0]))")
        assert badges and all(b == ["session"] for b in badges), badges
        no_errors(page)
        ctx.close()

    @check("console: the assistant playground answers 'headphones under $100' with matching cards only")
    def assistant():
        ctx, page = new_page(browser, APP)
        page.goto(URL + "/console#/assistant")
        page.fill("#ask", "headphones under $100")
        page.click("form.panel button[type=submit]")
        page.wait_for_selector(".turn .timings", timeout=WAIT)
        ids = page.locator("#assistant-cards .product-card").evaluate_all("els => els.map(e => e.dataset.id)")
        assert ids, "no product cards"
        for pid in ids:
            status, p = call("GET", f"/v1/products/{urllib.parse.quote(pid)}", READ)
            assert status == 200, (pid, status)
            words = (p["title"] + " " + " ".join(p["categories"])).lower()
            assert any(w in words for w in ("headphone", "earbud", "earphone", "headset")), f"{pid} is not headphones: {p['title']}"
            assert p["price"] is not None and p["price"] <= 100, f"{pid} costs {p['price']}"
        assert page.inner_text(".turn .answer").strip(), "the answer has text"
        assert "Grounding" in page.inner_text(".turn .grounding summary")
        shot(page, "console-assistant-desktop")
        print(f"MEASURED assistant playground cards: {ids}", flush=True)
        no_errors(page)
        ctx.close()

    @check("console: export a customer, erase them with a confirmation, and the export comes back empty")
    def erase():
        cid = "browser-erase-1"
        assert call("PUT", f"/v1/customers/{cid}", ADMIN, {"consent": {"personalization": True, "analytics": True}})[0] in (200, 201)
        status, _ = call("POST", "/v1/events", ADMIN, {"events": [
            {"id": f"{cid}-{i}", "kind": "view", "product_id": pid, "customer_id": cid, "session_id": "s1"}
            for i, pid in enumerate(("el-0001", "el-0002", "el-0003"))]})
        assert status == 200, status
        ctx, page = new_page(browser, ADMIN)
        page.goto(f"{URL}/console#/customers/{cid}")
        page.wait_for_selector("#history tbody tr")
        page.wait_for_selector("h3:has-text('Final')")
        assert page.locator(".explanation").count() > 0, "recommendations carry explanations"
        page.click("#export-button")
        page.wait_for_selector("#export-json")
        before = json.loads(page.inner_text("#export-json"))
        assert len(before["events"]) == 3 and before["profile"], before.keys()
        page.click("#erase-button")
        page.wait_for_selector("dialog[open]")
        page.click("#confirm-yes")
        page.wait_for_selector("#erased")
        page.click("#export-button")
        page.wait_for_function("() => document.querySelector('#export-json')")
        after = json.loads(page.inner_text("#export-json"))
        assert after["events"] == [] and after["profile"] is None and after["sessions"] == [], after
        no_errors(page, allow=("404",))
        ctx.close()

    @check("console: an admin makes a key (shown once) and revokes it; the audit log filters")
    def keys():
        ctx, page = new_page(browser, ADMIN)
        page.goto(URL + "/console#/keys")
        page.fill("#key-name", "browser-made")
        page.select_option("#key-role", "read")
        page.click("button:has-text('Create key')")
        key = page.inner_text("#new-key").strip()
        assert key.startswith("aisle_"), key
        assert call("GET", "/v1/whoami", key) == (200, {"name": "browser-made", "role": "read", "auth": "keys"})
        page.click("button[aria-label='Revoke browser-made']")
        page.click("#confirm-yes")
        page.wait_for_function("() => !document.querySelector('#keys-table').textContent.includes('browser-made')")
        assert call("GET", "/v1/whoami", key)[0] == 401, "a revoked key is refused at once"
        page.goto(URL + "/console#/audit")
        page.fill("#audit-action", "keys")
        page.click("button:has-text('Filter')")
        page.wait_for_function(
            """() => { const a = [...document.querySelectorAll('#audit-table tbody td:nth-child(4)')].map(td => td.textContent);
                       return a.length >= 2 && a.every(x => x.includes('keys')); }""")
        actions = page.locator("#audit-table tbody td:nth-child(4)").all_inner_texts()
        assert actions and all("keys" in a for a in actions), actions
        no_errors(page)
        ctx.close()

    @check("console: an admin pins a product from the rules page; recommendations say so; the rule is deleted")
    def rules():
        ctx, page = new_page(browser, ADMIN)
        page.goto(URL + "/console#/rules")
        page.fill("#rule-id", "browser-pin")
        page.select_option("#rule-action", "pin")
        page.fill("#rule-products", "el-0001")
        page.click("button:has-text('Save rule')")
        page.wait_for_selector("#rules-table td:has-text('browser-pin')")
        assert "yes" in page.inner_text("#rules-table tbody tr"), "in effect"
        status, r = call("POST", "/v1/recommendations", APP, {"session": {"items": ["el-0121"]}, "limit": 5})
        assert status == 200 and r["items"][0]["product"]["id"] == "el-0001", r
        assert r["items"][0]["explanation"].startswith("Pinned by rule browser-pin"), r["items"][0]
        page.click("button[aria-label='Delete browser-pin']")
        page.click("#confirm-yes")
        page.wait_for_selector("text=No rules.")
        status, r = call("POST", "/v1/recommendations", APP, {"session": {"items": ["el-0121"]}, "limit": 5})
        assert r["items"][0]["product"]["id"] != "el-0001", r
        no_errors(page)
        ctx.close()

    @check("console: the benchmark report in DATA_DIR/reports as a table and a chart")
    def reports():
        ctx, page = new_page(browser, READ)
        page.goto(URL + "/console#/reports")
        page.wait_for_selector(".report h2:has-text('bench-quick.json')")
        rows = page.locator(".report table tbody tr").count()
        assert rows > 10, rows
        assert page.locator(".report figure svg rect").count() > 3, "ratios drawn as bars"
        no_errors(page)
        ctx.close()

    @check("console: a read key sees no erase and no key management (page and API refuse)")
    def read_key():
        ctx, page = new_page(browser, READ)
        page.goto(URL + "/console")
        page.wait_for_selector("h1:has-text('Overview')")
        nav = page.inner_text("nav.side")
        assert "API keys" not in nav and "Customers" not in nav and "Audit log" not in nav, nav
        page.goto(URL + "/console#/keys")
        page.wait_for_selector("main .error")
        assert "may not use this page" in page.inner_text("main .error")
        assert page.locator("#key-name").count() == 0 and page.locator("#erase-button").count() == 0
        page.goto(URL + "/console#/customers/browser-erase-1")
        page.wait_for_selector("main .error")
        assert page.locator("#erase-button").count() == 0
        for method, path in (("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"), ("DELETE", "/v1/admin/keys/x"),
                             ("DELETE", "/v1/customers/browser-erase-1"), ("GET", "/v1/customers/browser-erase-1/export")):
            status, problem = call(method, path, READ, {"name": "x", "role": "admin"} if method == "POST" else None)
            assert status == 403 and problem["status"] == 403, (method, path, status, problem)
        # The read key still reads the catalog.
        page.goto(URL + "/console#/catalog")
        page.wait_for_selector("#catalog-results tbody tr")
        no_errors(page, allow=("403",))
        ctx.close()

    @check("shop: a shopper views products, gets recommendations that change, and turns consent off")
    def shop():
        ctx, page = new_page(browser)
        page.goto(URL + "/shop")
        page.fill("#shop-key", APP)
        page.click("button:has-text('Open the shop')")
        page.click("#consent-yes")
        page.wait_for_selector("#consent", state="hidden")  # the question goes once answered
        page.wait_for_selector("#recommended .product")
        shot(page, "shop-home-desktop")
        before = page.locator("#recommended .product").evaluate_all("els => els.map(e => e.dataset.id)")
        rec_id = page.get_attribute("#recommended", "data-rec-id")
        page.locator("#recommended details.why summary").first.click()
        assert page.locator("#recommended details.why[open] p").inner_text().strip(), "why this? explains"
        # Look at headphones: search, open three products.
        page.fill("#q", "headphones")
        page.press("#q", "Enter")
        page.wait_for_selector("#listing .product")
        viewed = page.locator("#listing .product").evaluate_all("els => els.slice(0, 3).map(e => e.dataset.id)")
        for pid in viewed:
            page.goto(f"{URL}/shop#/p/{urllib.parse.quote(pid)}")
            page.wait_for_selector("#product h1")
            page.wait_for_selector("h2:has-text('Similar products')")
        page.click("#cart-button")
        page.wait_for_selector("#product .ok")
        # A click on a recommended item is attributed to its list.
        page.goto(URL + "/shop#/")
        page.wait_for_selector("#recommended .product")
        after = page.locator("#recommended .product").evaluate_all("els => els.map(e => e.dataset.id)")
        assert after != before, f"recommendations did not change after the views: {after}"
        explanations = page.locator("#recommended details.why p").all_text_contents()
        print(f"MEASURED shop recommendations before {before} after viewing {viewed}: {after}", flush=True)
        page.locator("#recommended .product a.title").first.click()
        page.wait_for_selector("#product h1")
        page.click("#purchase-button")
        page.wait_for_selector("#product .ok")
        stats = call("GET", "/v1/stats/recommendations", READ)[1]
        assert stats["total"]["impressions"] > 0 and stats["total"]["clicks"] > 0 and stats["total"]["purchases"] > 0, stats["total"]
        # Phone width: the same home page, one column of navigation.
        page.set_viewport_size(PHONE)
        page.goto(URL + "/shop#/")
        page.wait_for_selector("#recommended .product")
        shot(page, "shop-home-phone")
        # Privacy: what is stored, then consent off.
        page.set_viewport_size(DESKTOP)
        page.click("text=Your data")
        page.wait_for_selector("#stored-history li")
        shopper = page.inner_text("#shopper-id")
        page.uncheck("#consent-personalization")
        page.wait_for_selector("#consent-saved")
        status, c = call("GET", f"/v1/customers/{urllib.parse.quote(shopper)}", APP)
        assert status == 200 and c["consent"]["personalization"] is False, c
        page.goto(URL + "/shop#/")
        page.wait_for_selector("#recommended .product")
        assert "personalisation" in page.inner_text("#recs p.muted") or "know nothing" in page.inner_text("#recs p.muted")
        assert rec_id and explanations
        no_errors(page, allow=("401",))  # the shop asked for its key: whoami answered 401 first
        ctx.close()

    @check("shop: the assistant panel answers with product cards")
    def shop_assistant():
        ctx, page = new_page(browser, APP)
        page.goto(URL + "/shop")
        page.click("#consent-no")
        page.click("#chat-open")
        page.fill("#chat-input", "a smart watch")
        page.press("#chat-input", "Enter")
        page.wait_for_selector(".chat-cards .card", timeout=WAIT)
        assert page.inner_text("#chat-log .msg.bot").strip()
        no_errors(page)
        ctx.close()

    @check("the overview after the shopping above, and the console at phone width (screenshots)")
    def phone():
        ctx, page = new_page(browser, ADMIN)
        page.goto(URL + "/console#/overview")
        page.wait_for_selector("figure svg polyline", state="attached")
        page.wait_for_load_state("networkidle")
        shot(page, "console-overview-desktop")
        tiles = page.locator(".tiles .tile").all_inner_texts()
        assert any("events" in t and not t.startswith("0") for t in tiles), f"the events moved: {tiles}"
        page.set_viewport_size(PHONE)
        for p, name in (("overview", "console-overview-phone"), ("catalog", "console-catalog-phone"), ("assistant", "console-assistant-phone")):
            page.goto(f"{URL}/console#/{p}")
            page.wait_for_selector("main h1")
            page.wait_for_load_state("networkidle")
            shot(page, name)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"] + 1, f"#/{p} scrolls sideways at phone width ({width}px)"
        no_errors(page)
        ctx.close()

    if WIDGET_PAGE:
        @check("widget: a retailer's page on another origin shows the strip and asks the assistant")
        def widget():
            host = urllib.parse.urlsplit(WIDGET_PAGE).netloc
            ctx, page = new_page(browser, allowed=(host,))
            page.goto(WIDGET_PAGE)
            page.wait_for_selector("[data-aisle=recommendations] .card", timeout=60_000)  # inside the shadow root
            assert page.locator("[data-aisle=recommendations] .card").count() >= 3
            page.fill("[data-aisle=assistant] input", "a soundbar")
            page.press("[data-aisle=assistant] input", "Enter")
            page.wait_for_selector("[data-aisle=assistant] .card", timeout=WAIT)
            shot(page, "widget-desktop")
            no_errors(page)
            ctx.close()

    if SECOND:
        @check("shop over a second catalog: categories, a product, recommendations, download and erase")
        def second():
            global URL
            first_url, URL = URL, SECOND
            try:
                ctx, page = new_page(browser)  # this server has no keys: open on loopback
                page.goto(SECOND + "/shop")
                page.click("#consent-yes")
                # Answered (stored) before anything is viewed: a view sent while the answer is
                # on its way counts under the consent the shopper had then (none).
                page.wait_for_selector("#consent", state="hidden")
                page.wait_for_selector("#cats a")
                cats = page.locator("#cats a").all_inner_texts()
                page.locator("#cats a").first.click()
                page.wait_for_selector("#listing .product")
                page.locator("#listing .product a.title").first.click()
                page.wait_for_selector("#product h1")
                page.goto(SECOND + "/shop#/")
                page.wait_for_selector("#recommended .product")
                print(f"MEASURED second catalog categories: {cats[:8]}", flush=True)
                # The page sends its view without waiting for it; "Your data" shows what is
                # stored when it opens, so wait until the view is.
                me = urllib.parse.quote(page.evaluate("localStorage.getItem('aisle.shop.customer')"))
                for _ in range(60):
                    with urllib.request.urlopen(f"{SECOND}/v1/customers/{me}", timeout=60) as r:
                        if json.loads(r.read().decode())["history"]:
                            break
                    time.sleep(0.5)
                # "Your data" on a server that lets the shop do everything (open on loopback):
                # download, then erase after the shopper confirms.
                page.click("text=Your data")
                page.wait_for_selector("#stored-history li")
                shopper = page.inner_text("#shopper-id")
                with page.expect_download() as dl:
                    page.click("button:has-text('Download my data')")
                mine = json.loads(open(dl.value.path()).read())
                assert mine["customer_id"] == shopper and mine["events"], mine.keys()
                page.once("dialog", lambda d: d.accept())
                page.click("button:has-text('Erase my data')")
                page.wait_for_selector("text=Erased.")
                req = urllib.request.Request(f"{SECOND}/v1/customers/{urllib.parse.quote(shopper)}/export")
                with urllib.request.urlopen(req, timeout=60) as r:
                    gone = json.loads(r.read().decode())
                assert gone["events"] == [] and gone["profile"] is None, gone
                no_errors(page)
                ctx.close()
            finally:
                URL = first_url

    @check("no page made a request to any other host")
    def egress():
        assert not outside, f"requests elsewhere: {sorted(set(outside))[:20]}"

    browser.close()


os.makedirs(OUT, exist_ok=True)
with sync_playwright() as pw:
    run(pw)
print(f"browser: screenshots in {OUT}", flush=True)
if failures:
    print(f"browser: FAILED {len(failures)}: {failures}", flush=True)
    sys.exit(1)
print("browser: OK", flush=True)
