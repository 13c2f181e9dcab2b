#!/bin/sh
# Test setup for the browser tests (report.html and `bprl view` in headless Chromium): Debian's
# chromium and its chromedriver. Installs them with apt-get where they are missing and this user
# may install packages; otherwise says why, and the browser tests are skipped with that reason.
# Never fails the setup.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser tests will be skipped: chromium/chromedriver missing and no apt-get to install them"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "browser tests will be skipped: chromium/chromedriver missing and installing them needs root"
    exit 0
fi
echo "installing chromium and chromium-driver (Debian) for the browser tests"
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq >/dev/null 2>&1 &&
      $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } ||
    echo "browser tests will be skipped: apt-get could not install chromium chromium-driver"
exit 0
