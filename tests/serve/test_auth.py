"""Failed logins tell nothing and cost little (issue 12, item 4): the same PBKDF2 work whoever an
attempt names, a bound on how much hashing runs at once, and failures that back off, while a
client that logged in is served without waiting. Measured in PBKDF2 runs, not in seconds, and
on a clock the test turns, so that a loaded machine cannot make these tests lie."""

import asyncio
import base64

import httpx
import pytest
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.serve.app import ServeSettings, create_app
from factory.serve.auth import TOKEN_USER, Credentials, Throttle, Users, add_user, hash_secret


def users_file(tmp_path, tokens=0, legacy_tokens=0):
    path = tmp_path / "users"
    add_user(path, "alice", "s3cret")
    for n in range(tokens):
        add_user(path, f"{TOKEN_USER}t{n}", f"token-{n}")
    with path.open("a") as f:  # tokens of a file written before they shared a salt
        for n in range(legacy_tokens):
            f.write(f"{TOKEN_USER}old{n}:{hash_secret(f'old-{n}')}\n")
    return path


ATTEMPTS = {
    "a known user, wrong secret": Credentials("alice", "wrong"),
    "an unknown user": Credentials("mallory", "wrong"),
    "a wrong token": Credentials(TOKEN_USER, "wrong"),
}


@pytest.mark.parametrize(("tokens", "legacy"), [(0, 0), (4, 0), (0, 3)])
def test_every_failed_attempt_costs_the_same_whoever_it_names(tmp_path, tokens, legacy):
    """With 4 tokens an unknown user cost 4 runs and a known one 1: a timing oracle."""
    users = Users(users_file(tmp_path, tokens, legacy))
    assert users.work == (1 if not legacy else legacy + (1 if tokens else 0))
    costs = {}
    for what, found in ATTEMPTS.items():
        before = users.hashes
        assert not users.check(found)
        costs[what] = users.hashes - before
    assert set(costs.values()) == {users.work}, costs
    if tokens:  # tokens added by factory share a salt: one run checks them all
        assert users.work == 1 and users.check(Credentials("anyone", "token-3"))
    before = users.hashes
    assert users.check(Credentials("alice", "s3cret")) and users.check(Credentials("alice", "s3cret"))
    assert users.hashes - before == users.work  # verified once, then remembered


class TurnedThrottle(Throttle):
    """A throttle whose clock the test turns: the time the app passes is replaced by ``now``, so a
    delay has passed when the test says so, however long the requests themselves took."""

    def __init__(self, free: int, base: float) -> None:
        super().__init__(free=free, base=base)
        self.now = 0.0

    def wait(self, client: str, now: float) -> float:
        return super().wait(client, self.now)

    def failed(self, client: str, now: float) -> None:
        super().failed(client, self.now)


def _app(tmp_path, users, throttle):
    index = tmp_path / "index"
    publish(index, [inspect_wheel(make_wheel(tmp_path / "w", "demo", "1.0"))], "")
    settings = ServeSettings(index_dir=index, miss_log=tmp_path / "misses.jsonl", upstream=None, users=users)
    app = create_app(settings)
    for layer in app.user_middleware:
        layer.kwargs["throttle"] = throttle
    return app


def _basic(name, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()}


async def _get(app, client, headers):
    transport = httpx.ASGITransport(app=app, client=(client, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://index") as http:
        return await http.get("/simple/", headers=headers)


def test_a_flood_of_failures_costs_a_few_hashes_and_delays_no_one(tmp_path):
    """200 failed requests once delayed an authenticated one by 26 s: each ran PBKDF2 for every
    token, all of them at once, in the pool the file serving uses."""
    users = Users(users_file(tmp_path, tokens=4), max_hashing=2)
    throttle = TurnedThrottle(free=3, base=30.0)  # the clock stands still: the delay never passes
    app = _app(tmp_path, users, throttle)

    async def scenario():
        assert (await _get(app, "10.0.0.1", _basic("alice", "s3cret"))).status_code == 200  # logged in once
        before = users.hashes
        flood = [_get(app, "10.0.0.66", _basic(f"guess{n}", f"guess{n}")) for n in range(200)]
        flood += [_get(app, f"10.1.0.{n}", _basic("mallory", "x")) for n in range(20)]  # many clients at once
        answers = await asyncio.gather(*flood, _get(app, "10.0.0.1", _basic("alice", "s3cret")),
                                       _get(app, "10.0.0.2", {"Authorization": "Bearer token-2"}))
        return answers, users.hashes - before

    answers, hashed = asyncio.run(scenario())
    *failed, alice, token = answers
    assert alice.status_code == 200 and token.status_code == 200
    assert {r.status_code for r in failed} == {401, 429}
    from_one = [r.status_code for r in failed[:200]]
    assert from_one.count(401) == 3 and from_one.count(429) == 197  # its free failures, then it waits
    assert failed[199].headers["retry-after"] == "30"
    assert hashed <= (3 + 20 + 1) * users.work  # the one client's free tries, one each for the others, the token
    assert users.peak <= 2  # never more PBKDF2 at once than the bound


def test_a_client_waits_out_its_backoff_then_tries_again(tmp_path):
    users = Users(users_file(tmp_path))
    throttle = TurnedThrottle(free=1, base=0.5)
    app = _app(tmp_path, users, throttle)

    async def attempt(secret):
        before = users.hashes
        answer = await _get(app, "10.0.0.9", _basic("alice", secret))
        return answer.status_code, users.hashes - before, answer.headers.get("retry-after")

    async def scenario():
        first = await attempt("wrong")  # its one free failure: hashed, and now it must wait 0.5 s
        waiting = await attempt("s3cret")  # right, but its delay has not passed: not even hashed
        throttle.now = 0.4
        still = await attempt("s3cret")
        throttle.now = 0.5  # the delay has passed, to the clock's tick
        return first, waiting, still, await attempt("s3cret")

    first, waiting, still, later = asyncio.run(scenario())
    assert first == (401, 1, None)
    assert waiting == (429, 0, "1") and still == (429, 0, "1")
    assert later == (200, 1, None)
