"""What does trust cost per wheel? One run against factory's local Sigstore stack: signing (an
in-toto statement with SLSA provenance, DSSE, a Rekor entry, and the verification factory does
before publishing) and `factory verify`'s check of a bundle, each timed over N wheels.

    .venv/bin/python bench/signing.py [--wheels N]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts tests/ on the path)
from support.wheels import make_wheel

from factory.pipeline.sign import BuildFacts, Signer, SigningSettings
from factory.sigstore_stack import LocalSigstore
from factory.verify import SignatureCheck


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, LocalSigstore(Path(tmp) / "stack") as stack:
        settings = SigningSettings("local", stack.trust_config_path, stack.url, stack.token_secret_path,
                                   "factory@localhost", stack.issuer, "tag:factory,2026:builder/bench", stack.state_dir)
        wheels = [make_wheel(Path(tmp) / "w", f"bench-{n}", "1.0", body=str(n)) for n in range(args.wheels)]
        facts = BuildFacts("bench", "1.0", ("cp311-x86_64",), "https://example.invalid/bench-1.0.tar.gz", "0" * 64,
                           "", "", (("localhost/factory-builder:x", "sha256:" + "1" * 64),), "bench", "", "", "0")
        started = time.perf_counter()
        with Signer(settings) as signer:
            setup = time.perf_counter() - started
            sign_times, signatures = [], []
            for wheel in wheels:
                sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
                t = time.perf_counter()
                signatures.append((wheel, sha, signer.sign(wheel.name, sha, facts)))
                sign_times.append(time.perf_counter() - t)
        check = SignatureCheck(settings)
        verify_times = []
        for wheel, sha, signature in signatures:
            bundle = wheel.with_name(wheel.name + ".sigstore.json")
            bundle.write_bytes(signature.bundle)
            t = time.perf_counter()
            assert check.check(bundle, wheel.name, sha) == ("verified", "")
            verify_times.append(time.perf_counter() - t)
    print(f"{args.wheels} wheels, local Sigstore stack on 127.0.0.1")
    print(f"  identity token + signing certificate, once per build: {setup * 1000:.0f} ms")
    print(f"  sign (statement, DSSE, Rekor entry, verify before publishing): median {statistics.median(sign_times) * 1000:.1f} ms"
          f" per wheel, {sum(sign_times):.2f} s in all")
    print(f"  verify a bundle (factory verify): median {statistics.median(verify_times) * 1000:.1f} ms per wheel, "
          f"{sum(verify_times):.2f} s in all")


if __name__ == "__main__":
    main()
