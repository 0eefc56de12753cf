# factory's tasks. Each runs what it needs first, so a fresh machine needs only `just <task>`.
set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

venv := justfile_directory() / ".venv"

# Build NAME==VERSION from source, sign it and publish it into ./index (sets up what is missing first).
build +specs: setup sigstore
    {{venv}}/bin/factory build "$@"

# Run the test suite (real podman builds included); arguments go to pytest.
test *args: setup postgres browser
    {{venv}}/bin/python -m pytest "$@"

# Install what is missing: host packages, the venv with factory, the builder images.
setup: host venv
    {{venv}}/bin/factory images ensure

# factory's local Sigstore stack, in the background, unless it already runs (or signing is not local).
sigstore: venv
    {{venv}}/bin/factory sigstore-stack --background

# Any factory command, e.g. `just factory config`.
factory *args: venv
    {{venv}}/bin/factory "$@"

# The benchmarks in bench/, each printing its figures.
bench: setup postgres
    {{venv}}/bin/python bench/build_ratio.py
    {{venv}}/bin/python bench/arch_ratio.py
    {{venv}}/bin/python bench/ingest_speed.py
    {{venv}}/bin/python bench/claims.py
    {{venv}}/bin/python bench/signing.py
    {{venv}}/bin/python bench/index_scale.py
    {{venv}}/bin/python bench/bootstrap.py
    {{venv}}/bin/python bench/coverage.py
    {{venv}}/bin/python bench/farm.py
    {{venv}}/bin/python bench/upload.py

# podman, runc, debootstrap, QEMU for aarch64 (apt; idempotent).
host:
    containers/host-setup

# A PostgreSQL server on 127.0.0.1 for the shared-queue tests (apt; idempotent).
postgres:
    tests/postgres-setup

# Headless Chromium and tesseract for the status site's browser test (apt; idempotent).
browser:
    tests/browser-setup

# The venv, reinstalled only when pyproject.toml changes.
venv:
    #!/usr/bin/env bash
    set -euo pipefail
    stamp="{{venv}}/.installed-pyproject"
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        [ -x "{{venv}}/bin/python" ] || python3 -m venv "{{venv}}"
        "{{venv}}/bin/python" -m pip install --quiet --editable '.[test]'
        echo "$want" > "$stamp"
    fi
