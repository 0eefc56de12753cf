"""Trust: built wheels are signed with the real sigstore client against the local stack, the
index serves bundles and PEP 740 provenance, and `factory verify` tells ours from the rest."""

import json
import os
import subprocess
import sys

import pytest
from conftest import assert_not_published, isolated_pip_env
from support.wheels import make_wheel

from factory.pipeline.request import parse_request
from factory.pipeline.run import run

pytestmark = pytest.mark.container


@pytest.fixture(autouse=True)
def _image(builder_image):
    """Every test here needs the x86_64 builder image."""


@pytest.fixture
def signed(config):
    record = run(parse_request("fixture-cext==1.0.0"), config)
    assert record.status == "built", f"{record.failure_class}: {record.reason}"
    (wheel,) = record.wheels
    stored = next(config.index_dir.rglob(wheel.filename))
    return record, stored


def factory(config, *args, env=None):
    environ = {**os.environ, "FACTORY_INDEX_DIR": str(config.index_dir), "FACTORY_STATE_DIR": str(config.state_dir),
               "FACTORY_UPSTREAM": config.upstream, **(env or {})}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=environ)


def sigstore_cli(stack, wheel, identity, issuer):
    return subprocess.run(
        [sys.executable, "-m", "sigstore", "--trust-config", str(stack.trust_config_path), "verify", "identity",
         "--bundle", str(wheel.with_name(wheel.name + ".sigstore.json")), "--cert-identity", identity,
         "--cert-oidc-issuer", issuer, str(wheel)],
        capture_output=True, text=True)


def test_published_wheels_carry_a_bundle_the_sigstore_cli_accepts(signed, sigstore_stack, config):
    record, wheel = signed
    # The wheel, and the sdist it was built from, each signed once.
    assert sorted(s.filename for s in record.signatures) == sorted([wheel.name, "fixture_cext-1.0.0.tar.gz"])
    (signature,) = [s for s in record.signatures if s.filename == wheel.name]
    assert signature.log_index >= 0
    assert (signature.identity, signature.issuer) == ("factory@localhost", sigstore_stack.issuer)
    assert record.durations["sign"] > 0
    ok = sigstore_cli(sigstore_stack, wheel, "factory@localhost", sigstore_stack.issuer)
    assert ok.returncode == 0, ok.stderr
    statement = json.loads(ok.stdout.splitlines()[0])
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    predicate = statement["predicate"]
    assert predicate["buildDefinition"]["externalParameters"] == {"project": "fixture-cext", "version": "1.0.0",
                                                                   "targets": ["cp311-x86_64"]}
    names = {d["name"]: d for d in predicate["buildDefinition"]["resolvedDependencies"]}
    assert names["sdist"]["digest"]["sha256"] == record.source.sha256
    assert names["builder-image"]["digest"]["sha256"] == record.images[0].id.removeprefix("sha256:")
    assert predicate["runDetails"]["metadata"]["invocationId"] == record.id
    assert sigstore_cli(sigstore_stack, wheel, "mallory@localhost", sigstore_stack.issuer).returncode != 0
    assert sigstore_cli(sigstore_stack, wheel, "factory@localhost", "http://127.0.0.1:1/oidc").returncode != 0


def test_the_index_advertises_pep740_provenance(signed, config):
    from pypi_attestations import Attestation
    from sigstore.models import ClientTrustConfig
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    record, wheel = signed
    page = json.loads((config.index_dir / "simple" / "fixture-cext" / "index.json").read_text())
    (entry,) = [f for f in page["files"] if f["filename"] == wheel.name]
    assert entry["provenance"] == entry["url"] + ".provenance"  # relative, like the file link (no base-url)
    assert "_factory-unsigned" not in entry
    html = (config.index_dir / "simple" / "fixture-cext" / "index.html").read_text()
    assert f'data-provenance="{entry["provenance"]}"' in html
    whole = factory(config, "index", "check")  # a signed index is whole too, every signature verified
    assert whole.returncode == 0 and " 0 signatures verified" not in whole.stdout, whole.stdout + whole.stderr
    provenance = json.loads(wheel.with_name(wheel.name + ".provenance").read_text())
    (bundle,) = provenance["attestation_bundles"]
    assert bundle["publisher"]["kind"] == "factory"
    attestation = Attestation.model_validate(bundle["attestations"][0])
    trust = ClientTrustConfig.from_json(config.trust_config.read_text())
    _, payload = Verifier(trusted_root=trust.trusted_root).verify_dsse(
        attestation.to_bundle(), Identity(identity="factory@localhost", issuer=record.signatures[0].issuer))
    assert json.loads(payload)["subject"][0]["digest"]["sha256"] == record.wheels[0].sha256
    # A page whose JSON names another provenance than its HTML is caught.
    page_file = (config.index_dir / "simple" / "fixture-cext" / "index.json").resolve()
    page["files"][0]["provenance"] += ".other"
    page_file.write_text(json.dumps(page))
    checked = factory(config, "index", "check")
    assert checked.returncode == 1 and "`provenance` differs" in checked.stdout


