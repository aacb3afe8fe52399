#!/bin/sh
# Build mmcv-full (with its ops) against the torch in this image, once.
# torch >= 2.10 headers need C++20 while mmcv-full 1.7.x's setup.py asks for
# C++14/17, so the flag is patched in the sdist.  The wheel is found, in order:
#   1. in the pip cache mount (keyed by mmcv and torch versions): an unrelated rebuild of this layer;
#   2. in the wheelhouse (volumes/wheelhouse/jmmc-mmcv/<mmcv>-torch<torch>/, served to the build as a
#      find-links URL): a rebuild after the builder cache is gone (`docker builder prune`, a new
#      Docker engine on the same checkout) installs it in seconds instead of compiling;
#   3. else compiled (about 12 min on 2 cores).
# The wheel is also left in the image under /opt/wheels/, from where `invoke images` copies it into
# the wheelhouse (docker/images.yaml: keep_wheels).
set -eu
V=${MMCV_VERSION:?}
TORCH=$(python -c "import torch; print(torch.__version__)")
SUB=jmmc-mmcv/$V-torch$TORCH
CACHE=/root/.cache/pip/$SUB
mkdir -p "$CACHE"
if ! ls "$CACHE"/*.whl >/dev/null 2>&1; then
  for link in ${PIP_FIND_LINKS:-}; do
    if python -m pip download -q --no-deps --no-index --only-binary :all: \
         --find-links "${link%/}/$SUB/" "mmcv-full==$V" -d "$CACHE" 2>/dev/null; then
      echo "mmcv-full $V for torch $TORCH: the wheelhouse's wheel (${link%/}/$SUB/), not compiled"
      break
    fi
  done
fi
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
mkdir -p "/opt/wheels/$SUB"
cp "$CACHE"/*.whl "/opt/wheels/$SUB/"
pip-install --no-deps "$CACHE"/*.whl
