"""Planning and gating are pure functions: tested here without a container, the way
cibuildwheel tests its build-step planning."""

from pathlib import Path

from factory.failures import BuildFailure, FailureClass
from factory.pipeline import gate
from factory.pipeline.build import BuildKind, TargetResult
from factory.pipeline.plan import plan
from factory.pipeline.record import BuildStatus, TargetStatus
from factory.pipeline.repair import CheckedWheel
from factory.recipes import Recipe, Skip
from factory.targets import Target, every_target

X311, X313 = Target("x86_64", "3.11"), Target("x86_64", "3.13")
A311, A313 = Target("aarch64", "3.11"), Target("aarch64", "3.13")
ALL = every_target(("x86_64", "aarch64"), ("3.11", "3.13"))


def wheel(name: str) -> CheckedWheel:
    return CheckedWheel(Path("/w") / name, "0" * 64, 1, "pure" if "none-any" in name else "manylinux_2_17_x86_64")


PURE = wheel("demo-1.0-py3-none-any.whl")
ABI3 = wheel("demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl")
CP311 = wheel("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
CP313 = wheel("demo-1.0-cp313-cp313-manylinux_2_17_x86_64.whl")


# -- plan -------------------------------------------------------------------------------------

def test_everything_is_built_when_nothing_is_published():
    planned = plan(ALL, Recipe("demo"), [])
    assert planned.todo == tuple(ALL) and planned.settled == ()


def test_a_published_wheel_settles_the_targets_it_serves():
    planned = plan(ALL, Recipe("demo"), ["demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl", "demo-1.0.tar.gz"])
    assert planned.todo == (A311, A313)
    assert {(o.target, o.status, o.wheel) for o in planned.settled} == {
        (X311, TargetStatus.BUILT, "demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl"),
        (X313, TargetStatus.BUILT, "demo-1.0-cp311-abi3-manylinux_2_17_x86_64.whl"),
    }


def test_a_pure_wheel_serves_every_target():
    planned = plan(ALL, Recipe("demo"), ["demo-1.0-py3-none-any.whl"])
    assert planned.todo == () and len(planned.settled) == 4


def test_the_recipe_skips_targets_before_anything_else():
    recipe = Recipe("demo", skip=(Skip("no arm today", arch="aarch64"),))
    planned = plan(ALL, recipe, [])
    assert planned.todo == (X311, X313)
    assert [(o.status, o.reason) for o in planned.settled] == [(TargetStatus.SKIPPED, "no arm today")] * 2


# -- gate -------------------------------------------------------------------------------------

def compile_error(why: str = "x.c:1: error") -> BuildFailure:
    return BuildFailure(FailureClass.COMPILE, why)


def test_a_failed_build_or_check_fails_its_target_only():
    results = [TargetResult(X311, CP311.path), TargetResult(X313, failure=compile_error()),
               TargetResult(A311, Path("/w/bad.whl"))]
    checks = {CP311.path: CP311, Path("/w/bad.whl"): BuildFailure(FailureClass.POLICY, "GLIBC_2.29")}
    checked = gate.after_repair(results, checks)
    assert checked.passing == ((X311, CP311),)
    assert [(o.target, o.failure_class) for o in checked.failed] == [(X313, "compile"), (A311, "policy")]


def test_a_pure_wheel_is_tested_once_and_others_on_each_target():
    pure = gate.after_repair([TargetResult(t, PURE.path) for t in ALL], {PURE.path: PURE})
    assert gate.smoke_tests(BuildKind.PURE, pure) == ((PURE, X311),)
    abi3 = gate.after_repair([TargetResult(t, ABI3.path) for t in (X311, X313)], {ABI3.path: ABI3})
    assert gate.smoke_tests(BuildKind.PLATFORM, abi3) == ((ABI3, X311), (ABI3, X313))


def test_a_wheel_failing_its_test_anywhere_is_published_nowhere():
    checked = gate.after_repair([TargetResult(X311, ABI3.path), TargetResult(X313, ABI3.path)], {ABI3.path: ABI3})
    failure = BuildFailure(FailureClass.TEST, "smoke test on cp313-x86_64 failed")
    verdict = gate.after_tests(checked, {(ABI3.path, X311): gate.Tested(), (ABI3.path, X313): gate.Tested(failure)})
    assert verdict.wheels == ()
    assert {(o.target, o.status, o.failure_class) for o in verdict.outcomes} == {
        (X311, TargetStatus.FAILED, "test"), (X313, TargetStatus.FAILED, "test")}


def test_checks_not_run_are_kept_with_each_target_a_wheel_serves():
    checked = gate.after_repair([TargetResult(X311, CP311.path), TargetResult(X313, CP313.path)],
                                {CP311.path: CP311, CP313.path: CP313})
    skipped = ("import of demo._tk not checked: it needs tkinter, ...",)
    verdict = gate.after_tests(checked, {(CP311.path, X311): gate.Tested(skipped=skipped),
                                         (CP313.path, X313): gate.Tested()})
    assert verdict.wheels == (CP311, CP313)
    assert [(o.target, o.status, o.skipped_checks) for o in verdict.outcomes] == [
        (X311, TargetStatus.BUILT, skipped), (X313, TargetStatus.BUILT, ())]
    pure = gate.after_repair([TargetResult(t, PURE.path) for t in (X311, A311)], {PURE.path: PURE})
    verdict = gate.after_tests(pure, {(PURE.path, X311): gate.Tested(skipped=skipped)})  # tested once
    assert [o.skipped_checks for o in verdict.outcomes] == [skipped, skipped]


def test_passing_wheels_are_kept_once_each():
    checked = gate.after_repair([TargetResult(X311, CP311.path), TargetResult(X313, CP313.path)],
                                {CP311.path: CP311, CP313.path: CP313})
    verdict = gate.after_tests(checked, {})
    assert verdict.wheels == (CP311, CP313)
    assert [o.wheel for o in verdict.outcomes] == [CP311.filename, CP313.filename]


def test_nothing_unsigned_is_published():
    checked = gate.after_repair([TargetResult(X311, CP311.path), TargetResult(X313, failure=compile_error())],
                                {CP311.path: CP311})
    verdict = gate.after_tests(checked, {})
    assert gate.after_signing(verdict, None) == verdict
    unsigned = gate.after_signing(verdict, BuildFailure(FailureClass.SIGNING, "no identity"))
    assert unsigned.wheels == ()
    assert {(o.target, o.failure_class) for o in unsigned.outcomes} == {(X311, "signing"), (X313, "compile")}


def test_the_summary_names_the_first_failure_and_the_status():
    verdict = gate.after_tests(
        gate.after_repair([TargetResult(X311, CP311.path), TargetResult(X313, failure=compile_error("boom"))],
                          {CP311.path: CP311}), {})
    summary = gate.summarize(verdict.outcomes, None)
    assert (summary.status, summary.failure_class, summary.reason) == (BuildStatus.PARTIAL, "compile",
                                                                       "cp313-x86_64: boom")
    built = [o for o in verdict.outcomes if o.status is TargetStatus.BUILT]
    failed = [o for o in verdict.outcomes if o.status is TargetStatus.FAILED]
    assert gate.summarize(built, None).status is BuildStatus.BUILT
    assert gate.summarize(failed, None).status is BuildStatus.FAILED
    shared = gate.summarize((), BuildFailure(FailureClass.NOT_FOUND, "no such release"))
    assert (shared.status, shared.reason) == (BuildStatus.FAILED, "no such release")
    assert gate.summarize((), None).status is BuildStatus.BUILT  # every target skipped
