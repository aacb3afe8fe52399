#!/bin/sh
# Build mmcv-full (with its ops) against the torch in this image, once.
# torch >= 2.10 headers need C++20 while mmcv-full 1.7.x's setup.py asks for
# C++14/17, so the flag is patched in the sdist.  The wheel is kept in the pip
# cache mount, keyed by mmcv and torch versions, so an unrelated rebuild of
# this layer does not compile again.
set -eu
V=${MMCV_VERSION:?}
TORCH=$(python -c "import torch; print(torch.__version__)")
CACHE=/root/.cache/pip/jmmc-mmcv/$V-torch$TORCH
if ! ls "$CACHE"/*.whl >/dev/null 2>&1; then
  work=$(mktemp -d)
  cd "$work"
  pip-install download --no-deps --no-binary :all: "mmcv-full==$V" -d .
  tar xzf mmcv*full-"$V".tar.gz
  cd mmcv*full-"$V"
  sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' setup.py
  echo "compiling mmcv-full $V ops against torch $TORCH (about 12 min on 2 cores)"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" FORCE_CUDA=0 \
    python -m pip wheel --no-deps --no-build-isolation . -w "$CACHE"
  cd / && rm -rf "$work"
fi
pip-install --no-deps "$CACHE"/*.whl
