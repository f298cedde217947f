"""The IDE for people (RULES.md section 8): GraphiQL at GET /graphql for browsers, its files
served by billgraph itself with no key, and a real browser (Debian's chromium, headless,
driven by Selenium through chromium-driver) that can reach nothing but the server: it
opens the page, puts in the key, runs the dashboard query, sees the customers' names, and
opens the documentation of Invoice. Screenshots are kept in .test-artefacts/."""
import os
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT, canonical

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
ARTEFACTS = os.path.join(ROOT, ".test-artefacts")


def fetch(server, path, accept=None):
    """GET without a key: (status, content type, body), whatever the body is."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def test_a_browser_gets_the_page_and_its_files_without_a_key(world):
    server = world["server"]
    status, content_type, body = fetch(server, "/graphql", BROWSER)
    assert status == 200 and content_type.startswith("text/html")
    html = body.decode()
    assert 'id="api-key"' in html and "headerEditorEnabled: true" in html
    # Every file the page loads is billgraph's own: nothing from another host.
    sources = [part.split('"')[0] for part in html.replace("href=", "src=").split('src="')[1:]]
    assert sources and all(s.startswith("/graphiql/") for s in sources), sources
    for source in sources:
        status, content_type, body = fetch(server, source)
        assert status == 200 and content_type.startswith(("text/css", "text/javascript")) and len(body) > 10_000, source
    assert fetch(server, "/graphiql/..%2FPackage.swift")[0] == 404 and fetch(server, "/graphiql/.pinned")[0] == 404
    # Programs still get GraphQL: a key is needed, and JSON comes back.
    for accept in (None, "*/*", "application/json, text/html"):
        status, content_type, _ = fetch(server, "/graphql?query=%7B__typename%7D", accept)
        assert status == 401 and content_type.startswith("application/json"), accept


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,2400",
                     # No network but the loopback: every other host name fails to resolve.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


@pytest.mark.timeout(180)
def test_graphiql_in_a_real_browser_runs_the_dashboard_and_shows_the_docs(world):
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    server, key = world["server"], world["keys"][(1, "full")]
    names = [c["name"] for c in server.gql(canonical("dashboard"), {"first": 2}, key=key).data["customers"]["nodes"]]
    assert len(names) == 2
    query = canonical("dashboard").replace("$first: Int = 25", "$first: Int = 2")
    os.makedirs(ARTEFACTS, exist_ok=True)
    driver = _browser()
    try:
        wait = WebDriverWait(driver, 30)
        driver.get(f"http://127.0.0.1:{server.port}/graphql?query=" + urllib.parse.quote(query))
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".graphiql-container")))
        field = driver.find_element(By.ID, "api-key")
        field.send_keys(key, Keys.TAB)
        driver.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()

        def result_text(d):
            text = d.find_element(By.CSS_SELECTOR, ".result-window").text
            return text if all(name in text for name in names) else False
        shown = wait.until(result_text)
        assert '"errors"' not in shown
        driver.save_screenshot(os.path.join(ARTEFACTS, "graphiql-dashboard.png"))

        driver.find_element(By.CSS_SELECTOR, "[aria-label='Show Documentation Explorer']").click()
        search = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".graphiql-doc-explorer-search-input input")))
        search.send_keys("Invoice")
        # The results are drawn again as the search settles: an entry found may be gone
        # before it is clicked, so finding and clicking are tried together until one holds.
        result = (By.XPATH, "//*[contains(@class, 'graphiql-doc-explorer-search')]//*[text()='Invoice']")

        def click_result(d):
            found = ready.element_to_be_clickable(result)(d)
            if found:
                found.click()
            return bool(found)
        WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException, ElementClickInterceptedException]).until(
            click_result)
        wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".graphiql-doc-explorer-title"), "Invoice"))
        wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, ".graphiql-doc-explorer-content"), "amountPaid"))
        driver.save_screenshot(os.path.join(ARTEFACTS, "graphiql-docs-invoice.png"))
        # Nothing the page loaded came from anywhere but billgraph.
        loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(url.startswith(f"http://127.0.0.1:{server.port}/") for url in loaded), loaded
    except Exception:
        driver.save_screenshot(os.path.join(ARTEFACTS, "graphiql-failure.png"))
        raise
    finally:
        driver.quit()
