"""The web page (app.py, web/): through Flask's test client for the edge cases, and in a real headless Chromium
(Selenium, Debian's chromium and chromedriver) for what a person sees."""
import io
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, write_split
from utils.inference.checkpoint import DEFAULT_DETECTOR, WEIGHTS_DIR
from utils.inference.predict import predict
from web.server import create_app


@pytest.fixture(scope="module")
def runs_with_a_checkpoint(tmp_path_factory):
    """A runs/ folder holding one tiny trained run (a map-less two-class model, trained in seconds)."""
    from utils.training.run import train
    base = tmp_path_factory.mktemp("app")
    os.environ.setdefault("AIC_CACHE_DIR", str(base / "cache"))
    train(model="model_2", train_path=str(write_split(base / "train", {"REAL": 32, "FAKE": 32}, seed=5)),
          test_path="none", epochs=1, batch_size=32, out=str(base / "runs" / "tiny"), progress=False, device="cpu")
    return base / "runs"


@pytest.fixture
def client(runs_with_a_checkpoint):
    app = create_app(runs_with_a_checkpoint, weights_dir=REPO / "no-weights-here")
    return app.test_client()


def png_bytes(seed=0, size=32):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def post(client, files, detector="run:tiny"):
    data = {"images": [(io.BytesIO(content), name) for name, content in files], "detector": detector}
    response = client.post("/", data=data, content_type="multipart/form-data")
    return response.status_code, response.data.decode()


def test_lists_runs_and_classifies_what_it_can(client):
    assert "run: tiny" in client.get("/").data.decode()
    status, page = post(client, [("a.png", png_bytes(1)), ("broken.jpg", b"\xff\xd8 not a jpeg"),
                                 ("b.png", png_bytes(2, size=64))])
    assert status == 200
    assert page.count('class="verdict ') == 2 and page.count('class="error"') == 1
    assert "broken.jpg" in page and "Could not be read" in page
    assert "3 file(s), 2 classified, 1 could not\nbe read" in page
    assert page.count("data:image/png;base64,") == 4  # view + Grad-CAM for each read file; no map on this model
    # random noise is nothing like the smooth gradients the tiny run learned: both verdicts say they are guesses
    assert page.count('class="uncertain outside"') == 2 and page.count('class="resized outside-note"') == 2
    assert page.count('class="resized"') == 1  # only the 64x64 one was shrunk: its verdict carries the warning
    assert "<code>run: tiny</code>" in page and str(client.application.extensions["detectors"].runs_dir) not in page


def test_refuses_bombs_big_files_and_oversized_requests(client):
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")  # 400 Mpixels, a few kB compressed
    big = b"\xff\xd8\xff" + bytes(60_000_000)  # over the 50 MB a file
    status, page = post(client, [("bomb.png", bomb.getvalue()), ("big.jpg", big), ("ok.png", png_bytes(3))])
    assert status == 200 and page.count('class="verdict ') == 1
    assert "decompression bomb" in page and "over the 50 MB limit" in page
    client.application.config["MAX_CONTENT_LENGTH"] = 10_000
    status, page = post(client, [("a.png", png_bytes(4, size=200))])
    assert status == 413 and "Refused: the upload is over" in page


def test_uploads_stay_in_a_temporary_folder(client, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    before = set(Path.cwd().iterdir())
    status, page = post(client, [("../../escape.png", png_bytes(5))])
    assert status == 200 and "escape.png" in page and page.count('class="verdict ') == 1
    assert list(tmp_path.iterdir()) == [] and set(Path.cwd().iterdir()) == before


def test_only_listed_detectors_can_be_chosen(client):
    status, page = post(client, [("a.png", png_bytes(6))], detector="run:../../etc")
    assert status == 400 and "Unknown detector" in page
    status, page = post(client, [], detector="run:tiny")
    assert status == 400 and "Choose one or more image files" in page


# --- the real browser -------------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _correctly_classified(classifier, folder, n=1):
    """The first `n` files by name in `folder` that the detector classifies as the folder's class."""
    files = sorted(folder.iterdir())[:50]
    hits = [r["path"] for r in predict(classifier, files, device="cpu") if r.get("label") == folder.name]
    return [Path(p) for p in hits[:n]]


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no chromium/chromedriver here (apt-get install "
                    "chromium chromium-driver; .ci/run does)")
@pytest.mark.skipif(not (WEIGHTS_DIR / f"{DEFAULT_DETECTOR}.pt").is_file(), reason="no shipped detector in weights/")
def test_page_in_headless_chromium(shipped_root, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    from utils.inference.checkpoint import load_classifier
    test = shipped_root / "test-3class"
    classifier = load_classifier(WEIGHTS_DIR / f"{DEFAULT_DETECTOR}.pt")  # the page's first choice
    picked = {c: _correctly_classified(classifier, test / c)[0] for c in ("REAL", "EDITED", "FAKE")}
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(picked["REAL"].read_bytes()[:200])  # a JPEG cut short
    uploads = [picked["REAL"], picked["EDITED"], picked["FAKE"], corrupt]

    server = make_server("127.0.0.1", 0, create_app(tmp_path / "no-runs"), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,3200"):
        options.add_argument(flag)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a browser or driver
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        assert f"shipped: {DEFAULT_DETECTOR}" in driver.find_element(By.ID, "detector").text
        driver.find_element(By.ID, "images").send_keys("\n".join(str(p) for p in uploads))
        driver.find_element(By.ID, "classify").click()
        WebDriverWait(driver, 60).until(expected_conditions.presence_of_element_located((By.ID, "summary")))
        cards = driver.find_elements(By.CSS_SELECTOR, ".card")
        verdicts = {c.get_attribute("data-name"): c for c in cards}
        assert len(cards) == 4
        for cls, path in picked.items():
            card = verdicts[path.name]
            assert card.find_element(By.CSS_SELECTOR, ".verdict").text == cls
            assert card.find_elements(By.CSS_SELECTOR, "img.pixels")  # the view and Grad-CAM at least
            assert "P(FAKE)" in card.text and "edit score" in card.text  # both answers, not only the label
        edited_card = verdicts[picked["EDITED"].name]
        assert edited_card.find_elements(By.CSS_SELECTOR, "img[alt='edit map']")
        assert "Could not be read" in verdicts["corrupt.jpg"].text
        assert "4 file(s), 3 classified, 1 could not" in driver.find_element(By.ID, "summary").text
        shot = REPO / "runs" / "browser-test" / "page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))  # kept for a look by eye (README's screenshot is one of these)
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
        server.shutdown()
