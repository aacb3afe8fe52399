#!/bin/sh
# pip inside an image build: `pip-install ARGS` = pip install ARGS; `pip-install download ARGS` too.
# The CA bundle arrives as a BuildKit secret (/run/secrets/pip_ca) and is never
# written into a layer; empty index/link build args are dropped so pip does not
# read them as URLs.
set -eu
[ -s /run/secrets/pip_ca ] && export PIP_CERT=/run/secrets/pip_ca
for v in PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_TRUSTED_HOST; do
  eval "val=\${$v:-}"; [ -n "$val" ] || unset "$v"
done
case "${1:-}" in
  download|wheel) cmd=$1; shift ;;
  *) cmd=install ;;
esac
exec python -m pip "$cmd" --prefer-binary "$@"