def test_verify_tells_ours_from_the_rest_in_an_installed_environment(signed, config, tmp_path):
    record, _ = signed
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--isolated",
           "--no-cache-dir", "--no-deps"]
    ours = subprocess.run([*pip, "--index-url", (config.index_dir / "simple").as_uri() + "/", "fixture-cext"],
                          capture_output=True, text=True, env=isolated_pip_env())
    assert ours.returncode == 0, ours.stderr
    elsewhere = make_wheel(tmp_path / "elsewhere", "fixture-pure", "9.0", body="not from the factory")
    assert subprocess.run([*pip, str(elsewhere)], capture_output=True, env=isolated_pip_env()).returncode == 0
    done = factory(config, "verify", "--env", str(env), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["summary"] == "1 of 2 distributions came from the hardened index; 1 with a verified signature"
    found = {d["name"]: d for d in report["distributions"]}
    assert found["fixture-cext"]["ours"] and found["fixture-cext"]["signature"] == "verified"
    assert found["fixture-cext"]["wheel"] == record.wheels[0].filename
    assert not found["fixture-pure"]["ours"] and "no wheel of this name and version" in found["fixture-pure"]["detail"]
    assert factory(config, "verify", "--env", str(env), "--require-all").returncode == 1
    # A module added to the installed distribution: no longer what the index published.
    site = next(env.glob("lib/python3*/site-packages"))
    record_file = next(site.glob("fixture_cext-1.0.0.dist-info/RECORD"))
    (site / "fixture_cext_extra.py").write_text("print('added')\n")
    original = record_file.read_text()
    record_file.write_text(original + "fixture_cext_extra.py,sha256=abc,16\n")
    assert json.loads(factory(config, "verify", "--env", str(env), "--json").stdout)["ours"] == 0
    record_file.write_text(original)
    assert json.loads(factory(config, "verify", "--env", str(env), "--json").stdout)["ours"] == 1
    # An installed file changed after the fact: its RECORD no longer matches the index's wheel.
    (so,) = env.glob("lib/python3*/site-packages/fixture_cext*.so")
    record_file = next(env.glob("lib/python3*/site-packages/fixture_cext-1.0.0.dist-info/RECORD"))
    record_file.write_text("\n".join(l if not l.startswith(so.name) else f"{so.name},sha256=AAAA,1"
                                     for l in record_file.read_text().splitlines()) + "\n")
    again = json.loads(factory(config, "verify", "--env", str(env), "--json").stdout)
    assert again["ours"] == 0


def test_verify_wheels_and_a_tampered_bundle(signed, config, tmp_path):
    record, wheel = signed
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / wheel.name).write_bytes(wheel.read_bytes())
    make_wheel(wheelhouse, "stranger", "1.0")
    done = factory(config, "verify", str(wheelhouse), "--json")
    report = json.loads(done.stdout)
    assert (report["total"], report["ours"], report["verified"]) == (2, 1, 1), done.stderr
    bundle = wheel.with_name(wheel.name + ".sigstore.json")
    data = json.loads(bundle.read_text())
    data["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1"
    bundle.write_text(json.dumps(data))
    tampered = factory(config, "verify", str(wheel), "--json")
    assert tampered.returncode == 1
    (finding,) = json.loads(tampered.stdout)["distributions"]
    assert finding["ours"] and finding["signature"] == "failed"


def test_no_identity_no_publication(config):
    environ_token = os.environ.pop("SIGSTORE_ID_TOKEN", None)
    try:
        record = run(parse_request("fixture-pure==1.0.0"), config.replace(signing="sigstore", trust_config=config.trust_config))
    finally:
        if environ_token is not None:
            os.environ["SIGSTORE_ID_TOKEN"] = environ_token
    assert record.status == "failed" and record.failure_class == "signing"
    assert "no identity to sign with" in record.reason
    assert_not_published(config, "fixture-pure")
    down = run(parse_request("fixture-pure==1.0.0"), config.replace(local_sigstore="http://127.0.0.1:9"))
    assert down.failure_class == "signing" and "no local Sigstore stack" in down.reason


def test_unsigned_only_where_the_config_allows_it(config):
    refused = factory(config, "build", "--no-sign", "fixture-pure==1.0.0")
    assert refused.returncode == 2 and "allow-unsigned" in refused.stderr
    allowed = factory(config, "build", "--no-sign", "fixture-pure==1.0.0",
                      env={"FACTORY_ALLOW_UNSIGNED": "true", "FACTORY_RECIPES_DIR": str(config.recipes_dir),
                           "FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11"})
    assert allowed.returncode == 0, allowed.stderr
    files = json.loads((config.index_dir / "simple" / "fixture-pure" / "index.json").read_text())["files"]
    assert [f["filename"] for f in files] == ["fixture_pure-1.0.0-py3-none-any.whl", "fixture_pure-1.0.0.tar.gz"]
    for entry in files:  # the wheel and its sdist: the index says neither is signed
        assert entry["provenance"] is None and entry["_factory-unsigned"] is True
    assert 'data-factory-unsigned="true"' in (config.index_dir / "simple" / "fixture-pure" / "index.html").read_text()
