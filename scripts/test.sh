#!/usr/bin/env bash
# Runs the whole test suite: unit and integration tests (pytest, real servers on 127.0.0.1),
# ansible-test sanity, ansible-lint (production profile) and the molecule scenarios. Installs what they
# need first (.ci/install, Debian 12 as root), as scripts/demo.sh does.
#   scripts/test.sh            everything
#   scripts/test.sh pytest     only the pytest part (extra arguments go to pytest; test paths among them
#                              replace tests/unit tests/integration)
#   scripts/test.sh sanity|lint|molecule
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# Console scripts (ansible-playbook, ansible-test, molecule...) of the interpreter that runs the tests.
export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
cd "$repo"
# Installs what the suite needs on a fresh Debian 12 machine (quick when it is all there); LIFEBOAT_SKIP_INSTALL=1
# skips it.
[ "${LIFEBOAT_SKIP_INSTALL:-}" = 1 ] || bash .ci/install
part=${1:-all}
[ $# -gt 0 ] && shift
status=0

run_pytest() {
  # Test paths among the arguments replace the default (the whole suite).
  local paths=(tests/unit tests/integration) arg
  for arg in "$@"; do
    if [[ "$arg" != -* && -e "${arg%%::*}" ]]; then paths=(); break; fi
  done
  python3 -m pytest -n 2 --dist loadfile -q -p no:cacheprovider "${paths[@]}" "$@"
}

run_sanity() {
  # ansible-test needs the collection at ansible_collections/<namespace>/<name>.
  local work rc=0 pip_version
  pip_version=$(python3 - <<'PY'
import os, re, ansible_test
source = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"pip='([0-9.]+)'", source).group(1))
PY
)
  mkdir -p ~/.ansible/test/cache
  cp tests/sanity/get_pip_offline.py ~/.ansible/test/cache/get_pip_${pip_version//./_}.py
  work=$(mktemp -d)
  mkdir -p "$work/ansible_collections/lifeboat"
  git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ "$work/ansible_collections/lifeboat/backup/"
  (cd "$work/ansible_collections/lifeboat/backup" && git init -q && git add -A &&
    ansible-test sanity --python "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
      --requirements --color no "$@") || rc=$?
  rm -rf "$work"
  return $rc
}

run_lint() {
  ANSIBLE_COLLECTIONS_PATH="$(mktemp -d)" ansible-lint --profile production --nocolor "$@"
}

run_molecule() {
  [ -x molecule/run.sh ] && bash molecule/run.sh "$@"
}

case "$part" in
  pytest) run_pytest "$@" || status=$? ;;
  sanity) run_sanity "$@" || status=$? ;;
  lint) run_lint "$@" || status=$? ;;
  molecule) run_molecule "$@" || status=$? ;;
  all)
    run_sanity || status=1
    run_lint || status=1
    run_molecule || status=1
    run_pytest || status=1
    ;;
  *) echo "usage: $0 [all|pytest|sanity|lint|molecule] [args]" >&2; exit 2 ;;
esac
exit $status
