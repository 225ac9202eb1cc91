#!/usr/bin/env bash
# Make sure a Java 17+ runtime is there for Spark: install Debian's openjdk-17-jre-headless when root, else say how.
set -euo pipefail
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if command -v java >/dev/null 2>&1 && [ "$(java_major)" -ge 17 ] 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Java 17 (openjdk-17-jre-headless) for Spark ..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  exit 0
fi
echo "error: Spark needs a Java 17+ runtime and none was found." >&2
echo "       Install it with:  sudo apt-get install openjdk-17-jre-headless   (Debian/Ubuntu)" >&2
echo "       then run this command again." >&2
exit 1
