#!/bin/sh
# Install the Hailo Dataflow Compiler / HailoRT wheels when the wheelhouse has them.
# The wheels are served to the build as find-links ($PIP_FIND_LINKS); wheels.py finds them,
# refuses a mismatched DFC/HailoRT pair (stages/hailo/sdk_pairs.yaml) or a wheel built for
# another Python, and copies them here.  No wheel: the image builds anyway and says so.
set -eu
dest=/tmp/hailo-wheels
python /opt/hailo/wheels.py fetch "$dest"
if ls "$dest"/*.whl >/dev/null 2>&1; then
  # the DFC draws its diagrams with graphviz (pygraphviz builds against it)
  apt-get update && apt-get install -y --no-install-recommends graphviz libgraphviz-dev gcc python3-dev \
    && rm -rf /var/lib/apt/lists/*
  pip-install "$dest"/*.whl
  python -c "import hailo_sdk_client" 2>/dev/null && echo "hailo: Dataflow Compiler importable" || true
  python -c "import hailo_platform" 2>/dev/null && echo "hailo: HailoRT importable" || true
else
  echo "hailo: SDK absent - the image has no Dataflow Compiler/HailoRT; the stage will report it as skipped"
fi
rm -rf "$dest"
