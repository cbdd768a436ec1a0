#!/usr/bin/python3
# usage: converse.py PROFILE_DIR
#
# A headless Chromium (Debian's, driven through Debian's chromedriver by
# selenium) for the web chat tests. Commands come one a line on stdin:
#   open URL        load URL in a new tab (the only tab kept)
#   events          print the page's window.tokenauthdEvents as one JSON line
#   eval JS         print the JSON of the expression JS
#   console         print the page's console messages since the last time
# Each answer is one line on stdout. At the end of stdin the browser quits.
import json, os, sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-extensions", "--disable-dev-shm-usage", "--password-store=basic",
          # Pages of 127.0.0.1 only: every other name resolves to nothing.
          "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
          "--user-data-dir=" + sys.argv[1]]:
    opts.add_argument(a)
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
if os.geteuid() == 0:
    # Chromium's sandbox cannot run as root.
    opts.add_argument("--no-sandbox")
service = Service("/usr/bin/chromedriver", log_path=os.path.join(sys.argv[1], "chromedriver.log"))
driver = webdriver.Chrome(service=service, options=opts)
print("ready", driver.capabilities.get("browserVersion", "?"), flush=True)
try:
    for line in sys.stdin:
        cmd, _, arg = line.rstrip("\n").partition(" ")
        try:
            if cmd == "open":
                driver.get(arg)
                print(json.dumps("ok"), flush=True)
            elif cmd == "events":
                print(json.dumps(driver.execute_script("return window.tokenauthdEvents || []")), flush=True)
            elif cmd == "eval":
                print(json.dumps(driver.execute_script("return " + arg)), flush=True)
            elif cmd == "console":
                print(json.dumps([m.get("message", "") for m in driver.get_log("browser")]), flush=True)
            else:
                print(json.dumps({"error": "unknown command " + cmd}), flush=True)
        except Exception as e:  # reported, not fatal: the test decides
            print(json.dumps({"error": str(e).splitlines()[0] if str(e) else type(e).__name__}), flush=True)
finally:
    driver.quit()
