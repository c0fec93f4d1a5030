"""Regenerate docs/img/viewer.png: the interactive viewer of specs/resnet18.yaml in headless
chromium, one block expanded and a tooltip showing (run from the repo root; needs chromium,
chromedriver and selenium, as the viewer's tests do)."""
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, "tests")
from browser import CHROMIUM, DRIVER, FLAGS, missing  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402

if missing():
    sys.exit(missing())
page = Path(tempfile.mkdtemp()) / "resnet18.html"
subprocess.run(["netspec", "draw", "specs/resnet18.yaml", "-o", str(page)], check=True, stdout=subprocess.DEVNULL)
options = webdriver.ChromeOptions()
for flag in FLAGS:
    options.add_argument(flag.replace("1400,900", "1100,760"))
options.add_argument(f"--user-data-dir={tempfile.mkdtemp()}")
options.binary_location = CHROMIUM
driver = webdriver.Chrome(options=options, service=Service(DRIVER))
try:
    driver.get(page.as_uri())
    driver.find_element("id", "collapse-all").click()
    for name in ("b3", "b3.0"):
        driver.find_element("css selector", f'.box.block[data-name="{name}"]').click()
    driver.execute_script("document.getElementById('view').scrollTop = 120")
    driver.execute_script("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    ActionChains(driver).move_to_element(driver.find_element("css selector", '.box.op[data-name="b3.0.conv3"]')).perform()
    driver.save_screenshot("docs/img/viewer.png")
finally:
    driver.quit()
print("wrote docs/img/viewer.png")
